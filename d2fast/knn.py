"""k-nearest-neighbour search with faiss: exact (brute force) or approximate (HNSW, IVF).

All searches return, for every row, its k nearest OTHER rows with exact float64
distance keys and ties to the lower index among the candidates faiss found.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from d2fast import _backends
from d2fast._validate import BLOCK_ROWS

KNN = ("auto", "exact", "hnsw", "ivf")
EXACT_MAX_ROWS = 200_000  # knn="auto": exact search up to here (O(n^2 d)), IVF above
_MARGIN = 8  # extra candidates searched per row, re-ranked with exact float64 distances
_QUERY_ROWS = 8192  # query rows per faiss call (faiss tiles the database itself)
_PARAMS = {"hnsw": {"M": 32, "ef_construction": 80, "ef_search": None},
           "ivf": {"nlist": None, "nprobe": 16}}


def float32_rows(X: np.ndarray, normalize: bool) -> np.ndarray:
    """C-contiguous float32 (n, d), built in row blocks; unit rows when ``normalize``.

    A C-contiguous float32 ndarray is returned as it is (faiss and the re-ranking only
    read it); anything else, memmaps included, is converted block by block.
    """
    if not normalize and X.dtype == np.float32 and X.flags.c_contiguous and \
            not isinstance(X, np.memmap):
        return X
    out = np.empty(X.shape, dtype=np.float32)
    for start in range(0, X.shape[0], BLOCK_ROWS):
        block = np.asarray(X[start:start + BLOCK_ROWS], dtype=np.float64)
        if normalize:
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            block = np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)
        out[start:start + block.shape[0]] = block
    return out


def search(X: np.ndarray, k: int, *, cosine: bool, method: str = "auto",
           params: dict | None = None, progress: bool = False, backend: str = "auto"):
    """The k nearest other rows of every row of ``X``.

    Parameters
    ----------
    X : float32 of shape (n, d), C-contiguous; unit rows for cosine
    k : int, 1 <= k < n
    cosine : bool
        Keys are ``1 - x_i . x_j`` (cosine distance of unit rows) instead of squared L2.
    method : {'auto', 'exact', 'hnsw', 'ivf'}
    params : dict, optional
        HNSW: ``M``, ``ef_construction``, ``ef_search``; IVF: ``nlist``, ``nprobe``.
    progress : bool
        tqdm progress bar over the query rows.
    backend : str
        Kernel backend of the exact re-ranking.

    Returns
    -------
    ids : int64 of shape (n, k), -1 where an approximate search found fewer than k rows
    keys : float64 of shape (n, k), squared L2 or cosine distance (inf where ids == -1)
    """
    n = X.shape[0]
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_ROWS else "ivf"  # IVF: 4.7x HNSW at 1M here
    if method == "exact":
        if params:
            raise ValueError(f"knn_params={params!r}: exact search takes no parameters")
        return _exact(X, k, cosine, progress, backend)
    return _approximate(X, k, cosine, method, _check_params(method, params), progress, backend)


def _check_params(method: str, params: dict | None) -> dict:
    params = dict(params or {})
    unknown = set(params) - set(_PARAMS[method])
    if unknown:
        raise ValueError(f"knn_params has {sorted(unknown)}, not parameters of knn={method!r} "
                         f"(those are {sorted(_PARAMS[method])})")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"knn_params[{name!r}] == {value!r}, must be an int >= 1")
    return {**_PARAMS[method], **params}


def _exact(X: np.ndarray, k: int, cosine: bool, progress: bool, backend: str):
    """Exact search: faiss brute force, re-ranked; unsure rows searched again, wider."""
    import faiss
    from tqdm.auto import tqdm

    n, d = X.shape
    metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    sq_norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    # bound on faiss' float32 rounding of a squared distance / inner product
    slack = 4.0 * d * 2.0**-24 * (sq_norms + sq_norms.max()) + 1e-30
    ids = np.empty((n, k), dtype=np.int64)
    keys = np.empty((n, k), dtype=np.float64)
    pending = np.arange(n, dtype=np.int64)
    c = min(n, k + 1 + _MARGIN)
    with tqdm(total=n, desc="kNN search", unit="row", disable=not progress) as bar:
        first_pass = True
        while pending.size:
            unsure = []
            for start in range(0, pending.size, _QUERY_ROWS):
                rows = pending[start:start + _QUERY_ROWS]
                D, I = faiss.knn(X[rows], X, c, metric=metric)
                bound = 1.0 - D[:, -1] if cosine else D[:, -1].astype(np.float64)
                ids[rows], keys[rows] = rerank(X, rows, I, k, cosine, backend)
                if c < n:  # a row is sure if its k-th key is below every key not seen
                    unsure.append(rows[keys[rows, -1] >= bound - slack[rows]])
                if first_pass:
                    bar.update(rows.size)
            pending = np.concatenate(unsure) if unsure else pending[:0]
            c, first_pass = min(n, 2 * c), False
    return ids, keys


def _approximate(X: np.ndarray, k: int, cosine: bool, method: str, params: dict,
                 progress: bool, backend: str):
    """HNSW or IVF-flat search (L2 on the rows: the cosine order for unit rows), re-ranked."""
    import faiss
    from tqdm.auto import tqdm

    n, d = X.shape
    c = min(n, k + 1 + _MARGIN)
    if method == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(params["M"]))
        index.hnsw.efConstruction = int(params["ef_construction"])
        index.hnsw.efSearch = int(params["ef_search"] or max(64, 4 * c))
    else:
        nlist = int(params["nlist"] or max(1, min(n // 39, int(4 * np.sqrt(n)))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))
        index.train(np.ascontiguousarray(X[sample]))
        index.nprobe = min(nlist, int(params["nprobe"]))
    ids = np.empty((n, k), dtype=np.int64)
    keys = np.empty((n, k), dtype=np.float64)
    with tqdm(total=2 * n, desc=f"kNN {method}", unit="row", disable=not progress) as bar:
        for start in range(0, n, _QUERY_ROWS):
            index.add(X[start:start + _QUERY_ROWS])
            bar.update(min(_QUERY_ROWS, n - start))
        for start in range(0, n, _QUERY_ROWS):
            rows = np.arange(start, min(n, start + _QUERY_ROWS))
            _, I = index.search(X[rows], c)
            ids[rows], keys[rows] = rerank(X, rows, I, k, cosine, backend)
            bar.update(rows.size)
    ids[~np.isfinite(keys)] = -1
    return ids, keys


def rerank(X: np.ndarray, rows: np.ndarray, cand: np.ndarray, k: int, cosine: bool,
           backend: str = "auto"):
    """The k best of ``cand`` (m, c) for ``rows`` (m,) by exact float64 key.

    Self matches and -1 entries are dropped; ties go to the lower id. Returns ids int64
    (m, k) and keys float64 (m, k); a row with fewer than k candidates is padded with
    key inf.
    """
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    keys = _backends.get(backend).pair_keys(X, rows, cand, cosine)
    keys[(cand < 0) | (cand == rows[:, None])] = np.inf
    order = np.lexsort((cand, keys), axis=1)[:, :k]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(keys, order, 1)
