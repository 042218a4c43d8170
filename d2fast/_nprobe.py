"""``nprobe='auto'``: the fewest IVF lists a query probes for a target recall@k.

A query probes the ``nprobe`` lists whose centroids are nearest to it among the ``pool``
centroids nearest to its own list's centroid (:mod:`d2fast._ivf`; ``pool`` defaults to
``8 nprobe``). A seeded sample of the queries is searched exactly (list by list, nearest
Voronoi cell first, until the cells left are provably too far). Every true neighbour
lies in one list, and it is found at (nprobe, pool) = (p, w) exactly when its list is
among the query's p probes, because the probed lists are scanned exactly (the candidates
are then re-ranked in float64). So one pass gives the sample's recall r(p, w) at every
p, for ``w = 8 p`` and for wider pools.

The choice is the (p, w) of least cost ``p n / nlist + w`` (rows of the probed lists plus
centroids compared, per query) among those with ``r - 2 sqrt(r (1 - r) / pairs) >=
target`` (two binomial standard errors to spare: with about 2560 pairs at k = 10 and a
target of 0.99, the sample must show about 0.995). A wider pool matters where k-means
put fewer lists than the data has clusters: a list's centroid then lies between
clusters, and the other lists of a query's cluster can rank far down its own centroid's
neighbours (10M rows around 10000 centres in 6324 lists: recall 0.979 at nprobe 16 with
the 8 nprobe pool, 0.9996 at nprobe 9 with a pool of 1152). The sample reads the lists
near each sampled query: under a second at 10M x 64 on clustered data.
"""
from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from d2fast._threads import pairwise_sq, run
from d2fast._validate import check_int

RECALL = 0.99  # the default target recall@k of nprobe='auto'
SAMPLE = 256  # sampled queries (about 2560 neighbour pairs at k = 10)
MAX_NPROBE = 128  # nprobe='auto' never probes more lists than this
POOL = 8  # the default pool: 8 nprobe centroids
WIDE = (128, 256, 512, 1024)  # the wider pools nprobe='auto' tries
CELLS_BYTES = 1 << 28  # ... up to a pool table (8 B id + 8 B separation) of this size


def check_nprobe(value: Any, name: str = "nprobe") -> int | str:
    """An int >= 1 (a 32-bit int) or 'auto'."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"{name} == {value!r}, must be an int >= 1 or 'auto'")
        return value
    return check_int(value, name, 1, 2**31 - 1, "a 32-bit int")


def check_recall(value: Any, name: str = "recall") -> float:
    """The target recall of nprobe='auto': a real number in (0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} == {value!r}, must satisfy 0 < {name} <= 1")
    return float(value)


def auto_nprobe(X: Any, normalize: bool, cosine: bool,
                search_rows: Callable[[np.ndarray], np.ndarray],
                C: np.ndarray, C_full: np.ndarray, offsets: np.ndarray, members: np.ndarray,
                queries: np.ndarray, own: np.ndarray, k: int, recall: float,
                threads: ThreadPoolExecutor,
                list_of: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """The least costly (nprobe, pool) sure of ``recall`` (module docstring), as a dict:
    ``nprobe``, ``pool`` (None: the default ``8 nprobe``), ``recall_target``,
    ``recall_sampled`` (the sample's recall there), ``queries_sampled``. When no choice is
    sure, the most lists (``MAX_NPROBE`` or nlist) with the widest pool. Arguments as
    :func:`recall_curves`."""
    curves, pairs = recall_curves(X, normalize, cosine, search_rows, C, C_full, offsets,
                                  members, queries, own, k, threads, list_of)
    return cheapest(curves, pairs, members.size / C.shape[0], recall,
                    int(min(queries.size, SAMPLE)))[0]


def cheapest(curves: dict, pairs: int, size: float, recall: float,
             sampled: int) -> tuple[dict, float]:
    """:func:`auto_nprobe`'s choice from the curves of :func:`recall_curves` (``pairs``
    pairs), lists of ``size`` rows on average, ``sampled`` queries; and its cost, the
    rows and centroids a query compares with (``p size + pool``; inf when no choice is
    sure)."""
    best = None
    for width, curve in curves.items():
        sure = curve - 2.0 * np.sqrt(curve * (1.0 - curve) / max(1, pairs))
        if (sure >= recall).any():
            p = int(np.argmax(sure >= recall)) + 1
            cost = p * size + (POOL * p if width is None else width)
            if best is None or cost < best[0]:
                best = (cost, p, width)
    if best is None:
        width = max(curves, key=lambda w: -1 if w is None else w)
        best = (np.inf, curves[width].size, width)
    cost, p, width = best
    return {"nprobe": p, "pool": width, "recall_target": recall,
            "recall_sampled": float(curves[width][p - 1]),
            "queries_sampled": sampled}, float(cost)


def sample(m: int) -> np.ndarray:
    """The positions (sorted) of the queries :func:`recall_curves` searches exactly."""
    return np.sort(np.random.default_rng(0).choice(m, min(m, SAMPLE), replace=False))


def pool_widths(nlist: int) -> list:
    """The pools nprobe='auto' tries: None (``8 nprobe``) and the ``WIDE`` ones below
    nlist whose table (nlist x width, 16 B each) fits ``CELLS_BYTES``."""
    return [None] + [w for w in WIDE if w < nlist and 16 * nlist * w <= CELLS_BYTES]


def recall_curves(X: Any, normalize: bool, cosine: bool,
                  search_rows: Callable[[np.ndarray], np.ndarray],
                  C: np.ndarray, C_full: np.ndarray, offsets: np.ndarray, members: np.ndarray,
                  queries: np.ndarray, own: np.ndarray, k: int,
                  threads: ThreadPoolExecutor,
                  list_of: Callable[[np.ndarray], np.ndarray] | None = None
                  ) -> tuple[dict, int]:
    """``{pool: recall}``: for each pool of :func:`pool_widths`, float64
    (min(nlist, MAX_NPROBE),), the recall@k of the sampled queries at nprobe = 1, 2, ...;
    and the number of (query, neighbour) pairs they are counted over.

    Parameters
    ----------
    X : the full rows (n, d) of the row ids, indexable by an int64 array
    normalize : bool, unit rows are made on reading X
    cosine : bool, the keys of the exact re-ranking (1 - cos instead of squared L2)
    search_rows : ids -> float32 rows of the search space (PCA or the rows themselves)
    C : float32 (nlist, d_search), the centroids in the search space
    C_full : float32 (nlist, d), the centroids the lists are exact nearest-centroid lists of
    offsets, members : the lists, as ``Partition.lists()`` (row ids of X)
    queries, own : int64 (m,), the query row ids and their lists
    k : neighbours a query
    threads : the threads of :func:`d2fast._threads.faiss_threads`
    list_of : row ids -> their lists, optional (default: the inverse of the lists, built
        here, 4 B a row)

    With a PCA search space it counts the neighbours in the probed lists, an upper bound
    of the recall (the scan in the projection may still miss them).
    """
    nlist = C.shape[0]
    pick = sample(queries.size)
    q, o = queries[pick], own[pick]
    truth = _exact_neighbours(X, normalize, cosine, q, C_full, offsets, members, k, threads)
    if list_of is None:  # the inverse of the lists, O(n): 4 B a row
        inverse = np.empty(X.shape[0], dtype=np.int32)
        inverse[members] = np.repeat(np.arange(nlist, dtype=np.int32), np.diff(offsets))
        list_of = inverse.__getitem__
    lists = np.where(truth >= 0, list_of(np.maximum(truth, 0)), -1)
    return curves_of(C, np.ascontiguousarray(search_rows(q)), o, lists)


def curves_of(C: np.ndarray, Yq: np.ndarray, o: np.ndarray, lists: np.ndarray
              ) -> tuple[dict, int]:
    """:func:`recall_curves` of sampled queries given their rows ``Yq`` (s, d_search) and
    lists ``o`` (s,), and the lists of their true neighbours ``lists`` (s, k; -1: none)."""
    import faiss

    nlist = C.shape[0]
    found = lists >= 0
    # each query's pool, nearest its own centroid first, and its distances to them
    # (float32, as the search's faiss.knn)
    cap = min(nlist, MAX_NPROBE)
    widths = pool_widths(nlist)
    width = min(nlist, POOL * cap)  # every pool tried: WIDE <= POOL * MAX_NPROBE
    uo, inv = np.unique(o, return_inverse=True)
    near = faiss.knn(C[uo], C, width)[1][inv]  # (s, width)
    Dq = np.take_along_axis(pairwise_sq(Yq, C), near, 1)
    # each neighbour's list: its position in the query's pool (width if absent), distance
    hit = near[:, None, :] == lists[:, :, None]
    pos = np.where(hit.any(axis=2), hit.argmax(axis=2), width)
    d_list = np.take_along_axis(Dq, np.minimum(pos, width - 1), axis=1)
    pairs = int(found.sum())
    ps = np.arange(1, cap + 1)
    curves = {}
    for w_given in widths:
        # the probes at nprobe p: the p nearest of the first w(p) of the pool; kth (s, cap)
        # is the p-th smallest distance there (inf when the whole prefix is probed)
        if w_given is None:
            ws = np.minimum(width, POOL * ps)
            kth = np.stack([np.partition(Dq[:, :w], p - 1, axis=1)[:, p - 1] if p < w else
                            np.full(Dq.shape[0], np.inf) for p, w in zip(ps, ws)], axis=1)
        else:
            ws = np.minimum(width, np.maximum(w_given, ps))
            S = np.sort(Dq[:, :min(width, w_given)], axis=1)
            kth = np.where(ps < ws, S[:, np.minimum(ps, S.shape[1]) - 1], np.inf)
        probed = (pos[:, :, None] < ws) & (d_list[:, :, None] <= kth[:, None, :])
        curves[w_given] = (probed & found[:, :, None]).sum(axis=(0, 1)) / max(1, pairs)
    return curves, pairs


def _exact_neighbours(X: Any, normalize: bool, cosine: bool, q: np.ndarray, C: np.ndarray,
                      offsets: np.ndarray, members: np.ndarray, k: int,
                      threads: ThreadPoolExecutor) -> np.ndarray:
    """int64 (len(q), k): the k nearest ``members`` rows of every row q (itself excluded),
    -1 padded: the k + 9 nearest by float32 squared L2, re-ranked by exact float64 key
    (``cosine``: 1 - cos) with ties to the lower id, as the IVF search re-ranks.

    The lists are read in the order of their Voronoi cells' distance from the query (the
    bisector bound of :mod:`d2fast._ivf`, ``C`` the full-space centroids the lists are
    exact nearest-centroid lists of), 4 lists a query in the first round and twice as
    many each round after, until the next cell lies beyond the query's (k+9)-th distance
    with float32 rounding allowed for (``d2fast._nearest.out_of_reach``): then no list left can
    hold a nearer row. On clustered data a query reads a few lists, not all n rows."""
    from d2fast import _backends
    from d2fast._ivf import _rerank
    from d2fast._nearest import out_of_reach
    from d2fast.knn import _MARGIN, float32_rows

    kernels = _backends.get("auto")
    s, nlist = q.size, C.shape[0]
    Q = float32_rows(np.asarray(X[q]), normalize)
    Q64, C64 = Q.astype(np.float64), C.astype(np.float64)
    cn = np.einsum("ij,ij->i", C64, C64)
    d2 = np.einsum("ij,ij->i", Q64, Q64)[:, None] + cn - 2.0 * Q64 @ C64.T  # (s, nlist)
    o = d2.argmin(axis=1)
    sep = np.sqrt(np.maximum(cn[o][:, None] + cn - 2.0 * C64[o] @ C64.T, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(sep > 0, (d2 - d2[np.arange(s), o][:, None]) / (2.0 * sep), 0.0)
    h = np.maximum(h, 0.0)
    h[np.arange(s), o] = 0.0
    order = np.argsort(h, axis=1, kind="stable")
    h_sorted = np.take_along_axis(h, order, 1)
    qn = np.sqrt(np.einsum("ij,ij->i", Q64, Q64))
    c = k + 1 + _MARGIN  # the query itself may be among them; re-ranked in float64
    D = np.full((s, c), np.inf, dtype=np.float32)
    I = np.full((s, c), -1, dtype=np.int64)
    todo, at, step = np.arange(s), 0, 4
    while todo.size and at < nlist:
        lists = order[todo, at:at + step]  # (t, w): slot r * w + j is query todo[r], list
        w = lists.shape[1]
        Ds = np.full((todo.size * w, c), np.inf, dtype=np.float32)
        Is = np.full((todo.size * w, c), -1, dtype=np.int64)
        flat = lists.ravel()
        slots = np.argsort(flat, kind="stable")
        bounds = np.flatnonzero(np.r_[True, flat[slots][1:] != flat[slots][:-1]])

        def scan(mine: np.ndarray) -> None:
            lst = flat[mine[0]]
            rows = members[offsets[lst]:offsets[lst + 1]]
            if rows.size:
                B = float32_rows(np.asarray(X[rows]), normalize)
                kernels.topk_merge(pairwise_sq(Q[todo[mine // w]], B), rows, mine, Ds, Is)

        run(threads, [(scan, slots[a:b]) for a, b in zip(bounds, np.r_[bounds[1:], slots.size])])
        kernels.topk_merge(Ds.reshape(todo.size, -1), Is.reshape(todo.size, -1), todo, D, I)
        at, step = at + w, 2 * step
        nxt = h_sorted[todo, at] if at < nlist else np.full(todo.size, np.inf)
        todo = todo[~out_of_reach(nxt, qn[todo], D[todo, -1], Q.shape[1])]
    return _rerank(X, q, I, k, cosine, normalize, "auto")[0]
