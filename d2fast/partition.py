"""The IVF partition of a data set: k-means centroids and the list of every row.

The first stage of a distributed build (issue 10): the lists become the shards. The
rows are read in blocks, so a memmap is never loaded whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from d2fast._nearest import nearest_centroid
from d2fast._threads import faiss_threads, pairwise_sq, run
from d2fast._validate import BLOCK_ROWS, check_choice, check_emb, check_int
from d2fast.graph import METRICS
from d2fast.knn import _TRAIN_ITERATIONS, _TRAIN_PER_LIST, default_nlist, float32_rows


FLAT_MAX = 1024  # up to here one k-means; above, a two-level k-means
_DIST_BLOCK = 1 << 22  # row-centroid distances computed at once (float32: 16 MiB)
_ASSIGN_TASK = BLOCK_ROWS // 2  # rows a task of assign_rows (one thread)


@dataclass(frozen=True)
class Partition:
    """Rows grouped into IVF lists.

    Attributes
    ----------
    centroids : ndarray of float32, shape (nlist, d)
        The k-means centroids (unit rows' space when ``metric == 'cosine'``).
    assign : ndarray of int64, shape (n,)
        The list of every row: the index of its nearest centroid (L2, ties to the lower).
    metric : str
        The metric the rows were compared in.
    """

    centroids: np.ndarray
    assign: np.ndarray
    metric: str

    @property
    def nlist(self) -> int:
        return self.centroids.shape[0]

    def lists(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets, rows)``: list j holds ``rows[offsets[j]:offsets[j + 1]]``, ascending.

        Shapes (nlist + 1,) and (n,), int64; every row appears exactly once.
        """
        rows = np.argsort(self.assign, kind="stable")
        offsets = np.zeros(self.nlist + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.assign, minlength=self.nlist), out=offsets[1:])
        return offsets, rows


def ivf_partition(emb: Any, nlist: int | None = None, *, metric: str = "euclidean",
                  seed: int = 0) -> Partition:
    """Train IVF centroids with faiss k-means on a sample and assign every row to a list.

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings: ndarray, memmap (read in row blocks) or torch tensor.
    nlist : int, optional
        Number of lists; default ``d2fast.knn.default_nlist(n)`` (2 sqrt(n)), at least 1 (the
        IVF default of ``knn_graph(knn='ivf')``). Up to ``FLAT_MAX`` (1024) lists: one
        k-means; above, two levels (see :func:`_train`), so the training cost a sample row
        grows as sqrt(nlist), not nlist. Every row then goes to its nearest centroid in
        exact arithmetic (:func:`assign_rows`).
    metric : {'euclidean', 'sqeuclidean', 'cosine'}, default='euclidean'
        'cosine' clusters the L2-normalised rows.
    seed : int, default=0
        Seeds the training sample and faiss' k-means.

    Returns
    -------
    Partition
    """
    X = check_emb(emb)
    n, d = X.shape
    metric = check_choice(metric, "metric", METRICS)
    nlist = default_nlist(n) if nlist is None else check_int(nlist, "nlist", 1, n,
                                                              "at most one list a row")
    seed = check_int(seed, "seed", 0, 2**31 - 1, "a 31-bit seed")
    return partition_rows(X, nlist, metric=metric, normalize=metric == "cosine", seed=seed)


def partition_rows(X: np.ndarray, nlist: int, *, metric: str, normalize: bool, seed: int = 0,
                   bar: Any = None) -> Partition:
    """:func:`ivf_partition` of checked rows; ``normalize``: unit rows are made on reading
    (False when X already holds them). ``bar``: an open tqdm bar, told the stage and
    advanced by the rows assigned."""
    if bar is not None:
        bar.set_description(f"kNN ivf: k-means of {min(X.shape[0], _TRAIN_PER_LIST * nlist)} "
                            f"rows into {nlist} lists")
    centroids = train_centroids(X, nlist, normalize, seed)
    if bar is not None:
        bar.set_description(f"kNN ivf: assign rows to {nlist} lists")
    return Partition(centroids=centroids, assign=assign_rows(X, centroids, normalize, bar),
                     metric=metric)


def train_centroids(X: np.ndarray, nlist: int, normalize: bool, seed: int = 0) -> np.ndarray:
    """float32 (nlist, d): the IVF centroids of :func:`partition_rows`, trained on a seeded
    sample of ``_TRAIN_PER_LIST`` (40) rows a list (:func:`_train`)."""
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, _TRAIN_PER_LIST * nlist), replace=False))
    return _train(float32_rows(np.asarray(X[sample]), normalize=normalize), nlist, seed)


def _kmeans(x: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    """float32 (nlist, d): faiss k-means centroids of the rows ``x``."""
    import faiss

    kmeans = faiss.Kmeans(x.shape[1], nlist, niter=_TRAIN_ITERATIONS, seed=seed,
                          min_points_per_centroid=1, max_points_per_centroid=_TRAIN_PER_LIST)
    kmeans.train(x)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def _train(x: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    """IVF centroids of the sample ``x``: one k-means up to ``FLAT_MAX`` lists; above, two
    levels (faiss's two-level clustering idea), so the cost is O(sqrt(nlist)) a sample row
    instead of O(nlist): sqrt(nlist) coarse clusters, each split by its own k-means into a
    share of the lists proportional to its sample rows (the groups' k-means in parallel,
    each on one faiss thread)."""
    if nlist <= FLAT_MAX:
        return _kmeans(x, nlist, seed)
    coarse = _kmeans(x, int(np.sqrt(nlist)), seed)
    group = _nearest(x, coarse)
    sizes = np.bincount(group, minlength=coarse.shape[0])
    share = sizes * (nlist / x.shape[0])  # largest remainders: the shares sum to nlist
    lists = np.floor(share).astype(np.int64)
    lists[np.argsort(lists - share, kind="stable")[:nlist - lists.sum()]] += 1
    lists = np.minimum(lists, sizes)  # a group of fewer rows than lists (rare): fewer lists
    with faiss_threads() as pool:
        parts = run(pool, [(_kmeans, x[group == g], int(lists[g]), seed + g)
                           for g in range(coarse.shape[0]) if lists[g] > 0])
    return np.concatenate(parts)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """int64 (len(x),): the nearest centroid of every float32 row (ties to the lower), from
    faiss's BLAS distances in blocks of about 2^22 of them."""
    out = np.empty(x.shape[0], dtype=np.int64)
    step = max(1, _DIST_BLOCK // max(1, centroids.shape[0]))
    for a in range(0, x.shape[0], step):
        out[a:a + step] = pairwise_sq(np.ascontiguousarray(x[a:a + step]),
                                      centroids).argmin(axis=1)
    return out


def assign_bytes(d: int) -> float:
    """Memory of :func:`assign_rows` beyond its output, in bytes: a block of float32 rows
    and, on each of two threads, a task's shifted rows, its rows without a proof and a
    group's gathered rows (float32), and its distance and near-tie blocks (16 MiB each)."""
    return 4.0 * BLOCK_ROWS * d + 2 * (3 * 4.0 * _ASSIGN_TASK * d + 2 * 2**24)


def assign_rows(X: np.ndarray, centroids: np.ndarray, normalize: bool,
                bar: Any = None) -> np.ndarray:
    """int64 (n,): the list of every row, its nearest centroid in exact arithmetic (L2,
    ties to the lower index; :mod:`d2fast._nearest`), in row blocks, each split over
    parallel single-threaded faiss calls (``d2fast._threads``).

    Up to ``GROUP_MIN`` (1024) centroids a row is compared with all of them (about 2 ns a
    pair at 64-d); from there on with the centres of sqrt(nlist) centroid groups and the
    centroids of its nearest groups, and the result is proved by the triangle inequality
    (rows without a proof are compared with every centroid), so the cost a row grows as
    sqrt(nlist) on clustered data. The result is the same either way: the float64 brute
    force's. (A search among nearby groups without that proof, tried before, put 3 % of
    3M clustered rows in another list and cost recall: 0.984 instead of 0.9999.)
    """
    nearest = nearest_centroid(centroids)
    assign = np.empty(X.shape[0], dtype=np.int64)
    with faiss_threads() as pool:
        for start in range(0, X.shape[0], BLOCK_ROWS):
            block = float32_rows(np.asarray(X[start:start + BLOCK_ROWS]), normalize=normalize)
            cuts = list(range(0, block.shape[0], _ASSIGN_TASK)) + [block.shape[0]]
            parts = run(pool, [(nearest, block[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
            assign[start:start + block.shape[0]] = np.concatenate(parts)
            if bar is not None:
                bar.update(block.shape[0])
    return assign
