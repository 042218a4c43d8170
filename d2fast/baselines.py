"""Baselines that D2 Pruning is compared against (SPEC 5): random, top-k, CCS, moderate, k-center.

Every function takes ``(emb, scores, rate)`` like :func:`d2fast.prune`, keeps
``n_keep = floor((1 - rate) * n)`` rows (or ``n_keep=`` when given) and returns their
row ids as int64, unique, in a meaningful order where there is one (each docstring says
which). ``n_keep=0`` gives an empty array. Inputs are validated as in ``prune``: the
embeddings are checked (shape, finite) even by the functions that only use scores.

>>> import numpy as np
>>> from d2fast import baselines
>>> rng = np.random.default_rng(0)
>>> emb, scores = rng.normal(size=(1000, 16)), rng.random(1000)
>>> baselines.kcenter(emb, scores, rate=0.9).shape
(100,)
>>> baselines.topk(emb, scores, n_keep=3).tolist() == np.argsort(-scores)[:3].tolist()
True
"""
from __future__ import annotations

from typing import Any

import numpy as np

from d2fast._ties import tie_keys
from d2fast._validate import (check_choice, check_emb, check_int, check_labels, check_scores,
                              resolve_n_keep)
from d2fast.graph import METRICS
from d2fast.knn import float32_rows
from d2fast.budgets import (BUDGETS, by_class, class_budgets, hard_prune_pool, merge_balanced,
                            resolve_hard_prune)

__all__ = ["ccs", "kcenter", "moderate", "random", "topk"]
MAX_STRATA = 2**20


def random(emb: Any, scores: Any, rate: float = 0.5, *, n_keep: int | None = None,
           labels: Any = None, class_budget: str = "proportional",
           seed: int = 0) -> np.ndarray:
    """Uniform random subset, without replacement (optionally class-balanced).

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings; validated (shape, finite, length), contents unused.
    scores : array-like of shape (n,)
        Difficulty scores; validated, unused.
    rate : float, default=0.5
        Fraction REMOVED, ``0 <= rate < 1``.
    n_keep : int, optional
        Rows to keep, ``0 <= n_keep <= n``; overrides ``rate``.
    labels : array-like of int of shape (n,), optional
        Class of each row: sample each class separately with per-class budgets.
    class_budget : {'proportional', 'uniform'}, default='proportional'
        Per-class budgets, as in :func:`d2fast.prune`.
    seed : int, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Row ids in random order (every prefix is a uniform sample too; with labels, a
        balanced merge of the classes' random orders).
    """
    _, scores, n_keep, groups, budgets = _setup(emb, scores, rate, n_keep, labels,
                                                class_budget)
    rng = np.random.default_rng(_check_seed(seed))
    return merge_balanced([rng.permutation(rows)[:b] for rows, b in zip(groups, budgets)])


def topk(emb: Any, scores: Any, rate: float = 0.5, *, n_keep: int | None = None,
         hardest: bool = True, labels: Any = None,
         class_budget: str = "proportional") -> np.ndarray:
    """Keep the hardest (highest score) or the easiest rows, optionally per class.

    The classic score-based pruning baseline (e.g. Paul et al., NeurIPS 2021, EL2N/GraNd;
    Toneva et al., ICLR 2019, forgetting).

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings; validated (shape, finite, length), contents unused.
    scores : array-like of shape (n,)
        Difficulty scores, higher = harder.
    rate, n_keep
        As in :func:`random`.
    hardest : bool, default=True
        Keep the highest scores; ``False`` keeps the lowest (easiest) ones.
    labels, class_budget
        As in :func:`random`: the top of each class with per-class budgets.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Row ids by score, hardest (or easiest) first; ties: lower tie key first
        (:mod:`d2fast._ties`: a fixed hash of the id, so row order does not decide). With
        labels, a balanced merge of the classes' rankings.
    """
    if not isinstance(hardest, (bool, np.bool_)):
        raise TypeError(f"hardest must be a bool, got {type(hardest).__name__}")
    _, scores, n_keep, groups, budgets = _setup(emb, scores, rate, n_keep, labels,
                                                class_budget)
    sign = -1.0 if hardest else 1.0
    return merge_balanced([rows[np.lexsort((tie_keys(rows), sign * scores[rows]))[:b]]
                   for rows, b in zip(groups, budgets)])


def ccs(emb: Any, scores: Any, rate: float = 0.5, *, n_keep: int | None = None,
        hard_prune: float = 0.1, n_strata: int = 50, seed: int = 0) -> np.ndarray:
    """Coverage-centric coreset selection: stratified sampling over score strata.

    Zheng et al., "Coverage-centric Coreset Selection for High Pruning Rates", ICLR 2023.

    1. Drop the ``floor(hard_prune * n)`` hardest rows (highest score, ties: lower tie
       key first, :mod:`d2fast._ties`; the paper's "mis-ratio" beta).
    2. Split the remaining rows' score range ``[min, max]`` into ``n_strata`` strata of
       equal width: row i is in stratum ``#{j in 1..n_strata-1 : s_i >= min + j * w}``,
       ``w = (max - min) / n_strata`` (the maximum falls in the last stratum; all rows in
       stratum 0 when the scores are equal).
    3. Budgets equalised across strata (the paper's Algorithm 1, as the official code):
       visit strata from the fewest rows to the most (ties: lower stratum first); each
       gets ``min(its size, remaining budget // strata not yet visited)``. The budgets
       sum to ``n_keep``.
    4. Sample uniformly without replacement within each stratum (seeded).

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings; validated (shape, finite, length), contents unused.
    scores : array-like of shape (n,)
        Difficulty scores, higher = harder (for AUM pass e.g. ``max(aum) - aum``).
    rate, n_keep
        As in :func:`random`.
    hard_prune : float, default=0.1
        Fraction of hardest rows dropped first, ``0 <= hard_prune < 1``. The paper tunes
        it per dataset and pruning rate (the official README's CIFAR-10 example at 90 %
        pruning uses 0.3); 0.1 is a fixed middle default: tune it, and lower it when
        ``rate < hard_prune`` (more rows must be kept than hard pruning leaves).
    n_strata : int, default=50
        Number of equal-width score strata (the paper's k = 50).
    seed : int, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Row ids in increasing order (the selection is a set).

    Raises
    ------
    ValueError
        Also when fewer than ``n_keep`` rows remain after hard pruning (lower
        ``hard_prune``).
    """
    _, scores, n_keep = _inputs(emb, scores, rate, n_keep)
    n_strata = check_int(n_strata, "n_strata", 1, MAX_STRATA, "at most 2**20 strata")
    rng = np.random.default_rng(_check_seed(seed))
    pool = hard_prune_pool(scores, resolve_hard_prune(scores, hard_prune, n_keep)[0], n_keep)
    stratum = ccs_strata(scores[pool], n_strata)
    sizes = np.bincount(stratum, minlength=n_strata)
    budgets = ccs_budgets(sizes, n_keep)
    by_stratum = np.argsort(stratum, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picks = [rng.choice(pool[by_stratum[starts[i]:starts[i + 1]]], budgets[i], replace=False)
             for i in range(n_strata) if budgets[i]]
    return np.sort(np.concatenate(picks)).astype(np.int64) if picks else \
        np.empty(0, dtype=np.int64)


def ccs_strata(scores: np.ndarray, n_strata: int) -> np.ndarray:
    """Stratum (int64 in ``[0, n_strata)``) of each score: equal-width bins over [min, max]."""
    lo, hi = float(scores.min()), float(scores.max())
    width = (hi - lo) / n_strata
    if width == 0.0:
        return np.zeros(scores.size, dtype=np.int64)
    edges = lo + width * np.arange(1, n_strata)
    return np.searchsorted(edges, scores, side="right").astype(np.int64)


def ccs_budgets(sizes: np.ndarray, n_keep: int) -> np.ndarray:
    """CCS budgets (int64, like ``sizes``): equalised, smallest strata first, sum n_keep."""
    budgets = np.zeros(sizes.size, dtype=np.int64)
    left = n_keep
    for visited, s in enumerate(np.argsort(sizes, kind="stable")):
        budgets[s] = min(int(sizes[s]), left // (sizes.size - visited))
        left -= int(budgets[s])
    return budgets


def moderate(emb: Any, scores: Any, rate: float = 0.5, *, n_keep: int | None = None,
             labels: Any = None) -> np.ndarray:
    """Moderate coreset: rows whose distance to their class median is near the median distance.

    Xia et al., "Moderate Coreset: A Universal Method of Data Selection for Real-world
    Data-efficient Deep Learning", ICLR 2023.

    For each class (all rows form one class when ``labels`` is None): the feature-wise
    median of its embeddings, the L2 distance of each row to it (float64), and the
    ``budget`` rows in the middle of the distance ranking (ranks ``(m - budget) // 2``
    up to ``(m - budget) // 2 + budget - 1`` of the class's m rows, ties in distance:
    lower index first) -- the band the official code keeps. Budgets are proportional to
    class sizes (largest remainder) when labels are given. (The official code ranks all
    classes' distances together; per-class budgets keep the class balance.)

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings.
    scores : array-like of shape (n,)
        Validated for shape and finiteness but UNUSED: moderate only uses the embeddings.
    rate, n_keep
        As in :func:`random`.
    labels : array-like of int of shape (n,), optional
        Class of each row.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Row ids, most moderate first (by ``|rank - (m - 1) / 2|``, ties: lower rank), so
        every prefix is again a centred band; with labels, a balanced merge of the classes.
    """
    X, _, n_keep, groups, budgets = _setup(emb, scores, rate, n_keep, labels, "proportional")
    picks = []
    for rows, b in zip(groups, budgets):
        feats = np.asarray(X[rows], dtype=np.float64)
        dist = np.linalg.norm(feats - np.median(feats, axis=0), axis=1)
        ranked = np.argsort(dist, kind="stable")
        m = rows.size
        middle_first = np.lexsort((np.arange(m), np.abs(2 * np.arange(m) - (m - 1))))
        picks.append(rows[ranked[middle_first[:b]]])
    return merge_balanced(picks)


def kcenter(emb: Any, scores: Any, rate: float = 0.5, *, n_keep: int | None = None,
            metric: str = "euclidean", seed: int = 0, progress: bool = False) -> np.ndarray:
    """Greedy k-center: repeatedly take the row farthest from the rows taken so far.

    Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
    Approach", ICLR 2018.

    The first row is drawn uniformly at random (seeded); each next pick is the unselected
    row with the largest distance to its nearest selected row, ties: lowest index. The
    covering radius after k picks is at most twice the optimal k-center radius.
    Distances are float32, one pass of faiss' ``fvec_L2sqr_ny`` over all rows per pick,
    summed from the differences (no ``|x|^2 + |y|^2 - 2 x.y`` cancellation: duplicates
    of a picked row are at distance exactly 0); euclidean and sqeuclidean give the same
    picks (both rank by squared L2), cosine ranks by ``|u - w|^2 = 2 (1 - cos)`` of the
    unit rows. Time O(n * n_keep * d) on one thread (about 0.35 ms per pick at n=50k,
    d=64); memory O(n * d) for a float32 copy of ``emb`` (built in row blocks from a
    memmap), never O(n^2).

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings: ndarray, memmap or torch tensor.
    scores : array-like of shape (n,)
        Validated for shape and finiteness but UNUSED.
    rate, n_keep
        As in :func:`random`.
    metric : {'euclidean', 'sqeuclidean', 'cosine'}, default='euclidean'
        As in :func:`d2fast.knn_graph`; cosine distance is ``1 - cos``, and a zero row is
        at distance 1 from everything.
    seed : int, default=0
        Seed of ``numpy.random.default_rng`` for the first row.
    progress : bool, default=False
        Show a tqdm progress bar over the picks.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Row ids in pick order (every prefix is the greedy k-center set of its size).
    """
    import faiss
    from tqdm.auto import tqdm

    X, _, n_keep = _inputs(emb, scores, rate, n_keep)
    n, d = X.shape
    cosine = check_choice(metric, "metric", METRICS) == "cosine"
    first = int(np.random.default_rng(_check_seed(seed)).integers(n))
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    picks = np.empty(n_keep, dtype=np.int64)
    if n_keep == 0:
        return picks
    X = float32_rows(X, normalize=cosine)
    zero_rows = np.flatnonzero(~X.any(axis=1)) if cosine else None
    nearest = np.full(n, np.inf, dtype=np.float32)  # key of the nearest pick, >= 0
    key = np.empty(n, dtype=np.float32)
    x_ptr, key_ptr = faiss.swig_ptr(X), faiss.swig_ptr(key)
    v = first
    for t in tqdm(range(n_keep), desc="k-center", unit="pick", disable=not progress):
        picks[t] = v
        if t + 1 == n_keep:
            continue  # the last pick needs no distances
        faiss.fvec_L2sqr_ny(key_ptr, faiss.swig_ptr(X[v]), x_ptr, d, n)  # from differences
        if cosine:  # key |u - w|^2 = 2 (1 - cos) for unit rows; 2 when either row is zero
            if zero_rows.size and not X[v].any():
                key.fill(2.0)
            else:
                key[zero_rows] = 2.0
        np.minimum(nearest, key, out=nearest)
        nearest[v] = -1.0  # selected: never picked again (keys are >= 0)
        v = int(np.argmax(nearest))
    return picks


def _setup(emb, scores, rate, n_keep, labels, class_budget):
    """Validated (X, scores, n_keep, per-class row groups, per-class budgets)."""
    X, scores, n_keep = _inputs(emb, scores, rate, n_keep)
    n = X.shape[0]
    class_budget = check_choice(class_budget, "class_budget", BUDGETS)
    pool = np.arange(n, dtype=np.int64)
    if labels is None:
        return X, scores, n_keep, [pool], [n_keep]
    groups = by_class(check_labels(labels, n), pool)
    return X, scores, n_keep, groups, class_budgets([g.size for g in groups], n_keep, class_budget)


def _inputs(emb, scores, rate, n_keep):
    """Validated (X view, scores float64 copy, n_keep)."""
    X = check_emb(emb)
    scores = check_scores(scores, X.shape[0])
    return X, scores, resolve_n_keep(X.shape[0], rate, n_keep)


def _check_seed(seed: Any) -> int:
    return check_int(seed, "seed", 0, 2**63 - 1, "a non-negative int")
