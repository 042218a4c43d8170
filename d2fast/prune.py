"""``prune``: D2 Pruning from embeddings and scores in one call."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from d2fast import _backends
from d2fast._validate import (check_choice, check_emb, check_k, check_labels, check_real,
                              check_scores, label_names, resolve_n_keep)
from d2fast.budgets import (BUDGETS, by_class, class_budgets, hard_prune_pool,
                            merge_balanced, resolve_hard_prune)
from d2fast.graph import GRAPHS, METRICS, knn_graph
from d2fast.knn import KNN
from d2fast.passing import MODES, REVERSE, forward, select


def prune(emb: Any, scores: Any, k: int = 5, rate: float = 0.5, *, n_keep: int | None = None,
          gamma_f: float = 1.0, gamma_r: float = 0.1, metric: str = "euclidean",
          graph: str = "union", mode: str = "sum", reverse: str = "weighted",
          labels: Any = None, class_budget: str = "proportional", hard_prune: Any = "auto",
          knn: str = "auto", knn_params: dict | None = None, backend: str = "auto",
          progress: bool = False) -> np.ndarray:
    """Select a coreset with D2 Pruning: kNN graph -> forward -> greedy reverse selection.

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings (ndarray, memmap or torch tensor).
    scores : array-like of shape (n,)
        Difficulty scores, higher = harder/more important (negative values are fine).
    k : int, default=5
        Neighbours per node in the kNN graph, ``1 <= k < n``.
    rate : float, default=0.5
        Fraction REMOVED, ``0 <= rate < 1``; keeps ``floor((1 - rate) * n)`` rows,
        computed on the decimal value of rate (rate=0.9, n=10 keeps 1).
    n_keep : int, optional
        Number of rows to keep; overrides ``rate`` when given.
    gamma_f, gamma_r : float, default=1.0, 0.1
        Distance decay of the forward and reverse weights.
    metric : {'euclidean', 'sqeuclidean', 'cosine'}, default='euclidean'
    graph : {'union', 'directed'}, default='union'
    mode : {'sum', 'product'}, default='sum'
    reverse : {'weighted', 'absolute'}, default='weighted'
    labels : array-like of shape (n,), optional
        Class of each row (integers): class-balanced selection with one graph per class
        and per-class budgets that sum to ``n_keep``. The classes' picks are merged so
        that every prefix of the ranking stays balanced (the t-th pick of a class with
        budget b sits at (t + 0.5) / b).
    class_budget : {'proportional', 'uniform'}, default='proportional'
        Proportional: each class keeps its share of the rows (largest remainder).
        Uniform: equal budgets, capped at the class size, the rest redistributed.
    hard_prune : float or 'auto', default='auto'
        Drop the ``floor(hard_prune * n)`` hardest rows (highest score, ties: lower index
        first) before the graph is built (the CCS/D2 "mis-ratio"), ``0 <= hard_prune < 1``.
        ``'auto'``: the fraction of rows in a separate mode of high scores (mislabelled
        rows), plus a term growing with the pruning rate above 50 %, capped so that
        ``n_keep`` rows remain; see :func:`d2fast.budgets.auto_hard_prune`. ``0.0`` is
        pure D2.
    knn : {'auto', 'exact', 'hnsw', 'ivf'}, default='auto'
        kNN search; see :func:`d2fast.knn_graph` (also for ``knn_params``).
    knn_params : dict, optional
    backend : {'auto', 'cpp', 'numba', 'cuda', 'numpy'}, default='auto'
    progress : bool, default=False
        Show a progress bar for the kNN search.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Kept row ids in selection order, most important first.

    Examples
    --------
    >>> import numpy as np, d2fast
    >>> rng = np.random.default_rng(0)
    >>> emb, scores = rng.normal(size=(1000, 16)), rng.random(1000)
    >>> keep = d2fast.prune(emb, scores, k=5, rate=0.7)
    >>> keep.shape, keep.dtype
    ((300,), dtype('int64'))
    """
    X = check_emb(emb)
    n = X.shape[0]
    scores = check_scores(scores, n)
    check_k(k, n)
    n_keep = resolve_n_keep(n, rate, n_keep)
    class_budget = check_choice(class_budget, "class_budget", BUDGETS)
    # checked here too: the per-class runs skip them when a class keeps nothing
    check_real(gamma_f, "gamma_f"), check_real(gamma_r, "gamma_r")
    for value, name, options in ((metric, "metric", METRICS), (graph, "graph", GRAPHS),
                                 (mode, "mode", MODES), (reverse, "reverse", REVERSE),
                                 (knn, "knn", KNN)):
        check_choice(value, name, options)
    _backends.get(backend)
    beta, _ = resolve_hard_prune(scores, hard_prune, n_keep)
    pool = hard_prune_pool(scores, beta, n_keep)
    ids = None if labels is None else check_labels(labels, n)
    groups = [pool] if ids is None else by_class(ids, pool)
    budgets = [n_keep] if ids is None else class_budgets(
        [g.size for g in groups], n_keep, class_budget)
    if ids is not None:
        _warn_small_classes(labels, ids, groups, budgets, k)
    kw = dict(gamma_f=gamma_f, gamma_r=gamma_r, metric=metric, graph=graph, mode=mode,
              reverse=reverse, knn=knn, knn_params=knn_params, backend=backend,
              progress=progress)
    picks = [_d2(X, scores, rows, min(k, rows.size - 1), budget, **kw)
             for rows, budget in zip(groups, budgets)]
    return merge_balanced(picks)


def _d2(X, scores, rows, k, n_keep, *, gamma_f, gamma_r, metric, graph, mode, reverse, knn,
        knn_params, backend, progress) -> np.ndarray:
    """D2 on the subset ``rows`` (int64, sorted) of X; returns row ids of X."""
    if n_keep == 0:
        return np.empty(0, dtype=np.int64)
    if rows.size == 1:
        return rows.copy()
    sub = X if rows.size == X.shape[0] else X[rows]
    g = knn_graph(sub, k, metric=metric, graph=graph, knn=knn, knn_params=knn_params,
                  progress=progress, backend=backend)
    passed = forward(g, scores[rows], gamma_f=gamma_f, mode=mode, backend=backend)
    return rows[select(g, passed, n_keep, gamma_r=gamma_r, reverse=reverse, backend=backend)]


def _warn_small_classes(labels: Any, ids: np.ndarray, groups: list, budgets: list,
                        k: int) -> None:
    """One warning naming the classes whose graph gets fewer than k neighbours a row."""
    small = [rows for rows, b in zip(groups, budgets) if b and 1 < rows.size <= k]
    if not small:
        return
    names = label_names(labels)  # string labels: their names, else the class ids
    shown = [str(ids[rows[0]] if names is None else names[ids[rows[0]]]) for rows in small]
    listed = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
    warnings.warn(f"k={k} is not below the size of class(es) {listed} (after hard pruning): "
                  "their graphs use k = class size - 1", stacklevel=3)
