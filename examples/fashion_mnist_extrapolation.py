"""Score extrapolation on real data: Fashion-MNIST (Debian package ``dataset-fashion-mnist``).

Trains a small MLP (784-256-128-10, Adam, batch 256, the same initialisation in every
run) on a random 10 % and 20 % subset of the 60k training images, records Dynamic
Uncertainty (window 10) and AUM with ``d2fast.scores.Recorder``, extrapolates both to
the other rows with ``d2fast.extrapolate`` (kNN and GNN) and compares them with the
scores of a full run: the same network trained on all 60k rows for the same epochs.

Embeddings (never from the full run, which would leak its scores):
  net  the subset-trained network's penultimate layer (128-d) for all 60k rows;
  pca  64 principal components of the pixels (unsupervised, the same for all subsets).
The GNN also gets the class labels (one-hot), which are known for every training row.

Noise ceiling: Spearman of the subset run's own scores with the full run's scores on the
subset rows, i.e. how well the full run is predicted where the subset run saw the data.

    sudo apt-get install dataset-fashion-mnist
    python examples/fashion_mnist_extrapolation.py [--data DIR] [--epochs 15] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import d2fast
from d2fast.datasets import FASHION_MNIST_DIR, load_fashion_mnist
from d2fast.scores import Recorder

SCORES = {"DU": ("dynamic_uncertainty", {"window": 10}), "AUM": ("aum", {})}
K = 10  # neighbours: kNN regression and GNN graph


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0):
    """Train the MLP on (x, y) and record the training dynamics of every row.

    Returns the model and the Recorder (row ids = positions in ``x``).
    """
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rec = Recorder(len(x), 10)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=order).split(256):
            logits = model(x[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.update(idx, logits.detach(), y[idx])
        rec.end_epoch()
    return model, rec


def scores_of(rec: Recorder) -> dict[str, np.ndarray]:
    """DU and AUM, both oriented higher = harder (Spearman is unaffected by the flip)."""
    return {name: rec.difficulty(score, **kw) for name, (score, kw) in SCORES.items()}


@torch.no_grad()
def penultimate(model: torch.nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """The 128-d activations before the last layer, float32 (n, 128)."""
    return model[:-1](x).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=FASHION_MNIST_DIR)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--subsets", type=float, nargs="+", default=[0.1, 0.2])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads (default: torch's current setting)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    try:
        xtr, ytr, _, _ = load_fashion_mnist(args.data)
    except FileNotFoundError as e:
        sys.exit(str(e))
    n = len(xtr)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    t = time.perf_counter()
    _, full_rec = train(x, y, args.epochs)
    full = scores_of(full_rec)
    print(f"full run: {n} rows x {args.epochs} epochs, {time.perf_counter() - t:.1f} s "
          f"({torch.get_num_threads()} torch threads)")

    from sklearn.decomposition import PCA

    pca = PCA(64, svd_solver="randomized", random_state=0).fit_transform(xtr)
    pca = pca.astype(np.float32)
    pca_graph = d2fast.knn_graph(pca, K)

    rows = []
    for frac in args.subsets:
        t = time.perf_counter()
        known = np.sort(np.random.default_rng(1).choice(n, int(frac * n), replace=False))
        unknown = np.setdiff1d(np.arange(n), known)
        model, rec = train(x[known], y[known], args.epochs)
        sub = scores_of(rec)
        net = penultimate(model, x)
        embs = {"net": (net, d2fast.knn_graph(net, K)), "pca": (pca, pca_graph)}
        print(f"{frac:.0%} subset: {known.size} rows, training + embeddings "
              f"{time.perf_counter() - t:.1f} s")
        for name in SCORES:
            ceiling = d2fast.evaluate_extrapolation(sub[name], full[name][known])["spearman"]
            for emb_name, (emb, graph) in embs.items():
                for method in ("knn", "gnn"):
                    extra = {"graph": graph, "labels": ytr} if method == "gnn" else {}
                    pred, info = d2fast.extrapolate(emb, known, sub[name], method, K,
                                                    return_info=True, **extra)
                    res = d2fast.evaluate_extrapolation(pred, full[name], unknown)
                    rows.append((f"{frac:.0%}", name, emb_name, method, res["spearman"],
                                 info["val_spearman"], ceiling, info["time_s"]))

    print(f"\n{'subset':>6} {'score':>5} {'emb':>4} {'method':>6} {'Spearman(unknown)':>18} "
          f"{'val Spearman':>13} {'noise ceiling':>14} {'time s':>7}")
    for r in rows:
        print(f"{r[0]:>6} {r[1]:>5} {r[2]:>4} {r[3]:>6} {r[4]:>18.3f} {r[5]:>13.3f} "
              f"{r[6]:>14.3f} {r[7]:>7.1f}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
