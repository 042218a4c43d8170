"""A one-page figure of a pruning result: scores, classes and a 2-D map, kept vs pruned."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from d2fast._validate import (check_emb, check_ids, check_int, check_labels, check_scores,
                              label_names)

KEPT, PRUNED = "#d62728", "#9e9e9e"


def project_2d(emb: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """PCA of ``emb[rows]`` onto its first two principal axes: float64 (len(rows), 2).

    Only the sampled rows are read (a memmap is never loaded whole). With one column the
    second coordinate is 0.
    """
    X = np.asarray(emb[rows], dtype=np.float64)
    X = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    out = np.zeros((X.shape[0], 2))
    out[:, :min(2, vt.shape[0])] = X @ vt[:2].T
    return out


def report(emb: Any, scores: Any, keep: Any, labels: Any = None, *, path: str = "report.png",
           max_points: int = 20_000, seed: int = 0) -> dict:
    """Draw kept vs pruned rows and save the figure to ``path`` (png, pdf or svg).

    Panels: the score histogram of kept and pruned rows; the kept fraction of each class
    (with ``labels``); a scatter of a seeded sample of at most ``max_points`` rows on the
    first two principal axes of that sample (PCA by SVD).

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings; a memmap is read only at the sampled rows (and scanned once for NaN).
    scores : array-like of shape (n,)
    keep : array-like of int, shape (n_keep,)
        Kept row ids (e.g. the output of :func:`d2fast.prune`).
    labels : array-like of int, shape (n,), optional
    path : str, default='report.png'
    max_points : int, default=20000
        Rows drawn in the 2-D map (at least 2).
    seed : int, default=0
        Seed of the row sample.

    Returns
    -------
    dict
        ``n``, ``n_keep``, ``kept_fraction``, the mean score of kept and pruned rows and,
        with labels, ``class_kept_fraction`` ({class: fraction}).

    Raises
    ------
    ImportError
        Without matplotlib (``pip install 'd2fast[plot]'``).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("d2fast report needs matplotlib: pip install 'd2fast[plot]'") from None
    X = check_emb(emb)
    n = X.shape[0]
    scores = check_scores(scores, n)
    kept = np.zeros(n, dtype=bool)
    kept[check_ids(keep, n, "keep", unique=True)] = True
    names = None if labels is None else label_names(labels)
    labels = None if labels is None else check_labels(labels, n)
    max_points = check_int(max_points, "max_points", 2, 2**31, "rows drawn")
    summary = {"n": n, "n_keep": int(kept.sum()), "kept_fraction": float(kept.mean()),
               "mean_score_kept": float(scores[kept].mean()) if kept.any() else None,
               "mean_score_pruned": float(scores[~kept].mean()) if (~kept).any() else None}

    fig, axes = plt.subplots(1, 3 if labels is not None else 2,
                             figsize=(15 if labels is not None else 10, 4.2))
    _histogram(axes[0], scores, kept)
    if labels is not None:
        classes, fractions = _class_fractions(labels, kept)
        if names is not None:  # string labels: show their names, not the internal ids
            classes = names[classes]
        summary["class_kept_fraction"] = {
            (str(c) if names is not None else int(c)): float(f)
            for c, f in zip(classes, fractions)}
        _class_bars(axes[1], classes, fractions, summary["kept_fraction"])
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    _scatter(axes[-1], project_2d(X, rows), kept[rows], n)
    fig.suptitle(f"d2fast: kept {summary['n_keep']} of {n} rows "
                 f"({100 * summary['kept_fraction']:.1f} %)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format=os.path.splitext(path)[1][1:].lower() or "png")
    plt.close(fig)
    return summary


def _histogram(ax, scores: np.ndarray, kept: np.ndarray) -> None:
    bins = np.histogram_bin_edges(scores, bins=50)
    ax.hist(scores[~kept], bins=bins, color=PRUNED, alpha=0.8, label=f"pruned ({(~kept).sum()})")
    ax.hist(scores[kept], bins=bins, color=KEPT, alpha=0.6, label=f"kept ({kept.sum()})")
    ax.set(xlabel="score (higher = harder)", ylabel="rows", title="scores")
    ax.legend()


def _class_fractions(labels: np.ndarray, kept: np.ndarray):
    classes, inverse = np.unique(labels, return_inverse=True)
    totals = np.bincount(inverse, minlength=classes.size)
    return classes, np.bincount(inverse, weights=kept, minlength=classes.size) / totals


def _class_bars(ax, classes: np.ndarray, fractions: np.ndarray, overall: float) -> None:
    ax.bar(np.arange(classes.size), fractions, color=KEPT)
    ax.axhline(overall, color="k", linestyle="--", linewidth=1, label=f"overall {overall:.3f}")
    ax.set_xticks(np.arange(classes.size), [str(c) for c in classes],
                  rotation=90 if classes.size > 20 else 0)
    ax.set(xlabel="class", ylabel="kept fraction", title="kept fraction per class",
           ylim=(0, 1))
    ax.legend()


def _scatter(ax, xy: np.ndarray, kept: np.ndarray, n: int) -> None:
    # kept rows drawn on top but at a quarter of the area of pruned ones, so the pruned
    # part stays visible around them (same-size dots made a 30 % coreset look like all)
    size = max(1.0, min(12.0, 8000.0 / xy.shape[0]))
    ax.scatter(xy[~kept, 0], xy[~kept, 1], s=size, color=PRUNED, alpha=0.6, linewidths=0,
               label="pruned")
    ax.scatter(xy[kept, 0], xy[kept, 1], s=size / 4, color=KEPT, alpha=0.9, linewidths=0,
               label="kept")
    sample = "" if xy.shape[0] == n else f", {xy.shape[0]} of {n} rows"
    ax.set(xlabel="PC 1", ylabel="PC 2", title=f"embeddings, PCA{sample}")
    ax.legend(markerscale=max(1.0, 12.0 / size))
