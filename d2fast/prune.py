"""``prune``: D2 Pruning from embeddings and scores in one call."""
from __future__ import annotations

from typing import Any

import numpy as np

from d2fast._validate import check_emb, check_k, check_scores, resolve_n_keep
from d2fast.graph import knn_graph
from d2fast.passing import forward, select


def prune(emb: Any, scores: Any, k: int = 5, rate: float = 0.5, *, n_keep: int | None = None,
          gamma_f: float = 1.0, gamma_r: float = 0.1, metric: str = "euclidean",
          graph: str = "union", mode: str = "sum", reverse: str = "weighted",
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
    g = knn_graph(X, k, metric=metric, graph=graph, knn=knn, knn_params=knn_params,
                  progress=progress, backend=backend)
    passed = forward(g, scores, gamma_f=gamma_f, mode=mode, backend=backend)
    return select(g, passed, n_keep, gamma_r=gamma_r, reverse=reverse, backend=backend)
