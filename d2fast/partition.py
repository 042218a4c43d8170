"""The IVF partition of a data set: k-means centroids and the list of every row.

The first stage of a distributed build (issue 10): the lists become the shards. The
rows are read in blocks, so a memmap is never loaded whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from d2fast._validate import BLOCK_ROWS, check_choice, check_emb, check_int
from d2fast.graph import METRICS
from d2fast.knn import _TRAIN_ITERATIONS, _TRAIN_PER_LIST, default_nlist, float32_rows


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
        Number of lists; default ``min(n // 40, 2 sqrt(n))``, at least 1 (the IVF
        default of ``knn_graph(knn='ivf')``).
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
    import faiss

    n, d = X.shape
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, _TRAIN_PER_LIST * nlist), replace=False))
    if bar is not None:
        bar.set_description(f"kNN ivf: k-means of {sample.size} rows into {nlist} lists")
    kmeans = faiss.Kmeans(d, nlist, niter=_TRAIN_ITERATIONS, seed=seed,
                          min_points_per_centroid=1, max_points_per_centroid=_TRAIN_PER_LIST)
    kmeans.train(float32_rows(np.asarray(X[sample]), normalize=normalize))
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    if bar is not None:
        bar.set_description(f"kNN ivf: assign rows to {nlist} lists")
    return Partition(centroids=centroids, assign=assign_rows(X, centroids, normalize, bar),
                     metric=metric)


def assign_rows(X: np.ndarray, centroids: np.ndarray, normalize: bool,
                bar: Any = None) -> np.ndarray:
    """int64 (n,): the nearest centroid (L2, ties to the lower) of every row, in row blocks."""
    import faiss

    assign = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], BLOCK_ROWS):
        block = float32_rows(np.asarray(X[start:start + BLOCK_ROWS]), normalize=normalize)
        assign[start:start + block.shape[0]] = faiss.knn(block, centroids, 1)[1][:, 0]
        if bar is not None:
            bar.update(block.shape[0])
    return assign
