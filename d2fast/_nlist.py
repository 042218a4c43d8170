"""``nlist='auto'``: 2 sqrt(n) IVF lists, or lists of about 500 rows where those cost half.

Above a million rows the IVF search of :func:`d2fast.knn.search` can split the rows into
``2 sqrt(n)`` lists (:func:`d2fast.knn.default_nlist`) or into lists of about
``LIST_ROWS`` rows (``n / 500``, at most ``FINE_MAX`` lists, so that the work a row grows
no more with n). Which is faster depends on the data (10M x 64, one run each):

- rows around 10000 evenly spread centres (clusters of 1000 rows): 2 sqrt(n) = 6324
  lists straddle clusters, the search needs a pool of 1024 centroids and the exact
  assignment proves few rows; n / 500 = 20000 lists took 150 s, 2 sqrt(n) 295 s;
- rows around 1000 centres (clusters of 10000 rows): a query's neighbours spread over
  its whole cluster, 20 lists of 500 rows, so lists of 500 rows need nprobe 17; 2 sqrt(n)
  took about 220 s, n / 500 lists 273 s.

The choice estimates the distance computations a row costs with either partition. Both
sets of centroids are trained (as :func:`d2fast.partition.partition_rows` would train
them), the exact k nearest neighbours of the ``nprobe='auto'`` sample of queries are found
by brute force, and each query and neighbour is put in its list. Per partition:

- the search: at the cheapest (nprobe, pool) sure of the recall target, as
  :mod:`d2fast._nprobe` chooses it, ``nprobe`` times the mean list size plus the pool;
- the assignment (:mod:`d2fast._nearest`): the group centres and two groups' centroids,
  plus every centroid for the sampled rows without a proof (every centroid for all rows
  when more than half have none).

The fixed-size lists are taken when their estimate is at most half of the other's
(``MARGIN``): the estimate leaves out two costs that weigh on small lists, measured on
the second data set above: a probed list whose Voronoi cell is provably too far is not
read (30 % of the rows of the 2 sqrt(n) lists' probes were skipped, 7 % of the 500-row
lists'), and every probed list starts a query's top-c merge afresh (17 lists a query
against 8).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

LIST_ROWS = 500  # rows a list of the fixed-size partition
FINE_MAX = 1 << 16  # ... at most this many lists (the centroid tables grow as nlist^2)
MARGIN = 2.0  # the fixed-size lists must cost at most 1 / MARGIN of the 2 sqrt(n) ones
_CHUNK = 1 << 22  # distances of the sampled queries computed at once (float32: 16 MiB)


def nlist_choices(n: int) -> list:
    """The list counts ``nlist='auto'`` chooses among for n rows: ``[2 sqrt(n)]``, and
    ``n / LIST_ROWS`` (at most ``FINE_MAX``) when that is more lists."""
    from d2fast.knn import default_nlist

    coarse, fine = default_nlist(n), min(n // LIST_ROWS, FINE_MAX)
    return [coarse, fine] if fine > coarse else [coarse]


def choose_nlist(X: np.ndarray, k: int, cosine: bool, recall: float,
                 backend: str = "auto") -> tuple[np.ndarray, dict]:
    """The centroids of the chosen partition of the float32 rows X (n, d; unit rows for
    cosine) and what was chosen: ``{"nlist", "choices", "work"}`` (the list counts
    weighed and the distance computations a row estimated for each).

    The centroids are those of ``partition_rows(X, nlist)``; the search then runs as with
    ``knn_params={'nlist': nlist}``.
    """
    from d2fast._nprobe import sample
    from d2fast.partition import train_centroids

    n = X.shape[0]
    q = sample(n).astype(np.int64)  # the queries nprobe='auto' samples (all rows queried)
    truth = sample_neighbours(X, q, k, cosine, backend)
    x = np.ascontiguousarray(X[np.concatenate([q, truth[truth >= 0]])])
    return weigh(n, truth, x, lambda nlist: train_centroids(X, nlist, normalize=False),
                 recall)


def weigh(n: int, truth: np.ndarray, x: np.ndarray, train: Callable[[int], np.ndarray],
          recall: float) -> tuple[np.ndarray, dict]:
    """:func:`choose_nlist` from the sampled queries' exact neighbours ``truth`` (s, k)
    (-1 padded) and the float32 rows ``x`` of the queries then of ``truth[truth >= 0]``;
    ``train(nlist)``: the centroids of that partition."""
    from d2fast._nearest import nearest_centroid
    from d2fast._nprobe import cheapest, curves_of

    choices = nlist_choices(n)
    s, found = truth.shape[0], truth >= 0
    cents, work = [], []
    for nlist in choices:
        C = train(nlist)
        nc = nearest_centroid(C)
        at, unproven = nc.proved(x) if nc.grouped else (nc(x), x.shape[0])
        lists = np.full(truth.shape, -1, dtype=np.int64)
        lists[found] = at[s:]
        curves, pairs = curves_of(C, x[:s], at[:s], lists)
        search = cheapest(curves, pairs, n / nlist, recall, s)[1]
        cents.append(C)
        work.append(search + _assign_work(nc, unproven / x.shape[0]))
    pick = 1 if len(choices) > 1 and MARGIN * work[1] <= work[0] else 0
    return cents[pick], {"nlist": choices[pick], "choices": choices,
                         "work": [round(w, 1) for w in work]}


def _assign_work(nc: Any, unproven: float) -> float:
    """Centroids a row is compared with by the exact assignment of ``nc``
    (:class:`d2fast._nearest.NearestCentroid`) when a share ``unproven`` of the rows has
    no proof."""
    from d2fast._nearest import PROBE_GROUPS, UNPROVEN_MAX

    if not nc.grouped or unproven > UNPROVEN_MAX:
        return float(nc.nlist)
    groups = nc.gcent.shape[0]
    return groups + PROBE_GROUPS * nc.nlist / groups + unproven * nc.nlist


def sample_neighbours(X: np.ndarray, q: np.ndarray, k: int, cosine: bool,
                      backend: str = "auto") -> np.ndarray:
    """int64 (s, k): the k nearest other rows of the rows ``q`` (s,) of the float32 rows X
    by brute force, -1 padded: the k + 9 nearest by float32 squared L2
    (:func:`nearest_rows`), re-ranked by exact float64 key (``cosine``: 1 - cos of unit
    rows), ties to the lower id, as :func:`d2fast._nprobe.recall_curves`' sample search
    over the lists."""
    from d2fast._ivf import _rerank
    from d2fast.knn import _MARGIN

    c = min(X.shape[0], k + 1 + _MARGIN)  # the query itself may be among them
    I = nearest_rows(np.ascontiguousarray(X[q]), lambda a, b: np.ascontiguousarray(X[a:b]),
                     0, X.shape[0], c, backend)[1]
    return _rerank(X, q, I, k, cosine, False, backend)[0]


def nearest_rows(Q: np.ndarray, read: Callable[[int, int], np.ndarray], start: int, stop: int,
                 c: int, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(D, I)``, float32 and int64 (s, c): the c nearest of the rows ``start:stop``
    (``read(a, b)``: float32 rows a:b) to each row of Q (s, d) by float32 squared L2, -1 /
    inf padded: faiss's BLAS distances to chunks of ``_CHUNK / s`` rows, in parallel, each
    thread merging into its own top list with ``topk_merge``; the (distance, id) order
    makes the result the same on any number of threads, and the merge of the results of
    several ranges (:func:`merge_nearest`) that of one."""
    import threading

    from d2fast import _backends
    from d2fast._threads import faiss_threads, pairwise_sq, run

    kernels = _backends.get(backend)
    s = Q.shape[0]
    step = max(1, _CHUNK // s)
    mine, tops = threading.local(), []  # a thread's distance buffer and top lists
    lock = threading.Lock()

    def scan(a: int) -> None:
        if not hasattr(mine, "top"):
            mine.dist = np.empty(s * step, dtype=np.float32)
            mine.top = (np.full((s, c), np.inf, dtype=np.float32),
                        np.full((s, c), -1, dtype=np.int64))
            with lock:
                tops.append(mine.top)
        b = min(stop, a + step)
        dist = pairwise_sq(Q, read(a, b), mine.dist[:s * (b - a)].reshape(s, b - a))
        kernels.topk_merge(dist, np.arange(a, b, dtype=np.int64),
                           np.arange(s, dtype=np.int64), *mine.top)

    with faiss_threads() as threads:
        run(threads, [(scan, a) for a in range(start, stop, step)])
    return merge_nearest(tops, c, s, backend)


def merge_nearest(tops: list, c: int, s: int, backend: str = "auto") -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """The c best (distance, id) of the ``(D, I)`` top lists ``tops``, each (s, c')."""
    from d2fast import _backends

    best = (np.full((s, c), np.inf, dtype=np.float32), np.full((s, c), -1, dtype=np.int64))
    if tops:
        _backends.get(backend).topk_merge(np.concatenate([D for D, _ in tops], axis=1),
                                          np.concatenate([I for _, I in tops], axis=1),
                                          np.arange(s, dtype=np.int64), *best)
    return best
