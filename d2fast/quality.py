"""Coreset quality, paper style: methods x pruning rates x seeds, test accuracy mean +- std.

Bring your own embeddings, scores (higher = harder) and a ``train_eval(keep, seed)`` that
trains a model on rows ``keep`` and returns its test accuracy; :func:`compare` runs every
method at every rate and seed, :func:`format_table` prints the table.

>>> import numpy as np
>>> from d2fast import quality
>>> rng = np.random.default_rng(0)
>>> emb, scores = rng.normal(size=(200, 4)), rng.random(200)
>>> rows = quality.compare(emb, scores, lambda keep, seed: keep.size / 200, rates=(0.5,),
...                        seeds=(0, 1), methods=("d2", "random"))
>>> sorted({(r["method"], r["accuracy"]) for r in rows})
[('d2', 0.5), ('random', 0.5)]
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

import d2fast
from d2fast import baselines

# name -> (emb, scores, rate, labels, seed) -> kept row ids
SELECTORS: dict[str, Callable[..., np.ndarray]] = {
    "d2": lambda e, s, r, labels, seed: d2fast.prune(e, s, rate=r, labels=labels),
    "d2 pure": lambda e, s, r, labels, seed: d2fast.prune(e, s, rate=r, hard_prune=0.0),
    "random": lambda e, s, r, labels, seed: baselines.random(e, s, r, labels=labels, seed=seed),
    "hardest": lambda e, s, r, labels, seed: baselines.topk(e, s, r, labels=labels),
    "easiest": lambda e, s, r, labels, seed: baselines.topk(e, s, r, hardest=False,
                                                            labels=labels),
    "ccs": lambda e, s, r, labels, seed: baselines.ccs(e, s, r, seed=seed),
}
METHODS = ("d2", "d2 pure", "random", "hardest", "easiest", "ccs")
BASELINES = ("random", "hardest", "easiest", "ccs")


def compare(emb: Any, scores: Any, train_eval: Callable[[np.ndarray, int], float], *,
            labels: Any = None, rates: tuple = (0.3, 0.5, 0.7, 0.9), seeds: tuple = (0, 1, 2),
            methods: Any = METHODS, progress: bool = False) -> list[dict]:
    """Train and evaluate on every method's coreset at every rate and seed.

    Parameters
    ----------
    emb : array-like of shape (n, d)
    scores : array-like of shape (n,), higher = harder
    train_eval : callable ``(keep, seed) -> float``
        Trains a fresh model on rows ``keep`` (int64, shape (n_keep,)) with ``seed`` and
        returns its test accuracy (or any metric, higher = better).
    labels : array-like of shape (n,), optional
        The training labels: d2 gets them for ``hard_prune="auto"``'s label check; random,
        hardest and easiest select per class; d2 pure (no hard prune) and ccs ignore them.
    rates : tuple of float
        Pruning rates (fraction removed).
    seeds : tuple of int
        Seeds of the random methods and of ``train_eval``.
    methods : iterable of str or dict
        Names of :data:`SELECTORS`, or a dict name -> ``(emb, scores, rate, labels, seed)
        -> keep`` of your own (e.g. D2 with other options).
    progress : bool, default=False
        One line per run on stderr.

    Returns
    -------
    list of dict
        One per (seed, rate, method): ``method``, ``rate``, ``seed``, ``n_keep``,
        ``accuracy``, ``select_s``.
    """
    import sys

    chosen = methods if isinstance(methods, dict) else {m: SELECTORS[m] for m in methods}
    emb, scores = np.asarray(emb), np.asarray(scores, dtype=np.float64)
    rows = []
    for seed in seeds:
        for rate in rates:
            for name, select in chosen.items():
                start = time.perf_counter()
                keep = np.asarray(select(emb, scores, rate, labels, seed))
                select_s = time.perf_counter() - start
                acc = float(train_eval(keep, seed))
                rows.append({"method": name, "rate": float(rate), "seed": seed,
                             "n_keep": int(keep.size), "accuracy": acc, "select_s": select_s})
                if progress:
                    print(f"seed {seed} rate {rate:g} {name}: {acc:.4f}", file=sys.stderr)
    return rows


def summarize(rows: list[dict]) -> dict:
    """``{(method, rate): (mean, std, runs)}`` of the accuracies (std with ddof=0)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["rate"]), []).append(r["accuracy"])
    return {key: (float(np.mean(v)), float(np.std(v)), len(v)) for key, v in groups.items()}


def format_table(rows: list[dict], *, scale: float = 100.0, reference: str = "d2",
                 baselines: tuple = BASELINES) -> str:
    """Methods x rates, ``mean ± std`` (times ``scale``: percent by default), then the
    reference method minus random and minus the best baseline per rate (means)."""
    stats = summarize(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    rates = sorted({r["rate"] for r in rows})
    runs = max(s[2] for s in stats.values())
    width = 14
    lines = [f"{'method':<12}" + "".join(f"{f'{100 * r:g} %':>{width}}" for r in rates)
             + f"   (mean ± std over {runs} runs)"]
    for m in methods:
        cells = [f"{scale * stats[m, r][0]:.2f} ± {scale * stats[m, r][1]:.2f}"
                 if (m, r) in stats else "" for r in rates]
        lines.append(f"{m:<12}" + "".join(f"{c:>{width}}" for c in cells))
    present = [b for b in baselines if b in methods]
    if reference in methods and present:
        for label, pick in ((f"{reference} - random", ["random"]),
                            (f"{reference} - best", present)):
            if not all(p in methods for p in pick):
                continue
            cells = [scale * (stats[reference, r][0] - max(stats[p, r][0] for p in pick))
                     for r in rates]
            lines.append(f"{label:<12}" + "".join(f"{c:>+{width}.2f}" for c in cells))
    return "\n".join(lines)
