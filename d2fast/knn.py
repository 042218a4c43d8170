"""k-nearest-neighbour search with faiss: exact (brute force) or approximate (HNSW, IVF).

All searches return, for every row, its k nearest OTHER rows with exact float64
distance keys and ties to the lower index among the candidates faiss found.
"""
from __future__ import annotations

import mmap

import numpy as np

from d2fast import _backends
from d2fast._nprobe import MAX_NPROBE, POOL, RECALL
from d2fast._validate import BLOCK_ROWS

KNN = ("auto", "exact", "hnsw", "ivf")
EXACT_MAX_ROWS = 100_000  # knn="auto": exact up to here (O(n^2 d): 16.5 s at 100k x 64)
_MARGIN = 8  # extra candidates searched per row, re-ranked with exact float64 distances
_QUERY_ROWS = 8192  # query rows per faiss call (faiss tiles the database itself)
# multiply-adds per faiss call of the exact search (BLAS) and of an HNSW search (ef x 2M
# distances a query, no BLAS): under 0.1 s on one core. Python handles Ctrl-C between
# calls; faiss itself checks only every 4096 exact queries and every ~1 s of HNSW search
_CALL_MADDS = 1 << 31
_EXACT_QUERY_ROWS = 4096  # faiss' blocks of queries and database rows in a brute-force
_EXACT_DB_ROWS = 1024  # search (distance_compute_blas_query_bs, ..._database_bs)
_HNSW_CALL_MADDS = 1 << 28
_RERANK_MADDS = 1 << 24  # rerank in row blocks of this many (gathered) multiply-adds
_PARAMS = {"hnsw": {"M": 32, "ef_construction": 80, "ef_search": None, "candidates": None},
           "ivf": {"nlist": None, "nprobe": "auto", "pool": None, "candidates": None, "pca": None,
                   "partition": None, "recall": None}}
_TRAIN_PER_LIST = 40  # k-means sample rows per IVF list (faiss warns below 39)
_TRAIN_ITERATIONS = 10  # k-means iterations: an IVF partition needs no convergence


def default_nlist(n: int) -> int:
    """IVF lists for n rows: ``2 sqrt(n)``, at most n // 40 (k-means sample), at least 1.

    Lists of a fixed size (500 rows, nlist proportional to n) suit evenly dense data but
    not data whose clusters are much larger than a list (at 10M rows around 1000 centres
    a query's neighbours spread over its whole cluster, 20 such lists); above 1M rows
    ``nlist='auto'`` weighs both from a sample (:mod:`d2fast._nlist`)."""
    return max(1, min(n // _TRAIN_PER_LIST, int(2 * np.sqrt(n))))


def _nlist(n: int, params: dict) -> int:
    """The IVF lists of checked ``params`` for n rows: the partition's, or ``nlist``
    (default and 'auto' when :func:`_nlist_auto` is not: :func:`default_nlist`), at
    most n."""
    part, nlist = params["partition"], params["nlist"]
    if part is not None:
        return part.nlist
    return min(n, default_nlist(n) if nlist in (None, "auto") else int(nlist))


def _nlist_auto(n: int, d: int, params: dict) -> bool:
    """Whether the IVF search of checked ``params`` over all n rows chooses nlist
    (:mod:`d2fast._nlist`): ``nlist`` unset or 'auto', with ``nprobe='auto'``, no
    partition and no PCA, and two list counts to choose between (above 1M rows)."""
    from d2fast._nlist import nlist_choices

    return (params["nlist"] in (None, "auto") and params["partition"] is None
            and isinstance(params["nprobe"], str) and not pca_dims(d, params["pca"])
            and len(nlist_choices(n)) > 1)


def resolve(n: int, d: int, k: int, method: str, params: dict | None) -> tuple[str, dict]:
    """What :func:`search` runs for n rows of d dims and k neighbours: the method
    ``'auto'`` becomes and its parameters with every default filled in, JSON-able.

    Exact: ``{}``. HNSW: ``M``, ``ef_construction``, ``ef_search``, ``candidates``.
    IVF: ``nlist`` (the partition's when one is given), ``nprobe`` (at most nlist, or
    ``'auto'``, which the search replaces with the value it chose, see
    :func:`search`), ``pool`` (None: 8 nprobe; chosen with nprobe 'auto'),
    ``candidates``, ``pca`` (0: none) and ``partition`` (``'given'``, or
    None when the search trains its own); without a given partition, passing them back
    as ``knn_params`` runs the same search. Raises ValueError for parameters the method
    does not take.
    """
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_ROWS else "ivf"
    if method == "exact":
        if params:
            raise ValueError(f"knn_params={params!r}: exact search takes no parameters")
        return method, {}
    params = _check_params(method, params)
    if method == "hnsw":
        c = min(n, max(k + 1, int(params["candidates"] or k + 1 + _MARGIN)))
        return method, {"M": int(params["M"]), "ef_construction": int(params["ef_construction"]),
                        "ef_search": int(params["ef_search"] or max(64, 4 * c)),
                        "candidates": c}
    from d2fast import _ivf

    part, nlist = params["partition"], _nlist(n, params)
    pca = pca_dims(d, params["pca"])
    c = int(params["candidates"] or (_ivf.PCA_CANDIDATES if pca else 1) * (k + 1) + _MARGIN)
    nprobe = "auto" if isinstance(params["nprobe"], str) else min(nlist, int(params["nprobe"]))
    nlist = "auto" if _nlist_auto(n, d, params) else nlist
    pool = None if params["pool"] is None else int(params["pool"])
    return method, {"nlist": nlist, "nprobe": nprobe, "pool": pool, "candidates": c, "pca": pca,
                    "partition": None if part is None else "given"}


def float32_rows(X: np.ndarray, normalize: bool, rows: np.ndarray | None = None) -> np.ndarray:
    """C-contiguous float32 (n, d), or (len(rows), d) of the rows ``rows`` (int64 ids),
    built in row blocks; unit rows when ``normalize``.

    A C-contiguous float32 ndarray is returned as it is (faiss and the re-ranking only
    read it); anything else, memmaps included, is converted block by block, and a subset
    is gathered block by block (no copy of the selected rows in their own dtype).
    """
    if rows is None and not normalize and X.dtype == np.float32 and X.flags.c_contiguous \
            and not isinstance(X, np.memmap):
        return X
    m = X.shape[0] if rows is None else rows.size
    out = np.empty((m, X.shape[1]), dtype=np.float32)
    for start in range(0, m, BLOCK_ROWS):
        part = X[start:start + BLOCK_ROWS] if rows is None else X[rows[start:start + BLOCK_ROWS]]
        block = np.asarray(part, dtype=np.float64)
        if normalize:
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            block = np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)
        out[start:start + block.shape[0]] = block
    _release_pages(X)
    return out


def _release_pages(X: np.ndarray) -> None:
    """Drop a file-backed memmap's pages from this process's resident set (they stay in
    the page cache; a later read faults them back in), so a memmap read once in blocks
    does not stay counted in memory beside its float32 copy. Copy-on-write maps ('c')
    hold private changes and are left alone."""
    mapping = getattr(X, "_mmap", None)
    if mapping is not None and getattr(X, "mode", "c") != "c" and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def search(X: np.ndarray, k: int, *, cosine: bool, method: str = "auto",
           params: dict | None = None, progress: bool = False, backend: str = "auto",
           report: dict | None = None):
    """The k nearest other rows of every row of ``X``.

    Parameters
    ----------
    X : float32 of shape (n, d), C-contiguous; unit rows for cosine
    k : int, 1 <= k < n
    cosine : bool
        Keys are ``1 - x_i . x_j`` (cosine distance of unit rows) instead of squared L2.
    method : {'auto', 'exact', 'hnsw', 'ivf'}
    params : dict, optional
        HNSW: ``M`` (32), ``ef_construction`` (80), ``ef_search`` (max(64, 4 c));
        IVF (:func:`d2fast.ivf_knn`): ``nlist`` ('auto': 2 sqrt(n), or above 1M rows
        with nprobe 'auto' and no PCA, lists of 500 rows where the estimate of
        :mod:`d2fast._nlist` says they cost half; or an int), ``nprobe`` ('auto': the
        fewest lists reaching ``recall`` (0.99) on sampled queries, or an int),
        ``pool`` (8 nprobe: the centroids nearest a query's own that its probes are
        chosen among; chosen with nprobe 'auto'),
        ``pca`` (0: scan the lists in the full space), ``partition`` (a precomputed
        :class:`d2fast.Partition`; default trained here); both: ``candidates`` (c,
        default k + 9, at least k + 1), the candidates per row re-ranked exactly.
    progress : bool
        tqdm progress bar over the query rows.
    backend : str
        Kernel backend of the exact re-ranking.

    Returns
    -------
    ids : int64 of shape (n, k), -1 where an approximate search found fewer than k rows
    keys : float64 of shape (n, k), squared L2 or cosine distance (inf where ids == -1)
    """
    return search_database(X, None, None, k, cosine=cosine, method=method, params=params,
                           progress=progress, backend=backend, report=report)


def _check_params(method: str, params: dict | None) -> dict:
    params = dict(params or {})
    unknown = set(params) - set(_PARAMS[method])
    if unknown:
        raise ValueError(f"knn_params has {sorted(unknown)}, not parameters of knn={method!r} "
                         f"(those are {sorted(_PARAMS[method])})")
    for name, value in params.items():
        if name == "partition":
            from d2fast.partition import Partition

            if value is not None and not isinstance(value, Partition):
                raise TypeError(f"knn_params['partition'] must be a d2fast.Partition "
                                f"(from d2fast.ivf_partition), got {type(value).__name__}")
            continue
        if value is None and _PARAMS[method][name] is None:  # the default, as resolve writes
            continue
        if name == "recall" or (name in ("nprobe", "nlist") and isinstance(value, str)
                                and value == "auto"):
            if name == "recall" and (isinstance(value, bool) or not isinstance(
                    value, (int, float, np.integer, np.floating)) or not 0 < value <= 1):
                raise ValueError(f"knn_params['recall'] == {value!r}, must be a number in "
                                 "(0, 1]: the target recall@k of nprobe='auto'")
            continue
        lo = 0 if name == "pca" else 1  # pca=0: no projection
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"knn_params[{name!r}] == {value!r}, must be an int >= {lo}"
                             + (" or 'auto'" if name == "nprobe" else ""))
    if params.get("partition") is not None and params.get("nlist") not in (None, "auto"):
        raise ValueError("knn_params has both 'partition' and 'nlist': the partition fixes "
                         "the lists; give one")
    params = {**_PARAMS[method], **params}
    if method == "ivf" and not isinstance(params["nprobe"], str):
        if params["recall"] is not None:
            raise ValueError(f"knn_params['recall'] == {params['recall']!r} is the target of "
                             f"nprobe='auto', but nprobe == {params['nprobe']!r}")
        if params["pool"] is not None and params["pool"] < params["nprobe"]:
            raise ValueError(f"knn_params['pool'] == {params['pool']!r} < nprobe == "
                             f"{params['nprobe']!r}: the probes are chosen among the pool")
    return params


def index_bytes(n: int, d: int, method: str, params: dict | None, k: int = 10) -> float:
    """Approximate memory of the index ``search`` builds for n rows of d dims and k
    neighbours, in bytes (0 for exact search)."""
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_ROWS else "ivf"
    if method == "exact":
        return 0.0
    params = _check_params(method, params)
    if method == "hnsw":
        return n * (4.0 * d + 8.0 * params["M"] + 16.0)
    # IVF: the list of every row, its position in the lists and their sort (24 B a row;
    # 4 more for nprobe='auto'), the PCA projection of the rows, the pool table (16 B a
    # centroid and pool entry), and the larger of the assignment's temporaries and a
    # query block's candidates and gathered rows (the stages run one after the other)
    from d2fast import _ivf
    from d2fast.partition import assign_bytes

    from d2fast._nlist import nlist_choices

    pca = pca_dims(d, params["pca"])
    auto, nlist = isinstance(params["nprobe"], str), _nlist(n, params)
    if _nlist_auto(n, d, params):
        nlist = max(nlist_choices(n))
    pool = POOL * MAX_NPROBE if auto else params["pool"] or POOL * params["nprobe"]
    return n * (24.0 + 4.0 * auto + 4.0 * pca) + 16.0 * nlist * min(nlist, pool) + \
        max(assign_bytes(d), _ivf.block_bytes(d, k, pca))


def pca_dims(d: int, pca: int | None) -> int:
    """The PCA width IVF scans the lists in: ``pca`` if given (0 or None: none; a PCA
    scan is opt-in: on clustered data with isotropic noise it lost recall, 0.47 at
    200k x 768 with pca=64, see the README)."""
    return min(pca or 0, d)


def search_database(X: np.ndarray, queries: np.ndarray | None, database: np.ndarray | None,
                    k: int, *, cosine: bool, method: str = "auto", params: dict | None = None,
                    progress: bool = False, backend: str = "auto",
                    report: dict | None = None):
    """The k nearest ``database`` rows of every ``queries`` row of ``X``.

    :func:`search` restricted to subsets of the rows (same candidates, exact float64
    re-ranking, ties to the lower id); a query in ``database`` is not its own neighbour.
    ``method='auto'`` is exact up to ``EXACT_MAX_ROWS`` rows of ``X``, IVF above.

    Parameters
    ----------
    X : float32 of shape (n, d), C-contiguous; unit rows for cosine
    queries : int64 of shape (m,), row ids in [0, n); None: all rows
    database : int64 of shape (n_db,), sorted unique row ids in [0, n), at least k rows
        besides the query itself; None: all rows
    k, cosine, method, params, progress, backend : as in :func:`search`
    report : dict, optional
        Filled with what ``nprobe='auto'`` chose (:func:`d2fast._ivf.search_lists`).

    Returns
    -------
    ids : int64 of shape (m, k), row ids of X (-1 where an approximate search found fewer)
    keys : float64 of shape (m, k), squared L2 or cosine distance (inf where ids == -1)
    """
    if method == "auto":
        method = "exact" if X.shape[0] <= EXACT_MAX_ROWS else "ivf"  # IVF: 4.7x HNSW at 1M
    if method == "exact":
        if params:
            raise ValueError(f"knn_params={params!r}: exact search takes no parameters")
        return _exact(X, k, cosine, progress, backend, queries, database)
    return _approximate(X, k, cosine, method, _check_params(method, params), progress, backend,
                        queries, database, report)


def _subset(X: np.ndarray, queries: np.ndarray | None, database: np.ndarray | None):
    """The query ids (None: all rows), the database rows of X and their ids (None: all)."""
    queries = np.arange(X.shape[0], dtype=np.int64) if queries is None else queries
    return queries, (X if database is None else X[database]), database


def _to_rows(I: np.ndarray, database: np.ndarray | None) -> np.ndarray:
    """faiss result positions in the database as row ids of X (-1 stays -1)."""
    return I if database is None else np.where(I >= 0, database[np.maximum(I, 0)], -1)


def _exact(X: np.ndarray, k: int, cosine: bool, progress: bool, backend: str,
           queries: np.ndarray | None = None, database: np.ndarray | None = None):
    """Exact search: faiss brute force, re-ranked; unsure rows searched again, wider.

    Queries all rows against all rows, or ``queries`` against ``database`` (row ids).
    """
    import faiss
    from tqdm.auto import tqdm

    d = X.shape[1]
    queries, X_db, database = _subset(X, queries, database)
    m, n_db = queries.size, X_db.shape[0]
    metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    sq_norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    # bound on faiss' float32 rounding of a squared distance / inner product
    slack = 4.0 * d * 2.0**-24 * (sq_norms + sq_norms.max()) + 1e-30
    ids = np.empty((m, k), dtype=np.int64)
    keys = np.empty((m, k), dtype=np.float64)
    pending = np.arange(m, dtype=np.int64)
    c = min(n_db, k + 1 + _MARGIN)
    query_rows, db_rows = _exact_blocks(n_db, d)
    with tqdm(total=m, desc="kNN search", unit="row", disable=not progress) as bar:
        first_pass = True
        while pending.size:
            unsure = []
            for pos in np.array_split(pending, -(-pending.size // query_rows)):
                rows = queries[pos]
                D, I = _flat_knn(X[rows], X_db, c, metric, db_rows)
                bound = 1.0 - D[:, -1] if cosine else D[:, -1].astype(np.float64)
                ids[pos], keys[pos] = rerank(X, rows, _to_rows(I, database), k, cosine, backend)
                if c < n_db:  # a row is sure if its k-th key is below every key not seen
                    unsure.append(pos[keys[pos, -1] >= bound - slack[rows]])
                if first_pass:
                    bar.update(rows.size)
            pending = np.concatenate(unsure) if unsure else pending[:0]
            c, first_pass = min(n_db, 2 * c), False
    return ids, keys


def _exact_blocks(n_db: int, d: int) -> tuple[int, int]:
    """Query rows and database rows per faiss call of the exact search.

    About ``_CALL_MADDS`` multiply-adds a call. faiss multiplies up to 4096 queries by
    1024 database rows at a time, each product followed by a thread barrier (costly when
    another process holds a core), so a call takes as many queries as fit against 1024
    rows (5x faster than 164 queries against 16k rows on 2 busy cores), and never fewer
    than faiss's BLAS path needs (``rows * d >= distance_compute_blas_threshold``; below
    it a call is ~5x slower a row).
    """
    import faiss

    blas_rows = -(-int(faiss.cvar.distance_compute_blas_threshold) // d)
    query_rows = min(_EXACT_QUERY_ROWS, _CALL_MADDS // (min(n_db, _EXACT_DB_ROWS) * d))
    query_rows = max(blas_rows, query_rows, 1)
    return query_rows, min(n_db, max(1, _CALL_MADDS // (query_rows * d)))


def _flat_knn(Xq: np.ndarray, X_db: np.ndarray, c: int, metric: int, db_rows: int):
    """``faiss.knn(Xq, X_db, c, metric)``, one call per ``db_rows`` database rows.

    The c best of every chunk are merged (ties to the lower row); the result holds the c
    best float32 keys overall, as one call would. D, I of shape (m, c), best first.
    """
    import faiss

    D, I = None, None
    for start in range(0, X_db.shape[0], db_rows):
        chunk = X_db[start:start + db_rows]
        Dj, Ij = faiss.knn(Xq, chunk, min(c, chunk.shape[0]), metric=metric)
        Ij += start
        if D is not None:
            Dj, Ij = np.concatenate([D, Dj], axis=1), np.concatenate([I, Ij], axis=1)
            key = Dj if metric == faiss.METRIC_L2 else -Dj  # inner products: larger first
            order = np.argsort(key, axis=1, kind="stable")[:, :c]
            Dj, Ij = np.take_along_axis(Dj, order, 1), np.take_along_axis(Ij, order, 1)
        D, I = Dj, Ij
    return D, I


def _approximate(X: np.ndarray, k: int, cosine: bool, method: str, params: dict,
                 progress: bool, backend: str, queries: np.ndarray | None = None,
                 database: np.ndarray | None = None, report: dict | None = None):
    """HNSW or IVF search (L2 on the rows: the cosine order for unit rows), re-ranked.

    Indexes all rows, or the ``database`` rows, and queries all rows, or ``queries``.
    """
    from tqdm.auto import tqdm

    queries, X_db, database = _subset(X, queries, database)
    m, n = queries.size, X_db.shape[0]
    # one bar over the rows added (HNSW) or assigned to lists (IVF), then the rows
    # searched; its label names the stage
    with tqdm(total=n + m, desc=f"kNN {method}", unit="row", disable=not progress) as bar:
        if method == "ivf":
            return _ivf_search(X, X_db, k, cosine, params, bar, backend, queries, database,
                               report)
        return _hnsw_search(X, X_db, k, cosine, params, bar, backend, queries, database)


def _hnsw_search(X, X_db, k, cosine, params, bar, backend, queries, database):
    """:func:`_approximate` with a faiss HNSW index."""
    import faiss

    d, m, n = X.shape[1], queries.size, X_db.shape[0]
    c = min(n, max(k + 1, int(params["candidates"] or k + 1 + _MARGIN)))
    ids = np.empty((m, k), dtype=np.int64)
    keys = np.empty((m, k), dtype=np.float64)
    index = faiss.IndexHNSWFlat(d, int(params["M"]))
    index.hnsw.efConstruction = int(params["ef_construction"])
    index.hnsw.efSearch = int(params["ef_search"] or max(64, 4 * c))
    bar.set_description("kNN hnsw: add")
    for start in range(0, n, _QUERY_ROWS):
        index.add(X_db[start:start + _QUERY_ROWS])
        bar.update(min(_QUERY_ROWS, n - start))
    bar.set_description("kNN hnsw: search")
    block = max(1, min(_QUERY_ROWS, _HNSW_CALL_MADDS //
                       (index.hnsw.efSearch * 2 * int(params["M"]) * d)))
    for start in range(0, m, block):
        pos = np.arange(start, min(m, start + block))
        rows = queries[pos]
        _, I = index.search(X[rows], c)
        ids[pos], keys[pos] = rerank(X, rows, _to_rows(I, database), k, cosine, backend)
        bar.update(rows.size)
    ids[~np.isfinite(keys)] = -1
    return ids, keys


def _ivf_search(X, X_db, k, cosine, params, bar, backend, queries, database, report):
    """:func:`_approximate` over an IVF partition of the database rows (``params
    ['partition']`` or one trained here), searched with :func:`d2fast._ivf.search_lists`."""
    from d2fast import _ivf
    from d2fast._nlist import choose_nlist
    from d2fast.partition import Partition, assign_rows, partition_rows

    n, d = X_db.shape
    part, metric = params["partition"], "cosine" if cosine else "euclidean"
    if part is None and database is None and _nlist_auto(n, d, params):
        bar.set_description("kNN ivf: choose nlist")
        centroids, chosen = choose_nlist(X, k, cosine, params["recall"] or RECALL, backend)
        if report is not None:
            report.update(nlist=chosen.pop("nlist"), nlist_auto=chosen)
        bar.set_description(f"kNN ivf: assign rows to {centroids.shape[0]} lists")
        part = Partition(centroids=centroids, assign=assign_rows(X, centroids, False, bar),
                         metric=metric)
    elif part is None:
        part = partition_rows(X_db, _nlist(n, params), metric=metric, normalize=False, bar=bar)
    else:
        if part.assign.shape != (n,) or part.centroids.shape[1] != d:
            raise ValueError(f"knn_params['partition'] is of {part.assign.shape[0]} rows of "
                             f"{part.centroids.shape[1]} dims, the search of {n} x {d}")
        if (part.metric == "cosine") != cosine:
            raise ValueError(f"knn_params['partition'] has metric={part.metric!r}: cosine "
                             "and L2 partitions are not interchangeable")
        bar.update(n)
    offsets, members = part.lists()
    if database is None:
        own = part.assign[queries]
    else:
        members = database[members]
        own = assign_rows(X[queries], part.centroids, normalize=False)
    bar.set_description("kNN ivf: search")
    return _ivf.search_lists(X, k, part.centroids, offsets, members, queries, own,
                             nprobe=params["nprobe"], cosine=cosine, normalize=False,
                             candidates=params["candidates"], pca=pca_dims(d, params["pca"]),
                             pool=params["pool"], recall=float(params["recall"] or RECALL),
                             progress=bar,
                             backend=backend, report=report)


def rerank(X: np.ndarray, rows: np.ndarray, cand: np.ndarray, k: int, cosine: bool,
           backend: str = "auto"):
    """The k best of ``cand`` (m, c) for ``rows`` (m,) by exact float64 key.

    Self matches and -1 entries are dropped; ties go to the lower id. Returns ids int64
    (m, k) and keys float64 (m, k); a row with fewer than k candidates is padded with
    key inf.
    """
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    step = max(1, _RERANK_MADDS // max(1, cand.shape[1] * X.shape[1]))
    if rows.size > step:  # one kernel call a block (~0.05 s): Ctrl-C is handled between
        parts = [rerank(X, rows[a:a + step], cand[a:a + step], k, cosine, backend)
                 for a in range(0, rows.size, step)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    keys = _backends.get(backend).pair_keys(X, rows, cand, cosine)
    keys[(cand < 0) | (cand == rows[:, None])] = np.inf
    order = np.lexsort((cand, keys), axis=1)[:, :k]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(keys, order, 1)
