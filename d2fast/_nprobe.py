"""``nprobe='auto'``: the fewest IVF lists a query probes for a target recall@k.

A query probes the ``nprobe`` lists whose centroids are nearest to it among the ``pool``
centroids nearest to its own list's centroid (:mod:`d2fast._ivf`; ``pool`` defaults to
``8 nprobe``). A seeded sample of the queries is searched exactly (faiss brute force over
the database rows, in blocks). Every true neighbour lies in one list, and it is found at
(nprobe, pool) = (p, w) exactly when its list is among the query's p probes, because the
probed lists are scanned exactly (the candidates are then re-ranked in float64). So one
pass gives the sample's recall r(p, w) at every p, for ``w = 8 p`` and for wider pools.

The choice is the (p, w) of least cost ``p n / nlist + w`` (rows of the probed lists plus
centroids compared, per query) among those with ``r - 2 sqrt(r (1 - r) / pairs) >=
target`` (two binomial standard errors to spare: with about 2560 pairs at k = 10 and a
target of 0.99, the sample must show about 0.995). A wider pool matters where k-means
put fewer lists than the data has clusters: a list's centroid then lies between
clusters, and the other lists of a query's cluster can rank far down its own centroid's
neighbours (10M rows around 10000 centres in 6324 lists: recall 0.979 at nprobe 16 with
the 8 nprobe pool, 0.9996 at nprobe 9 with a pool of 1152). The sample costs O(sample n
d), about 10 s at 10M x 64.
"""
from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from d2fast._threads import pairwise_sq, run
from d2fast._validate import BLOCK_ROWS, check_int

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


def auto_nprobe(X: Any, normalize: bool, search_rows: Callable[[np.ndarray], np.ndarray],
                C: np.ndarray, offsets: np.ndarray, members: np.ndarray, queries: np.ndarray,
                own: np.ndarray, k: int, recall: float,
                threads: ThreadPoolExecutor) -> tuple[int, int | None, float]:
    """``(nprobe, pool, sampled recall)``: the least costly choice sure of ``recall``
    (module docstring); ``pool`` None is the default ``8 nprobe``. When no choice is
    sure, the most lists (``MAX_NPROBE`` or nlist) with the widest pool. Arguments as
    :func:`recall_curves`."""
    curves, pairs = recall_curves(X, normalize, search_rows, C, offsets, members, queries,
                                  own, k, threads)
    size = members.size / C.shape[0]  # rows a list on average
    best = None
    for width, curve in curves.items():
        sure = curve - 2.0 * np.sqrt(curve * (1.0 - curve) / max(1, pairs))
        if (sure >= recall).any():
            p = int(np.argmax(sure >= recall)) + 1
            cost = p * size + (POOL * p if width is None else width)
            if best is None or cost < best[0]:
                best = (cost, p, width, float(curve[p - 1]))
    if best is None:
        width = max(curves, key=lambda w: -1 if w is None else w)
        return curves[width].size, width, float(curves[width][-1])
    return best[1], best[2], best[3]


def sample(m: int) -> np.ndarray:
    """The positions (sorted) of the queries :func:`recall_curves` searches exactly."""
    return np.sort(np.random.default_rng(0).choice(m, min(m, SAMPLE), replace=False))


def pool_widths(nlist: int) -> list:
    """The pools nprobe='auto' tries: None (``8 nprobe``) and the ``WIDE`` ones below
    nlist whose table (nlist x width, 16 B each) fits ``CELLS_BYTES``."""
    return [None] + [w for w in WIDE if w < nlist and 16 * nlist * w <= CELLS_BYTES]


def recall_curves(X: Any, normalize: bool, search_rows: Callable[[np.ndarray], np.ndarray],
                  C: np.ndarray, offsets: np.ndarray, members: np.ndarray, queries: np.ndarray,
                  own: np.ndarray, k: int, threads: ThreadPoolExecutor) -> tuple[dict, int]:
    """``{pool: recall}``: for each pool of :func:`pool_widths`, float64
    (min(nlist, MAX_NPROBE),), the recall@k of the sampled queries at nprobe = 1, 2, ...;
    and the number of (query, neighbour) pairs they are counted over.

    Parameters
    ----------
    X : the full rows (n, d) of the row ids, indexable by an int64 array
    normalize : bool, unit rows are made on reading X
    search_rows : ids -> float32 rows of the search space (PCA or the rows themselves)
    C : float32 (nlist, d_search), the centroids in the search space
    offsets, members : the lists, as ``Partition.lists()`` (row ids of X)
    queries, own : int64 (m,), the query row ids and their lists
    k : neighbours a query
    threads : the threads of :func:`d2fast._threads.faiss_threads`

    With a PCA search space it counts the neighbours in the probed lists, an upper bound
    of the recall (the scan in the projection may still miss them).
    """
    import faiss

    nlist = C.shape[0]
    pick = sample(queries.size)
    q, o = queries[pick], own[pick]
    truth = _exact_neighbours(X, normalize, q, np.sort(members), k, threads)
    list_of = np.empty(X.shape[0], dtype=np.int32)
    list_of[members] = np.repeat(np.arange(nlist, dtype=np.int32), np.diff(offsets))
    found = truth >= 0
    lists = np.where(found, list_of[np.maximum(truth, 0)], -1)
    del list_of
    # each query's pool, nearest its own centroid first, and its distances to them
    # (float32, as the search's faiss.knn)
    cap = min(nlist, MAX_NPROBE)
    widths = pool_widths(nlist)
    width = min(nlist, max(POOL * cap, max(w or 0 for w in widths)))
    uo, inv = np.unique(o, return_inverse=True)
    near = faiss.knn(C[uo], C, width)[1][inv]  # (s, width)
    Dq = np.take_along_axis(pairwise_sq(np.ascontiguousarray(search_rows(q)), C), near, 1)
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


def _exact_neighbours(X: Any, normalize: bool, q: np.ndarray, db: np.ndarray, k: int,
                      threads: ThreadPoolExecutor) -> np.ndarray:
    """int64 (len(q), k): the k nearest rows ``db`` (sorted ids) of every row q (itself
    excluded) by float32 squared L2, -1 padded; one faiss call a block of database rows,
    the blocks in parallel."""
    import faiss

    from d2fast.knn import float32_rows

    Q = float32_rows(np.asarray(X[q]), normalize)
    whole = db.size == X.shape[0]  # all rows: read them as slices
    starts = list(range(0, db.size, BLOCK_ROWS))

    def block(a: int) -> tuple[np.ndarray, np.ndarray]:
        ids = db[a:a + BLOCK_ROWS]
        B = float32_rows(np.asarray(X[a:a + ids.size] if whole else X[ids]), normalize)
        D, I = faiss.knn(Q, B, min(k + 1, ids.size))
        I = np.where(I >= 0, ids[np.maximum(I, 0)], -1)
        D[I == q[:, None]] = np.inf  # never a query's own neighbour
        return D, I

    parts = run(threads, [(block, a) for a in starts])
    D = np.concatenate([p[0] for p in parts], axis=1)
    I = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((I, D), axis=1)[:, :k]
    out = np.take_along_axis(I, order, 1)
    out[~np.isfinite(np.take_along_axis(D, order, 1))] = -1
    return out
