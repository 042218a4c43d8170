"""D2 Pruning on real data: Fashion-MNIST (Debian package ``dataset-fashion-mnist``).

Embeds the 60k training images (PCA to 64 dims), scores each one with a cheap
difficulty proxy (margin of a nearest-class-centroid classifier: higher = harder),
keeps 30 % with ``d2fast.prune`` and compares the coreset with random and hardest-first
subsets of the same size by the 1-NN test accuracy they give (faiss).

    sudo apt-get install dataset-fashion-mnist
    python examples/fashion_mnist_prune.py [--data DIR] [--rate 0.7]

No torch needed. Real training-dynamics scores (forgetting, AUM, ...) come from
``d2fast.scores.Recorder``; ``d2fast demo`` uses them and retrains on every coreset.
"""
from __future__ import annotations

import argparse
import sys
import time

import faiss
import numpy as np

import d2fast
from d2fast.datasets import FASHION_MNIST_DIR, load_fashion_mnist

def pca(train: np.ndarray, test: np.ndarray, dims: int, seed: int = 0):
    """Project both sets on the top principal axes of a 10k-row sample of ``train``."""
    rng = np.random.default_rng(seed)
    mean = train.mean(axis=0)
    sample = train[rng.choice(len(train), 10_000, replace=False)] - mean
    axes = np.linalg.svd(sample, full_matrices=False)[2][:dims].T
    return ((train - mean) @ axes).astype(np.float32), ((test - mean) @ axes).astype(np.float32)


def centroid_margin(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Distance to own class centroid minus distance to the nearest other one (higher = harder)."""
    cents = np.stack([emb[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
    dist = np.sqrt(((emb[:, None, :] - cents[None]) ** 2).sum(-1))
    own = dist[np.arange(len(emb)), labels]
    dist[np.arange(len(emb)), labels] = np.inf
    return own - dist.min(axis=1)


def one_nn_accuracy(train, ytrain, test, ytest) -> float:
    _, idx = faiss.knn(test, np.ascontiguousarray(train), 1)
    return float((ytrain[idx[:, 0]] == ytest).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=FASHION_MNIST_DIR)
    ap.add_argument("--rate", type=float, default=0.7, help="fraction removed")
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    try:
        xtr, ytr, xte, yte = load_fashion_mnist(args.data)
    except FileNotFoundError as e:
        sys.exit(str(e))
    emb, emb_test = pca(xtr, xte, 64)
    scores = centroid_margin(emb, ytr)
    scale = np.sqrt((emb ** 2).sum(1)).mean()  # unit mean norm: exp(-gamma * d) stays in range
    emb, emb_test = emb / scale, emb_test / scale
    print(f"data: {len(emb)} train x {emb.shape[1]} dims, {len(emb_test)} test "
          f"({time.perf_counter() - t0:.1f} s); backends {d2fast.backends()}")

    t = time.perf_counter()
    graph = d2fast.knn_graph(emb, args.k, progress=True)
    t_graph = time.perf_counter() - t
    n_keep = int(len(emb) * (1 - args.rate) + 1e-9)
    t = time.perf_counter()
    passed = d2fast.forward(graph, scores)
    keep = d2fast.select(graph, passed, n_keep)
    t_pass = time.perf_counter() - t
    print(f"kNN graph {t_graph:.2f} s (nnz {graph.nnz}); forward + select {t_pass:.3f} s; "
          f"kept {keep.size} of {len(emb)}")

    rng = np.random.default_rng(0)
    subsets = {"d2 (d2fast)": keep,
               "random": rng.choice(len(emb), n_keep, replace=False),
               "hardest first": np.argsort(-scores, kind="stable")[:n_keep],
               "full data": np.arange(len(emb))}
    print(f"\n{'subset':<15}{'size':>8}{'1-NN test acc':>15}{'mean score':>12}"
          f"{'min class frac':>16}")
    for name, idx in subsets.items():
        acc = one_nn_accuracy(emb[idx], ytr[idx], emb_test, yte)
        frac = np.bincount(ytr[idx], minlength=10) / np.bincount(ytr, minlength=10)
        print(f"{name:<15}{idx.size:>8}{acc:>15.4f}{scores[idx].mean():>12.3f}{frac.min():>16.3f}")


if __name__ == "__main__":
    main()
