"""``d2fast demo``: D2 Pruning vs random and CCS coresets on real Fashion-MNIST.

Train a small MLP while :class:`d2fast.scores.Recorder` records training dynamics, take
the trained network's penultimate-layer embeddings, prune at several rates with D2
(:func:`d2fast.prune`), random and CCS (:mod:`d2fast.baselines`), retrain a fresh
network on every coreset for the same fixed number of iterations and compare test
accuracy. Falls back to scikit-learn's bundled digits when Fashion-MNIST is missing.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import d2fast
from d2fast import datasets

METHODS = ("d2", "random", "ccs")
SCORE = "aum"  # difficulty("aum") = max(aum) - aum; see run_demo's Notes


@dataclass(frozen=True)
class Setting:
    """Sizes of one demo run."""

    n_train: int | None  # rows of the training set used (None: all)
    hidden: tuple  # hidden layer widths; the last one is the embedding
    epochs: int  # epochs of the scoring run
    iterations: int  # SGD steps of every retraining (the same for all coresets)
    batch: int = 128


SETTINGS = {("fashion", False): Setting(None, (256, 64), 10, 2000),
            ("fashion", True): Setting(15_000, (256, 64), 8, 800),
            ("digits", False): Setting(None, (128, 64), 30, 600),
            ("digits", True): Setting(None, (128, 64), 20, 300)}


def hard_prune_for(rate: float) -> float:
    """Fraction of hardest rows dropped before D2 and CCS select, as CCS does at high
    pruning rates (the hardest rows are often mislabelled or ambiguous)."""
    return 0.0 if rate < 0.6 else (0.1 if rate < 0.8 else 0.2)


def run_demo(data_dir: str | None = None, quick: bool = False,
             rates: tuple = (0.3, 0.5, 0.7, 0.9), seed: int = 0,
             out: str | None = "d2fast-demo.png", progress: bool = True) -> dict:
    """Run the demo, print its table to stdout, draw accuracy vs pruning rate to ``out``.

    Parameters
    ----------
    data_dir : str, optional
        Fashion-MNIST directory (default ``d2fast.datasets.FASHION_MNIST_DIR``). When the
        files are missing, a message with the install command goes to stderr and the demo
        runs on scikit-learn's digits.
    quick : bool, default=False
        A 15k-row subset and fewer steps (about a minute on 2 cores instead of a few).
    rates : tuple of float, default=(0.3, 0.5, 0.7, 0.9)
        Pruning rates (fraction removed), each in [0, 1).
    seed : int, default=0
        Seeds the row subset, network initialisations, batch order and random/CCS.
    out : str or None, default='d2fast-demo.png'
        Figure path (png, pdf or svg); None draws nothing.
    progress : bool, default=True
        A tqdm progress bar over all training steps on stderr.

    Returns
    -------
    dict
        ``dataset``, sizes, settings, ``full`` (accuracy and train time on all rows) and
        ``results``: one dict per (rate, method) with ``n_keep``, ``accuracy``,
        ``select_s`` (seconds to choose the coreset), ``train_s`` and ``recipe`` (the
        selection's settings, :func:`recipe`); ``embedding`` says how rows are embedded.

    Notes
    -----
    Scores are the Area Under the Margin over the scoring run, turned into a difficulty
    (``max(aum) - aum``). Embeddings are the L2-normalised penultimate-layer activations,
    so distances lie in [0, 2] and the default ``gamma_f=1``, ``gamma_r=0.1`` weights stay
    far from underflow; D2 uses ``k=10``. Torch trains on one thread (restored afterwards):
    on a shared 2-core machine two threads were 6-30x slower per step. The selections run
    with the caller's thread count (faiss and the OpenMP kernels share torch's setting).
    """
    import torch
    from tqdm.auto import tqdm

    rates = tuple(_check_rate(r) for r in rates)
    name, (xtr, ytr, xte, yte) = _load(data_dir)
    setting = SETTINGS[(name, bool(quick))]
    rng = np.random.default_rng(seed)
    if setting.n_train is not None and setting.n_train < len(xtr):
        rows = np.sort(rng.choice(len(xtr), setting.n_train, replace=False))
        xtr, ytr = xtr[rows], ytr[rows]
    n, classes = len(xtr), int(max(ytr.max(), yte.max())) + 1
    total = setting.epochs * _batches(n, setting.batch) + \
        setting.iterations * (1 + len(rates) * len(METHODS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tqdm(total=total, desc="demo", unit="step", disable=not progress,
                  file=sys.stderr) as bar:
            trainer = _Trainer(xtr, ytr, xte, yte, classes, setting, seed, bar)
            start = time.perf_counter()
            emb, scores = trainer.score_run()
            score_s = time.perf_counter() - start
            full_acc, full_s = trainer.retrain(np.arange(n), "full data")
            results = []
            for rate in rates:
                for method in METHODS:
                    torch.set_num_threads(threads)  # faiss and OpenMP kernels: all cores
                    start = time.perf_counter()
                    keep = _select(method, emb, scores, rate, seed)
                    select_s = time.perf_counter() - start
                    torch.set_num_threads(1)  # small MLP steps: 1 thread (see Notes)
                    acc, train_s = trainer.retrain(keep, f"{method} @ {rate:g}")
                    results.append({"rate": rate, "method": method, "n_keep": int(keep.size),
                                    "accuracy": acc, "select_s": select_s, "train_s": train_s,
                                    "recipe": recipe(method, rate, seed)})
    finally:
        torch.set_num_threads(threads)
    summary = {"dataset": name, "n_train": n, "n_test": len(xte), "quick": bool(quick),
               "model": "MLP " + "-".join(map(str, (xtr.shape[1], *setting.hidden, classes))),
               "score": f"difficulty({SCORE!r})", "score_epochs": setting.epochs,
               "score_run_s": score_s, "iterations": setting.iterations,
               "batch": setting.batch, "embedding": "penultimate layer, L2-normalised rows",
               "full": {"n_keep": n, "accuracy": full_acc,
                                                "train_s": full_s},
               "results": results}
    print(format_table(summary))
    if out is not None:
        plot(summary, out)
    return summary


def _check_rate(rate) -> float:
    from d2fast._validate import resolve_n_keep

    resolve_n_keep(10, rate, None)  # raises for rates outside [0, 1)
    return float(rate)


def _load(data_dir: str | None):
    try:
        return "fashion", datasets.load_fashion_mnist(data_dir)
    except FileNotFoundError as exc:
        print(f"d2fast demo: {exc}; running on scikit-learn's digits instead",
              file=sys.stderr)
        return "digits", datasets.load_digits()


def _batches(n: int, batch: int) -> int:
    return -(-n // batch)


def recipe(method: str, rate: float, seed: int) -> dict:
    """The settings :func:`_select` uses for ``method`` at ``rate`` (for the sidecar)."""
    beta = hard_prune_for(rate)
    if method == "d2":
        return {"k": 10, "metric": "euclidean", "graph": "union", "knn": "auto",
                "gamma_f": 1.0, "gamma_r": 0.1, "hard_prune": beta}
    if method == "random":
        return {"seed": seed}
    return {"hard_prune": beta, "n_strata": 50, "seed": seed}


def _select(method: str, emb: np.ndarray, scores: np.ndarray, rate: float, seed: int):
    beta = hard_prune_for(rate)
    if method == "d2":
        return d2fast.prune(emb, scores, k=10, rate=rate, hard_prune=beta)
    if method == "random":
        return d2fast.baselines.random(emb, scores, rate, seed=seed)
    return d2fast.baselines.ccs(emb, scores, rate, hard_prune=beta, seed=seed)


class _Trainer:
    """The network, its training loops and the test evaluation of one demo run."""

    def __init__(self, xtr, ytr, xte, yte, classes: int, setting: Setting, seed: int,
                 bar) -> None:
        import torch

        self.torch = torch
        self.xtr, self.ytr = torch.from_numpy(xtr), torch.from_numpy(ytr)
        self.xte, self.yte = torch.from_numpy(xte), torch.from_numpy(yte)
        self.classes, self.setting, self.seed, self.bar = classes, setting, seed, bar

    def _network(self):
        nn = self.torch.nn
        self.torch.manual_seed(self.seed)  # the same initialisation for every run
        widths = (self.xtr.shape[1], *self.setting.hidden)
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        features = nn.Sequential(*layers)
        return features, nn.Sequential(features, nn.Linear(widths[-1], self.classes))

    def score_run(self):
        """Train on all rows while recording scores; returns (embeddings, difficulty)."""
        from d2fast.scores import Recorder

        torch = self.torch
        n, batch = len(self.xtr), self.setting.batch
        features, model = self._network()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        recorder = Recorder(n, self.classes)
        gen = torch.Generator().manual_seed(self.seed)
        self.bar.set_description("scoring run")
        for _ in range(self.setting.epochs):
            for idx in torch.randperm(n, generator=gen).split(batch):
                logits = self._step(model, opt, idx)
                recorder.update(idx, logits.detach(), self.ytr[idx])
                self.bar.update(1)
            recorder.end_epoch()
        with torch.no_grad():
            model.eval()
            emb = torch.cat([features(x) for x in self.xtr.split(4096)]).numpy()
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
        return emb, recorder.difficulty(SCORE)

    def _step(self, model, opt, idx):
        logits = model(self.xtr[idx])
        loss = self.torch.nn.functional.cross_entropy(logits, self.ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return logits

    def retrain(self, keep: np.ndarray, label: str):
        """Train a fresh network on rows ``keep`` for the fixed number of steps;
        returns (test accuracy, seconds)."""
        torch = self.torch
        start = time.perf_counter()
        _, model = self._network()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        keep = torch.from_numpy(np.sort(keep))
        gen = torch.Generator().manual_seed(self.seed + 1)
        batch = min(self.setting.batch, len(keep))
        self.bar.set_description(label)
        steps = 0
        while steps < self.setting.iterations:
            for idx in keep[torch.randperm(len(keep), generator=gen)].split(batch):
                if steps == self.setting.iterations:
                    break
                self._step(model, opt, idx)
                steps += 1
                self.bar.update(1)
        with torch.no_grad():
            model.eval()
            pred = torch.cat([model(x).argmax(1) for x in self.xte.split(4096)])
        return float((pred == self.yte).double().mean()), time.perf_counter() - start


def format_table(summary: dict) -> str:
    """The demo's result table as text."""
    name = {"fashion": "Fashion-MNIST", "digits": "scikit-learn digits"}[summary["dataset"]]
    full = summary["full"]
    lines = [f"{name}: {summary['n_train']} train / {summary['n_test']} test rows, "
             f"{summary['model']}, scores {summary['score']} over {summary['score_epochs']} "
             f"epochs ({summary['score_run_s']:.1f} s); every network trained "
             f"{summary['iterations']} steps of {summary['batch']}",
             f"{'rate':>5}  {'method':<7} {'kept':>6}  {'test acc':>8}  {'select s':>8}  "
             f"{'train s':>7}",
             f"{0:>5.1f}  {'full':<7} {full['n_keep']:>6}  {full['accuracy']:>8.4f}  "
             f"{'':>8}  {full['train_s']:>7.1f}"]
    for r in summary["results"]:
        lines.append(f"{r['rate']:>5.1f}  {r['method']:<7} {r['n_keep']:>6}  "
                     f"{r['accuracy']:>8.4f}  {r['select_s']:>8.3f}  {r['train_s']:>7.1f}")
    return "\n".join(lines)


def plot(summary: dict, path: str) -> None:
    """Test accuracy vs pruning rate, one line per method, full data as a dashed line."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the demo figure needs matplotlib: pip install 'd2fast[plot]'") \
            from None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method, marker in zip(METHODS, "osD"):
        rows = [r for r in summary["results"] if r["method"] == method]
        ax.plot([100 * r["rate"] for r in rows], [r["accuracy"] for r in rows],
                marker=marker, label=method)
    ax.axhline(summary["full"]["accuracy"], color="k", linestyle="--", linewidth=1,
               label=f"full data ({summary['n_train']} rows)")
    name = {"fashion": "Fashion-MNIST", "digits": "digits"}[summary["dataset"]]
    ax.set(xlabel="pruning rate (% of training rows removed)", ylabel="test accuracy",
           title=f"{name}: {summary['model']}, {summary['iterations']} steps per run")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format=os.path.splitext(path)[1][1:].lower() or "png")
    plt.close(fig)
