"""IVF kNN search over a :class:`~d2fast.partition.Partition`, queries grouped by list.

For a block of queries, every list that some of them probe is read once and compared with
all of those queries in one ``faiss.knn`` call (a BLAS matrix product), the pattern of
faiss's ``contrib/big_batch_search``; a large list is read in chunks. A query probes the
``nprobe`` lists whose centroids are nearest to it among the ``pool`` (default ``8 nprobe``)
centroids nearest to its own list's centroid, so the probe costs O(pool d) a query at any
number of lists; ``nprobe='auto'`` chooses both from a recall sample (:mod:`d2fast._nprobe`).
After a query's own list, a probed list is skipped when its Voronoi cell lies farther from
the query than the query's c-th candidate so far: every row of list j is at least as near
to centroid j as to the query's own centroid o (the partition's lists are exact
nearest-centroid lists), so it lies beyond the bisector of o and j, at distance
``(|q - c_j|^2 - |q - c_o|^2) / (2 |c_j - c_o|)`` or more from the query. The bound allows
for float32 rounding (``d2fast._nearest.f32_error``), so a skipped list could not have
added a candidate and the result is the same as scanning it. The candidates are re-ranked
with exact float64 distances in the full space (ties to the lower row id). With ``pca``,
the lists are scanned in a PCA projection trained on a sample (the leading axes of its
covariance), no list is skipped, and more candidates are re-ranked in the full space.

This is the search of ``knn_graph(knn='ivf')`` and, per shard, of the distributed build.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from d2fast import _backends
from d2fast._nearest import f32_error, out_of_reach
from d2fast._nprobe import POOL, RECALL, auto_nprobe, check_nprobe, check_recall
from d2fast._threads import faiss_threads, pairwise_sq, run
from d2fast._validate import BLOCK_ROWS, check_emb, check_int, check_k
from d2fast.knn import _MARGIN, float32_rows, rerank
from d2fast.partition import Partition

_QUERY_BLOCK = 16384  # queries a block: their candidate arrays are 12 B x nprobe x c each
_LIST_CHUNK = 32768  # list rows read at once: bounds the memory a very large list needs
_DIST_BLOCK = 1 << 22  # distances computed at once by a thread (float32: 16 MiB)
_PCA_TRAIN = 65536  # rows the PCA projection is trained on
PCA_CANDIDATES = 4  # with pca, candidates are PCA_CANDIDATES x (k + 1) + 8


def block_bytes(d: int, k: int, pca: int) -> float:
    """Memory of one query block of :func:`search_lists` beyond its output, in bytes: the
    candidates (12 B each, 16 x c a query: a block holds ``16 / nprobe`` times fewer
    queries above 16 probes), the gathered query rows, and per thread (two counted) a
    chunk of list rows, the queries gathered for it and their distances to it."""
    width = pca or d
    c = (PCA_CANDIDATES if pca else 1) * (k + 1) + _MARGIN
    per_thread = 4.0 * (_LIST_CHUNK * width + _QUERY_BLOCK * width + _DIST_BLOCK)
    return _QUERY_BLOCK * (12.0 * 16 * c + 8.0 * width) + 2 * per_thread


def ivf_knn(emb: Any, k: int, partition: Partition, nprobe: int | str = "auto", *,
            rows: Any = None, candidates: int | None = None, pca: int = 0,
            pool: int | None = None, recall: float = RECALL, progress: bool = False,
            backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of ``rows`` among all rows of the ``nprobe`` nearest lists.

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings: ndarray, memmap (only the rows needed are read, list by list) or torch
        tensor. Rows are L2-normalised first when ``partition.metric == 'cosine'``.
    k : int
        Neighbours per query, ``1 <= k < n``.
    partition : Partition
        Of these n rows (``partition.assign.shape == (n,)``), e.g. from
        :func:`d2fast.ivf_partition`; its ``metric`` chooses the keys.
    nprobe : int or 'auto', default='auto'
        Lists searched per query: the nearest by centroid distance (in the search space)
        among the ``pool`` centroids nearest to the centroid of the query's own list;
        ``nprobe >= partition.nlist`` searches every list (exact search). 'auto': the
        fewest lists (at most 128), with the pool, that reach ``recall`` on 256 sampled
        queries searched exactly (:mod:`d2fast._nprobe`).
    rows : array-like of int, shape (m,), optional
        The query row ids in ``[0, n)`` (any order, repeats allowed); default all rows.
    candidates : int, optional
        Candidates per query re-ranked with exact distances; default ``k + 9`` (with
        ``pca``: ``4 (k + 1) + 8``), at least ``k + 1``.
    pca : int, default=0
        Scan the lists in a ``pca``-dimensional PCA projection (0: in the full space);
        the candidates are re-ranked in the full space either way.
    pool : int, optional
        The centroids a query's probes are chosen among; default ``8 nprobe``, at least
        nprobe. With ``nprobe='auto'`` it is chosen too.
    recall : float, default=0.99
        The target recall@k of ``nprobe='auto'``, in (0, 1].
    progress : bool, default=False
        tqdm progress bar over the queries.
    backend : str, default='auto'
        Kernel backend of the exact re-ranking.

    Returns
    -------
    ids : int64 of shape (m, k)
        Row ids, nearest first, ties to the lower id; a query is never its own neighbour;
        -1 where fewer than k rows were in the probed lists.
    keys : float64 of shape (m, k)
        Squared L2, or ``1 - cos`` for metric 'cosine' (inf where ids == -1).
    """
    X = check_emb(emb)
    n, d = X.shape
    if not isinstance(partition, Partition):
        raise TypeError(f"partition must be a d2fast.Partition, got {type(partition).__name__}")
    if partition.assign.shape != (n,) or partition.centroids.shape[1] != d:
        raise ValueError(f"partition is of {partition.assign.shape[0]} rows of "
                         f"{partition.centroids.shape[1]} dims, emb.shape == {X.shape}")
    k = check_k(k, n)
    nprobe = check_nprobe(nprobe)
    recall = check_recall(recall)
    if pool is not None:
        pool = check_int(pool, "pool", 1 if isinstance(nprobe, str) else nprobe, 2**31 - 1,
                         "a 32-bit int")
    pca = check_int(pca, "pca", 0, d, "at most the embedding width")
    if candidates is not None:
        candidates = check_int(candidates, "candidates", k + 1, n, "the number of rows")
    if rows is not None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"rows has ids outside [0, {n})")
        rows = rows.astype(np.int64)
    cosine = partition.metric == "cosine"
    queries = np.arange(n, dtype=np.int64) if rows is None else rows
    offsets, members = partition.lists()
    return search_lists(X, k, partition.centroids, offsets, members, queries,
                        partition.assign[queries], nprobe=nprobe, cosine=cosine,
                        normalize=cosine, candidates=candidates, pca=pca, pool=pool,
                        recall=recall, progress=progress, backend=backend)


def search_lists(X: np.ndarray, k: int, centroids: np.ndarray, offsets: np.ndarray,
                 members: np.ndarray, queries: np.ndarray, own: np.ndarray, *,
                 nprobe: int | str, cosine: bool, normalize: bool, candidates: int | None,
                 pca: int, pool: int | None = None, recall: float = RECALL,
                 progress: bool | Any = False,
                 backend: str = "auto",
                 report: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ivf_knn` on checked input, lists given as ``Partition.lists()`` of row ids
    of ``X`` (possibly of a subset of the rows), ``own`` the list of each query
    (its nearest centroid). ``normalize``: unit rows are made on reading.

    ``nprobe='auto'`` is chosen with ``pool`` for ``recall``
    (:func:`d2fast._nprobe.auto_nprobe`; a given ``pool`` is then ignored) and recorded in
    ``report`` when given: ``nprobe``, ``pool``, ``recall_target``, ``recall_sampled``,
    ``queries_sampled``. ``progress`` may be an open tqdm bar, updated by the number of
    queries.
    """
    from tqdm.auto import tqdm

    m, nlist = queries.size, centroids.shape[0]
    c = int(candidates or (PCA_CANDIDATES if pca else 1) * (k + 1) + _MARGIN)
    c = max(k + 1, min(members.size, c))
    space = _SearchSpace(X, centroids, normalize, pca)
    order = np.lexsort((queries, own))  # queries of a list together, ascending row ids
    kernels = _backends.get(backend)
    ids = np.empty((m, k), dtype=np.int64)
    keys = np.empty((m, k), dtype=np.float64)
    bar = progress if hasattr(progress, "update") else \
        tqdm(total=m, desc="kNN ivf: search", unit="row", disable=not progress)
    try:
        with faiss_threads() as threads:
            if isinstance(nprobe, str):  # 'auto'
                bar.set_description("kNN ivf: choose nprobe")
                chosen = auto_nprobe(X, normalize, cosine, space.rows, space.centroids,
                                     centroids, offsets, members, queries, own, k, recall,
                                     threads)
                nprobe, pool = chosen["nprobe"], chosen["pool"]
                if report is not None:
                    report.update(chosen)
                bar.set_description(f"kNN ivf: search ({nprobe} lists)")
            nprobe = min(nprobe, nlist)
            width = min(nlist, POOL * nprobe if pool is None else max(pool, nprobe))
            cells = _Cells(space.centroids, width, voronoi=not pca)
            block = _QUERY_BLOCK * 16 // max(16, nprobe)  # block_bytes holds at any nprobe
            for start in range(0, m, block):
                pos = order[start:start + block]
                q = queries[pos]
                Yq = space.rows(q)
                probes, beyond = cells.probes(Yq, own[pos], nprobe, threads)
                cand = _scan(space, Yq, probes, beyond, offsets, members, c, threads, kernels)
                ids[pos], keys[pos] = _rerank(X, q, cand, k, cosine, normalize, backend)
                bar.update(q.size)
    finally:
        if bar is not progress:
            bar.close()
    ids[~np.isfinite(keys)] = -1
    return ids, keys


class _SearchSpace:
    """The rows the lists are scanned in: the input rows (float32, unit if ``normalize``),
    or their PCA projection (computed once, in blocks), and the centroids in that space."""

    def __init__(self, X: np.ndarray, centroids: np.ndarray, normalize: bool, pca: int):
        self.X, self.normalize, self.Y = X, normalize, None
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if pca:
            n, d = X.shape
            sample = np.sort(np.random.default_rng(0).choice(n, min(n, _PCA_TRAIN), replace=False))
            self.mean, self.basis = _pca(float32_rows(np.asarray(X[sample]), normalize), pca)
            self.Y = np.empty((n, pca), dtype=np.float32)
            for a in range(0, n, BLOCK_ROWS):
                self.Y[a:a + BLOCK_ROWS] = self.project(
                    float32_rows(np.asarray(X[a:a + BLOCK_ROWS]), normalize))
            self.centroids = self.project(self.centroids)

    def project(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), pca): rows centred and projected on the principal axes."""
        return np.ascontiguousarray((rows - self.mean) @ self.basis, dtype=np.float32)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """float32 (len(ids), d_search) rows of the search space."""
        if self.Y is not None:
            return self.Y[ids]
        return float32_rows(np.asarray(self.X[ids]), self.normalize)


def _pca(S: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and the ``dims`` leading principal axes (d, dims), float32, of the rows S
    (m, d). The covariance is summed in float64 over blocks of at most 4096 rows and about
    2^28 multiply-adds, so Ctrl-C is handled between them; each axis's largest entry is
    made positive (a deterministic sign)."""
    m, d = S.shape
    mean = S.mean(axis=0, dtype=np.float64).astype(np.float32)
    cov = np.zeros((d, d))
    step = min(4096, max(64, 2**28 // (d * d)))
    for a in range(0, m, step):
        B = S[a:a + step] - mean
        cov += B.T @ B
    axes = np.linalg.eigh(cov)[1][:, ::-1][:, :dims]  # eigenvalues ascending: flip
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(dims)])
    return mean, np.ascontiguousarray(axes, dtype=np.float32)


class _Cells:
    """The centroids of the search space: each one's ``size`` nearest (itself included),
    the probes of a query among them, and lower bounds of a query's distance to the lists'
    Voronoi cells (``voronoi``: the lists are exact nearest-centroid lists in this space;
    not with a PCA projection)."""

    def __init__(self, centroids: np.ndarray, size: int, voronoi: bool):
        import faiss

        self.C, self.voronoi = centroids, voronoi
        nlist = centroids.shape[0]
        self.near = faiss.knn(centroids, centroids, size)[1]
        missing = ~(self.near == np.arange(nlist)[:, None]).any(axis=1)  # duplicates
        self.near[missing, -1] = np.flatnonzero(missing)
        if voronoi:
            C64 = centroids.astype(np.float64)
            self.norms = np.linalg.norm(C64, axis=1)
            self.sep = np.empty(self.near.shape)  # |c_i - c_near[i, j]|, float64
            step = max(1, 2**22 // (size * centroids.shape[1]))
            for a in range(0, nlist, step):
                diff = C64[self.near[a:a + step]] - C64[a:a + step, None]
                self.sep[a:a + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            self.err = f32_error(centroids.shape[1])

    def probes(self, Yq: np.ndarray, own: np.ndarray, nprobe: int,
               threads: ThreadPoolExecutor) -> tuple[np.ndarray, np.ndarray | None]:
        """int64 (b, nprobe): the lists each query probes, nearest centroid first; and
        float64 (b, nprobe) lower bounds of the query's distance (not squared) to each
        list's cell, 0 where unknown (None without ``voronoi``).

        ``own`` (the query's own list) is sorted, so the queries of a list are
        contiguous: one faiss.knn a list, a task of ``threads``. The bound of list j is the
        distance to the bisector of the own centroid o and c_j, less float32 rounding:
        ``(|q - c_j|^2 - e_j - |q - c_o|^2) / (2 |c_j - c_o|)``, with ``|q - c_j|^2``
        from faiss (float32, ``e_j = err (|q| + |c_j|)^2``) and ``|q - c_o|^2`` in float64.
        """
        probes = np.empty((own.size, nprobe), dtype=np.int64)
        beyond = np.zeros(probes.shape) if self.voronoi else None
        starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])

        def probe(a: int, b: int) -> None:
            import faiss

            o = own[a]
            Dp, at = faiss.knn(Yq[a:b], self.C[self.near[o]], nprobe)
            probes[a:b] = self.near[o][at]
            if beyond is None:
                return
            q = Yq[a:b].astype(np.float64)
            to_own = q - self.C[o]
            d_own = np.einsum("ij,ij->i", to_own, to_own) * (1 + 1e-9)
            e = self.err * (np.linalg.norm(q, axis=1)[:, None] + self.norms[probes[a:b]]) ** 2
            sep = self.sep[o][at]
            with np.errstate(divide="ignore", invalid="ignore"):
                h = (Dp - e - d_own[:, None]) / (2 * sep)
            beyond[a:b] = np.where(sep > 0, np.maximum(h, 0.0), 0.0)

        run(threads, [(probe, a, b) for a, b in zip(starts, np.r_[starts[1:], own.size])])
        return probes, beyond


def _scan(space: _SearchSpace, Yq: np.ndarray, probes: np.ndarray, beyond: np.ndarray | None,
          offsets: np.ndarray, members: np.ndarray, c: int, threads: ThreadPoolExecutor,
          kernels: Any) -> np.ndarray:
    """int64 (b, c): the c nearest candidates (search-space L2, ties to the lower row id) of
    every query in its probed lists, -1 padded.

    Each probed list is read once (in chunks) for all the queries that probe it, one list
    a task of ``threads``: faiss computes the distances of a block of queries to a chunk of
    rows (``pairwise_L2sqr``, BLAS) and ``kernels.topk_merge`` merges them into the
    queries' top-c lists of that probe slot. The nearest list of every query is scanned
    first; its c-th distance then bounds what the other lists can add, so most of their
    distances cost a compare, and a list whose cell bound (``beyond``, see
    :meth:`_Cells.probes`) exceeds it is not read at all. Every slot is written by one
    task: the result does not depend on the number of threads."""
    b, nprobe = probes.shape
    D = np.full((b * nprobe, c), np.inf, dtype=np.float32)
    I = np.full((b * nprobe, c), -1, dtype=np.int64)
    first = np.arange(b) * nprobe
    _scan_slots(space, Yq, probes.ravel(), first, offsets, members, D, I, None, threads,
                kernels)
    if nprobe == 1:
        return I
    rest = np.setdiff1d(np.arange(b * nprobe), first, assume_unique=True)
    if beyond is not None:
        rest = rest[~_cannot_enter(Yq, beyond, D[first, -1], rest, nprobe)]
    _scan_slots(space, Yq, probes.ravel(), rest, offsets, members, D, I, D[first, -1], threads,
                kernels)
    best_D = np.full((b, c), np.inf, dtype=np.float32)
    best_I = np.full((b, c), -1, dtype=np.int64)
    kernels.topk_merge(D.reshape(b, -1), I.reshape(b, -1), np.arange(b), best_D, best_I)
    return best_I


def _cannot_enter(Yq: np.ndarray, beyond_h: np.ndarray, kth: np.ndarray, slots: np.ndarray,
                  nprobe: int) -> np.ndarray:
    """bool (len(slots),): whether no row of the slot's list can have a float32 distance
    at most the query's c-th so far ``kth`` (b,), given the cell bound ``beyond_h``
    (:func:`d2fast._nearest.out_of_reach`)."""
    q = slots // nprobe
    qn = np.linalg.norm(Yq.astype(np.float64), axis=1)[q]
    return out_of_reach(beyond_h.ravel()[slots], qn, kth[q].astype(np.float64), Yq.shape[1])


def _scan_slots(space: _SearchSpace, Yq: np.ndarray, flat: np.ndarray, slots: np.ndarray,
                offsets: np.ndarray, members: np.ndarray, D: np.ndarray, I: np.ndarray,
                bound: np.ndarray | None, threads: ThreadPoolExecutor, kernels: Any) -> None:
    """Fill the probe slots ``slots`` (indices into ``flat`` = probes.ravel(): query
    ``slot // nprobe`` probes list ``flat[slot]``) of (D, I); ``bound`` (b,): per query,
    distances above it are not taken."""
    if slots.size == 0:
        return
    nprobe = flat.size // Yq.shape[0]
    scratch = threading.local()  # a distance buffer a thread: no page faults a call
    slots = slots[np.argsort(flat[slots], kind="stable")]
    lists = flat[slots]
    starts = np.flatnonzero(np.r_[True, lists[1:] != lists[:-1]])

    def scan_list(hit: np.ndarray) -> None:
        lst = flat[hit[0]]
        rows = members[offsets[lst]:offsets[lst + 1]]
        for s in range(0, rows.size, _LIST_CHUNK):
            chunk = rows[s:s + _LIST_CHUNK]
            B = space.rows(chunk)
            step = max(1, _DIST_BLOCK // chunk.size)
            for a in range(0, hit.size, step):
                dest = hit[a:a + step]
                q = dest // nprobe
                Q = Yq[q]
                if not hasattr(scratch, "dist"):
                    scratch.dist = np.empty(_DIST_BLOCK, dtype=np.float32)
                dist = pairwise_sq(Q, B, scratch.dist[:dest.size * chunk.size].reshape(
                    dest.size, chunk.size))
                kernels.topk_merge(dist, chunk, dest, D, I,
                                   None if bound is None else bound[q])

    run(threads, [(scan_list, slots[a:e]) for a, e in zip(starts, np.r_[starts[1:], slots.size])])


def _rerank(X: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int, cosine: bool,
            normalize: bool, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`d2fast.knn.rerank` on the full rows; a memmap or non-float32 ``X`` is read
    only at the rows involved (local ids keep the order of the row ids, so ties agree)."""
    if not normalize and isinstance(X, np.ndarray) and not isinstance(X, np.memmap) \
            and X.dtype == np.float32 and X.flags.c_contiguous:
        return rerank(X, q, cand, k, cosine, backend)
    used = np.unique(np.concatenate([q, cand[cand >= 0]]))
    local = float32_rows(np.asarray(X[used]), normalize)
    lc = np.where(cand >= 0, np.searchsorted(used, cand), -1)
    ids, keys = rerank(local, np.searchsorted(used, q), lc, k, cosine, backend)
    return np.where(ids >= 0, used[np.maximum(ids, 0)], -1), keys
