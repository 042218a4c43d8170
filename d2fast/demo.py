"""``d2fast demo``: D2 Pruning with its defaults vs the baselines on real Fashion-MNIST.

For every seed: train a small MLP while :class:`d2fast.scores.Recorder` records training
dynamics (optionally on noisy labels), take the network's L2-normalised penultimate-layer
embeddings, and select coresets at several rates with D2 (:func:`d2fast.prune` with its
defaults), the same given the training labels (``labels=y``: ``hard_prune="auto"``'s label
check), D2 on scores extrapolated from a run on 10 % of the rows
(:func:`d2fast.extrapolate`), random, hardest-first and CCS (:mod:`d2fast.baselines`);
retrain a fresh network on every coreset for the same number of steps and report the test
accuracy as mean ± std over the seeds (:mod:`d2fast.quality`). Falls back to
scikit-learn's bundled digits when Fashion-MNIST is missing.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import d2fast
from d2fast import datasets, quality
from d2fast._validate import check_int, resolve_n_keep

METHODS = ("d2", "d2 labels", "d2 extrap", "random", "hardest", "ccs")
BASELINES = ("random", "hardest", "ccs")
SCORE = "aum"  # difficulty("aum") = max(aum) - aum; see run_demo's Notes
SUBSET = 0.1  # fraction of rows of the scoring run whose scores are extrapolated


@dataclass(frozen=True)
class Setting:
    """Sizes of one demo run."""

    n_train: int | None  # rows of the training set used (None: all)
    hidden: tuple  # hidden layer widths; the last one is the embedding
    epochs: int  # epochs of the scoring runs
    iterations: int  # SGD steps of every retraining (the same for all coresets)
    batch: int = 128


SETTINGS = {("fashion", False): Setting(20_000, (256, 64), 8, 800),
            ("fashion", True): Setting(6_000, (256, 64), 6, 300),
            ("digits", False): Setting(None, (128, 64), 20, 300),
            ("digits", True): Setting(None, (128, 64), 15, 150)}


def run_demo(data_dir: str | None = None, quick: bool = False,
             rates: tuple = (0.3, 0.5, 0.7, 0.9), seeds: tuple = (0, 1, 2),
             label_noise: float = 0.0, out: str | None = "d2fast-demo.png",
             progress: bool = True) -> dict:
    """Run the demo, print its table to stdout, draw accuracy vs pruning rate to ``out``.

    Parameters
    ----------
    data_dir : str, optional
        Fashion-MNIST directory (default ``d2fast.datasets.FASHION_MNIST_DIR``). When the
        files are missing, a message with the install command goes to stderr and the demo
        runs on scikit-learn's digits.
    quick : bool, default=False
        Fewer rows and steps (about a minute on 2 cores instead of a few).
    rates : tuple of float, default=(0.3, 0.5, 0.7, 0.9)
        Pruning rates (fraction removed), each in [0, 1).
    seeds : tuple of int, default=(0, 1, 2)
        One run per seed: row subset, label noise, network initialisations, batch order,
        the 10 % subset and random/CCS.
    label_noise : float, default=0.0
        Fraction of training labels moved to a uniformly random other class (seeded), in
        [0, 1); the test set stays clean.
    out : str or None, default='d2fast-demo.png'
        Figure path (png, pdf or svg); None draws nothing.
    progress : bool, default=True
        A tqdm progress bar over all training steps on stderr.

    Returns
    -------
    dict
        ``dataset``, sizes, settings, ``scoring`` (per seed: seconds of the full scoring
        run, of the 10 % run and of the extrapolation), ``full`` (per seed: accuracy on
        all rows), ``results`` (rows of :func:`d2fast.quality.compare`) and ``recipe``
        (embedding normalisation, prune's parameters, and in ``auto`` what prune's
        ``hard_prune="auto"`` and ``gamma_r="auto"`` chose per seed, rate and D2 method,
        with their reasons).

    Notes
    -----
    Scores are the Area Under the Margin over the scoring run, turned into a difficulty
    (``max(aum) - aum``). Embeddings are the L2-normalised penultimate-layer activations
    (distances in [0, 2]); D2 runs with :func:`d2fast.prune`'s defaults, hard_prune="auto"
    and gamma_r="auto" included. "d2 labels" also gives ``prune`` the training labels (the
    flipped ones with ``label_noise``): by default they serve hard_prune="auto"'s label
    check only (one graph, no class budgets). "d2 extrap" trains the same network on a
    random 10 % of the rows only, takes its embeddings of all rows, predicts the other 90 %
    of the scores with ``d2fast.extrapolate`` (kNN) and runs D2 on those. Torch trains on one thread
    (restored afterwards): on a shared 2-core machine two threads were 6-30x slower per
    step. The selections run with the caller's thread count.
    """
    import torch
    from tqdm.auto import tqdm

    rates = tuple(_check_rate(r) for r in rates)
    seeds = tuple(check_int(s, "seeds", 0, 2**32 - 1, "non-negative seeds") for s in seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if not 0.0 <= float(label_noise) < 1.0:
        raise ValueError(f"label_noise == {label_noise}, must satisfy 0 <= label_noise < 1")
    name, data = _load(data_dir)
    setting = SETTINGS[(name, bool(quick))]
    n = min(setting.n_train or len(data[0]), len(data[0]))
    classes = int(max(data[1].max(), data[3].max())) + 1
    n_sub = max(classes, int(SUBSET * n))
    per_seed = setting.epochs * (_batches(n, setting.batch) + _batches(n_sub, setting.batch)) \
        + setting.iterations * (1 + len(rates) * len(METHODS))
    threads = torch.get_num_threads()
    summary = {"dataset": name, "n_train": n, "n_test": len(data[2]), "quick": bool(quick),
               "label_noise": float(label_noise), "seeds": list(seeds),
               "model": "MLP " + "-".join(map(str, (data[0].shape[1], *setting.hidden,
                                                    classes))),
               "score": f"difficulty({SCORE!r})", "score_epochs": setting.epochs,
               "iterations": setting.iterations, "batch": setting.batch,
               "scoring": [], "full": [], "results": [],
               "embedding": "penultimate layer, L2-normalised rows",
               "recipe": {"embeddings": "penultimate layer, L2-normalised",
                          "prune": "d2fast.prune defaults: k=5, gamma_f=1.0, gamma_r='auto', "
                                   "metric='euclidean', hard_prune='auto'",
                          "extrapolate": f"d2fast.extrapolate defaults (knn) from "
                                         f"{n_sub} rows", "auto": []}}
    try:
        with tqdm(total=per_seed * len(seeds), desc="demo", unit="step",
                  disable=not progress, file=sys.stderr) as bar:
            for seed in seeds:
                _one_seed(summary, data, setting, n, n_sub, classes, rates, seed,
                          float(label_noise), bar, threads)
    finally:
        torch.set_num_threads(threads)
    print(format_table(summary))
    if out is not None:
        plot(summary, out)
    return summary


def _one_seed(summary, data, setting, n, n_sub, classes, rates, seed, label_noise, bar,
              threads) -> None:
    """Scoring runs, selections and retrainings of one seed, appended to ``summary``."""
    import torch

    xtr, ytr, xte, yte = data
    rng = np.random.default_rng(seed)
    if n < len(xtr):
        rows = np.sort(rng.choice(len(xtr), n, replace=False))
        xtr, ytr = xtr[rows], ytr[rows]
    ytr = flip_labels(ytr, label_noise, classes, rng)
    torch.set_num_threads(1)  # small MLP steps: 1 thread (see run_demo's Notes)
    trainer = _Trainer(xtr, ytr, xte, yte, classes, setting, seed, bar)
    start = time.perf_counter()
    emb, scores = trainer.score_run(np.arange(n))
    full_s = time.perf_counter() - start
    subset = np.sort(rng.choice(n, n_sub, replace=False))
    start = time.perf_counter()
    emb_sub, known = trainer.score_run(subset)
    subset_s = time.perf_counter() - start
    torch.set_num_threads(threads)  # faiss and the OpenMP kernels: all cores
    start = time.perf_counter()
    extrapolated = d2fast.extrapolate(emb_sub, subset, known)
    extrapolate_s = time.perf_counter() - start
    summary["scoring"].append({"seed": seed, "full_s": full_s, "subset_s": subset_s,
                               "extrapolate_s": extrapolate_s})
    torch.set_num_threads(1)
    summary["full"].append({"seed": seed,
                            "accuracy": trainer.retrain(np.arange(n), "full data")[0]})
    def train_eval(keep, sd):
        torch.set_num_threads(1)
        acc = trainer.retrain(keep, "retrain")[0]
        torch.set_num_threads(threads)
        return acc

    torch.set_num_threads(threads)
    chosen: list = []
    rows = quality.compare(emb, scores, train_eval, rates=rates, seeds=(seed,),
                           methods=selectors(emb_sub, extrapolated, ytr, chosen))
    summary["recipe"]["auto"] += chosen
    for r in rows:  # each selection's settings, as in the sidecar of `d2fast prune`
        r["recipe"] = recipe(r["method"], r["rate"], seed)
    summary["results"] += rows


def recipe(method: str, rate: float, seed: int) -> dict:
    """The options of the call that selects ``method`` (defaults spelled out)."""
    if method in ("d2", "d2 labels", "d2 extrap"):
        return {"k": 5, "metric": "euclidean", "graph": "union", "knn": "auto",
                "gamma_f": 1.0, "gamma_r": "auto", "hard_prune": "auto",
                **({"labels": "the training labels", "class_budget": None}
                   if method == "d2 labels" else {})}
    return {"random": {"seed": seed}, "hardest": {"hardest": True},
            "ccs": {"hard_prune": 0.1, "n_strata": 50, "seed": seed}}[method]


def selectors(emb_sub: np.ndarray, extrapolated: np.ndarray, labels: np.ndarray,
              chosen: list | None = None) -> dict:
    """The demo's methods for :func:`d2fast.quality.compare`: D2 with ``prune``'s defaults
    on the full run's (emb, scores); the same given the training ``labels`` (n,) (the label
    check); D2 on the 10 % run's embeddings and
    extrapolated scores; random, hardest-first and CCS as in
    :data:`d2fast.quality.SELECTORS`. Each D2 selection appends to ``chosen`` what
    ``prune``'s "auto" defaults became: ``seed``, ``rate``, ``method``, ``hard_prune``,
    ``hard_prune_reason``, ``hard_prune_rescued``, ``gamma_r``, ``gamma_r_reason`` (from
    its info)."""
    def d2(method: str, fixed: tuple | None, **options):
        def select(e, s, r, _, seed):
            keep, info = d2fast.prune(*(fixed or (e, s)), rate=r, return_info=True, **options)
            if chosen is not None:
                chosen.append({"seed": seed, "rate": r, "method": method, **{
                    k: info[k] for k in ("hard_prune", "hard_prune_reason",
                                         "hard_prune_rescued", "gamma_r", "gamma_r_reason")}})
            return keep
        return select

    return {"d2": d2("d2", None),
            "d2 labels": d2("d2 labels", None, labels=labels),
            "d2 extrap": d2("d2 extrap", (emb_sub, extrapolated)),
            **{m: quality.SELECTORS[m] for m in BASELINES}}


def flip_labels(labels: np.ndarray, fraction: float, classes: int,
                rng: np.random.Generator) -> np.ndarray:
    """A copy of ``labels`` with ``round(fraction * n)`` rows (drawn from ``rng``) moved to
    a uniformly random other class."""
    out = labels.copy()
    rows = rng.choice(out.size, int(round(fraction * out.size)), replace=False)
    out[rows] = (out[rows] + rng.integers(1, classes, rows.size)) % classes
    return out


def _check_rate(rate) -> float:
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


class _Trainer:
    """The network, its training loops and the test evaluation of one demo seed."""

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

    def score_run(self, rows: np.ndarray):
        """Train on ``rows`` (sorted int64) while recording scores.

        Returns (float32 (n, hidden[-1]) L2-normalised embeddings of ALL rows,
        float64 (rows.size,) difficulty of ``rows``)."""
        from d2fast.scores import Recorder

        torch = self.torch
        batch = self.setting.batch
        features, model = self._network()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        recorder = Recorder(rows.size, self.classes)
        gen = torch.Generator().manual_seed(self.seed)
        ids = torch.from_numpy(rows)
        self.bar.set_description("scoring run" if rows.size == len(self.xtr) else "10 % run")
        for _ in range(self.setting.epochs):
            for pos in torch.randperm(rows.size, generator=gen).split(batch):
                logits = self._step(model, opt, ids[pos])
                recorder.update(pos, logits.detach(), self.ytr[ids[pos]])
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


def _mean_std(values) -> str:
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def format_table(summary: dict) -> str:
    """The demo's result table as text: test accuracy in %, mean ± std over the seeds."""
    name = {"fashion": "Fashion-MNIST", "digits": "scikit-learn digits"}[summary["dataset"]]
    scoring = summary["scoring"]
    full_s = np.mean([s["full_s"] for s in scoring])
    sub_s = np.mean([s["subset_s"] + s["extrapolate_s"] for s in scoring])
    noise = summary["label_noise"]
    lines = [f"{name}: {summary['n_train']} train / {summary['n_test']} test rows"
             + (f" ({noise:.0%} of the training labels flipped)" if noise else "")
             + f", {summary['model']}, {len(summary['seeds'])} seeds; every network trained "
             f"{summary['iterations']} steps of {summary['batch']}",
             f"scores {summary['score']} over {summary['score_epochs']} epochs: full run "
             f"{full_s:.1f} s; 10 % run + extrapolation {sub_s:.1f} s (d2 extrap)",
             f"test accuracy (%) on all {summary['n_train']} rows: "
             + _mean_std([f["accuracy"] for f in summary["full"]]),
             quality.format_table(summary["results"], baselines=BASELINES)]
    return "\n".join(lines)


def plot(summary: dict, path: str) -> None:
    """Test accuracy vs pruning rate, mean ± std error bars, full data as a dashed line."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the demo figure needs matplotlib: pip install 'd2fast[plot]'") \
            from None
    stats = quality.summarize(summary["results"])
    methods = list(dict.fromkeys(r["method"] for r in summary["results"]))
    rates = sorted({r["rate"] for r in summary["results"]})
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, method in enumerate(methods):
        shift = (i - (len(methods) - 1) / 2) * 0.6  # side by side, so the bars stay visible
        ax.errorbar([100 * r + shift for r in rates], [100 * stats[method, r][0] for r in rates],
                    yerr=[100 * stats[method, r][1] for r in rates], marker="osD^vx"[i % 6],
                    capsize=3, label=method)
    full = [100 * f["accuracy"] for f in summary["full"]]
    ax.axhline(np.mean(full), color="k", linestyle="--", linewidth=1,
               label=f"full data ({summary['n_train']} rows)")
    floor = np.mean(full) - 12  # a collapsing method (hardest-first) would squash the rest
    low = min(100 * (m - sd) for m, sd, _ in stats.values())
    if low < floor:
        ax.set_ylim(bottom=floor)
        ax.text(0.01, 0.01, "points below the axis: see the table", transform=ax.transAxes,
                fontsize="x-small", color="0.4")
    name = {"fashion": "Fashion-MNIST", "digits": "digits"}[summary["dataset"]]
    noise = summary["label_noise"]
    ax.set(xlabel="pruning rate (% of training rows removed)",
           ylabel=f"test accuracy (%), mean ± std of {len(summary['seeds'])} seeds",
           title=f"{name}" + (f", {noise:.0%} labels flipped" if noise else "")
           + f": {summary['model']}, {summary['iterations']} steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format=os.path.splitext(path)[1][1:].lower() or "png")
    plt.close(fig)
