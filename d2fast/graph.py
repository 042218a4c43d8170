"""The kNN graph: ``Graph`` (validated CSR) and ``knn_graph`` (faiss search -> CSR)."""
from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from d2fast import _backends
from d2fast.io import read_npy_header
from d2fast._validate import (check_choice, check_emb, check_ids, check_k, check_memory,
                              to_numpy)
from d2fast.knn import KNN, float32_rows, index_bytes, resolve, search

METRICS = ("euclidean", "sqeuclidean", "cosine")
GRAPHS = ("union", "directed")
_FORMAT = "d2fast.Graph/1"  # tag stored in Graph.save files
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # distances are stored as float32


def row_edges(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, edge)``, int64 of shape (edges of ``rows``,): the edges of the rows
    ``rows`` (int64 ids) of a CSR graph, row by row in their order: ``edge`` indexes
    ``indices``, ``owner`` the position in ``rows`` of the edge's row."""
    counts = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(rows.size, dtype=np.int64), counts)
    starts = np.repeat(indptr[rows] - np.cumsum(counts) + counts, counts)
    return owner, starts + np.arange(owner.size, dtype=np.int64)


class Graph:
    """A validated CSR graph: node i's neighbours are ``indices[indptr[i]:indptr[i + 1]]``.

    Parameters
    ----------
    indptr : int array of shape (n + 1,)
        Row offsets, ``indptr[0] == 0``, non-decreasing, ``indptr[n] == nnz``.
    indices : int array of shape (nnz,)
        Neighbour ids in ``[0, n)``, strictly increasing within each row, no self loops.
    distances : real array of shape (nnz,)
        Finite, non-negative edge lengths (stored as float32).
    meta : dict, optional
        How the graph was built, JSON-serialisable (copied to ``Graph.meta``; default
        ``{}``). :func:`knn_graph` records ``metric``, ``k``, ``graph`` (the kind),
        ``knn`` (the method ``'auto'`` became), ``knn_params`` (every parameter, defaults
        filled in), ``normalization`` (``'l2'``: unit rows, for cosine; else ``'none'``),
        and ``faiss`` (version); :meth:`subgraph` adds ``subgraph_of`` (the parent's
        n). :meth:`save` stores it, :func:`d2fast.prune` checks its options against it.

    The arrays are copied (indptr int64, indices int32, distances float32) and made
    read-only, so later changes to the caller's arrays cannot corrupt the graph.

    Raises
    ------
    TypeError, ValueError
        When the arrays do not form such a graph; the message names the array.
    """

    __slots__ = ("indptr", "indices", "distances", "meta")

    def __init__(self, indptr: Any, indices: Any, distances: Any, *,
                 meta: dict | None = None) -> None:
        indptr = _int_array(indptr, "indptr")
        indices = _int_array(indices, "indices")
        distances = to_numpy(distances, "distances")
        if distances.ndim != 1:
            raise ValueError(f"distances.shape == {distances.shape}, expected 1-D (nnz,)")
        if indptr.size < 2:
            raise ValueError(f"indptr.shape == {indptr.shape}, expected (n + 1,) with n >= 1")
        n, nnz = indptr.size - 1, indices.size
        if n >= 2**31 - 1:
            raise ValueError(f"n == {n} nodes, at most 2**31 - 2 are supported")
        if indptr[0] != 0 or indptr[-1] != nnz:
            raise ValueError(f"indptr must start at 0 and end at nnz={nnz} "
                             f"(got {indptr[0]} and {indptr[-1]})")
        if distances.size != nnz:
            raise ValueError(f"distances.shape == {distances.shape}, expected ({nnz},) "
                             "like indices")
        if (np.diff(indptr) < 0).any():
            raise ValueError("indptr must be non-decreasing")
        if nnz and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"indices must lie in [0, n) with n={n} "
                             f"(found {indices.min()} .. {indices.max()})")
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int32)
        d32 = np.array(distances, dtype=np.float32)
        _check_rows(indptr, indices, d32)
        self._set(indptr, indices, d32, _check_meta(meta))

    def _set(self, indptr: np.ndarray, indices: np.ndarray, distances: np.ndarray,
             meta: dict | None = None) -> None:
        for arr in (indptr, indices, distances):
            arr.setflags(write=False)
        self.indptr, self.indices, self.distances = indptr, indices, distances
        self.meta = dict(meta or {})

    @classmethod
    def _trusted(cls, indptr: np.ndarray, indices: np.ndarray, distances: np.ndarray,
                 meta: dict | None = None) -> "Graph":
        """Wrap kernel output that is valid by construction (no O(nnz) checks)."""
        graph = cls.__new__(cls)
        graph._set(indptr, indices, distances, meta)
        return graph

    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.indptr.size - 1

    @property
    def nnz(self) -> int:
        """Number of stored (directed) edges."""
        return self.indices.size

    def degrees(self) -> np.ndarray:
        """Out-degree of every node, int64 of shape (n,)."""
        return np.diff(self.indptr)

    def to_scipy(self):
        """The graph as a ``scipy.sparse.csr_matrix`` of distances (shape (n, n))."""
        from scipy.sparse import csr_matrix

        return csr_matrix((self.distances, self.indices, self.indptr), shape=(self.n, self.n))

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph to an uncompressed ``.npz`` that :meth:`load` can memory-map.

        The file is written to a temporary name and renamed, so a crash leaves no partial file.
        ``meta`` is stored beside the arrays (as JSON); files written before it existed
        load with ``meta == {}``.
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        try:
            np.savez(tmp, format=np.array(_FORMAT), indptr=self.indptr, indices=self.indices,
                     distances=self.distances, meta=np.array(json.dumps(self.meta)))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True) -> "Graph":
        """Read a graph written by :meth:`save`, validated like the constructor.

        Parameters
        ----------
        path : str or PathLike
            The ``.npz`` file.
        mmap : bool, default=True
            Memory-map the arrays (read-only) instead of reading them: a graph of any size
            loads at once and its pages are shared between processes.
        """
        path = os.fspath(path)
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a d2fast graph file (not a .npz)")
        arrays = _read_npz(path, mmap)
        if "format" not in arrays or str(np.asarray(arrays["format"])) != _FORMAT:
            raise ValueError(f"{path} is not a d2fast graph file (format {_FORMAT!r})")
        want = {"indptr": np.int64, "indices": np.int32, "distances": np.float32}
        for name, dtype in want.items():
            arr = arrays.get(name)
            if arr is None or arr.dtype != dtype or arr.ndim != 1:
                raise ValueError(f"{path}: {name} is missing or not a 1-D {np.dtype(dtype)} array")
        indptr, indices, distances = (arrays[name] for name in want)
        try:
            meta = json.loads(str(np.asarray(arrays["meta"]))) if "meta" in arrays else {}
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: meta is not a JSON object")
        n, nnz = indptr.size - 1, indices.size
        if n < 1 or indptr[0] != 0 or indptr[-1] != nnz or distances.size != nnz or \
                (np.diff(indptr) < 0).any():
            raise ValueError(f"{path}: indptr does not describe {nnz} edges")
        if nnz and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"{path}: indices must lie in [0, n) with n={n}")
        _check_rows(indptr, indices, distances)
        if not mmap:
            return cls._trusted(indptr, indices, distances, meta)
        graph = cls.__new__(cls)
        graph.indptr, graph.indices, graph.distances = indptr, indices, distances
        graph.meta = meta
        return graph

    def __repr__(self) -> str:
        return f"Graph(n={self.n}, nnz={self.nnz})"

    def permuted(self, order: Any, *, backend: str = "auto") -> "Graph":
        """The same graph with its nodes renumbered: node t is node ``order[t]``.

        Parameters
        ----------
        order : int array-like of shape (n,)
            A permutation of ``range(n)``.
        backend : str, default='auto'
            Kernel backend (see :func:`d2fast.backends`).

        Returns
        -------
        Graph
            n nodes, the same edges and distances; each row's neighbours sorted again by
            their new ids. ``meta`` is the parent's. O(n + nnz log degree) time (the C++
            and numba kernels run in parallel), O(n + nnz) memory.
        """
        order = check_ids(order, self.n, "order", unique=True)
        if order.size != self.n:
            raise ValueError(f"order must be a permutation of range({self.n}), got "
                             f"{order.size} ids")
        return self._renumbered(order, dict(self.meta), backend)

    def subgraph(self, rows: Any, *, backend: str = "auto") -> "Graph":
        """The subgraph induced by ``rows``: node t is ``rows[t]``, edges among them only.

        Parameters
        ----------
        rows : int array-like of shape (m,)
            Sorted, unique node ids in ``[0, n)``, ``m >= 1``.
        backend : str, default='auto'
            Kernel backend (see :func:`d2fast.backends`).

        Returns
        -------
        Graph
            m nodes; the edges of the rows to other rows in ``rows``, same distances.
            A row can lose neighbours (those outside ``rows``), so this is not the kNN
            graph of the subset. ``meta`` is the parent's plus ``subgraph_of`` (n).
            O(n + edges of the rows) time and memory.
        """
        rows = check_ids(rows, self.n, "rows")
        if rows.size == 0 or (rows.size > 1 and (np.diff(rows) <= 0).any()):
            raise ValueError("rows must be non-empty, sorted and unique")
        return self._renumbered(rows, {**self.meta, "subgraph_of": self.n}, backend)

    def _renumbered(self, rows: np.ndarray, meta: dict, backend: str) -> "Graph":
        """The graph induced by the checked, distinct int64 ids ``rows``, node t = rows[t]."""
        return Graph._trusted(*_backends.get(backend).renumber(
            self.indptr, self.indices, self.distances, rows), meta)

    @classmethod
    def from_knn(cls, I: Any, D: Any, *, graph: str = "union", squared: bool = False,
                 drop_self: bool | str = "auto", backend: str = "auto") -> "Graph":
        """Build a graph from precomputed kNN lists, e.g. the ``D, I`` of a faiss search.

        Parameters
        ----------
        I : int array of shape (n, c)
            Neighbour ids in ``[0, n)``; ``-1`` (faiss: no result) marks a missing entry.
        D : real array of shape (n, c)
            Distance of each entry: finite and >= 0 where ``I >= 0``.
        graph : {'union', 'directed'}, default='union'
            Union: edge {i, j} if j in I[i] or i in I[j]. Directed: row i is I[i].
        squared : bool, default=False
            D holds squared L2 distances (faiss ``IndexFlatL2``); their square roots are
            stored. Rounding noise down to ``-1e-6 * max(D)`` is clipped to 0.
        drop_self : bool or 'auto', default='auto'
            True: I is a search of the data against itself; each row loses its self match,
            or its last column when the self match is missing (duplicates can push it out),
            so every row keeps c - 1 entries. False: I holds no self matches (one is an
            error). 'auto': True if any row contains its own id.
        backend : str, default='auto'
            Kernel backend for the CSR build.
        """
        graph = check_choice(graph, "graph", GRAPHS)
        I = to_numpy(I, "I")
        D = to_numpy(D, "D")
        if I.ndim != 2 or I.shape[0] < 1 or I.shape[1] < 1:
            raise ValueError(f"I.shape == {I.shape}, expected 2-D (n, c) and non-empty")
        if D.shape != I.shape:
            raise ValueError(f"D.shape == {D.shape}, expected {I.shape} like I")
        if not np.issubdtype(I.dtype, np.integer):
            raise TypeError(f"I must have an integer dtype, got {I.dtype}")
        n = I.shape[0]
        if I.min() < -1 or I.max() >= n:
            raise ValueError(f"I must lie in [0, n) with n={n}, or be -1 for a missing entry "
                             f"(found {I.min()} .. {I.max()})")
        I = np.array(I, dtype=np.int64, order="C", copy=True)
        D = np.array(D, dtype=np.float64, order="C", copy=True)
        valid = I >= 0
        if not np.isfinite(D[valid]).all():
            raise ValueError("D contains NaN or inf at a valid (I >= 0) entry")
        if squared:
            D[valid & (D < 0) & (D >= -1e-6 * max(float(D[valid].max(initial=0.0)), 0.0))] = 0.0
        if (D[valid] < 0).any():
            raise ValueError(f"D must be >= 0 at valid entries (found {D[valid].min()})")
        if squared:
            np.sqrt(D, out=D, where=valid)
        if (D[valid] > _FLOAT32_MAX).any():
            raise ValueError(f"D must fit float32 (<= {_FLOAT32_MAX:.4g}) at valid entries, "
                             f"after the square root when squared (found {D[valid].max():.4g})")
        is_self = I == np.arange(n)[:, None]
        if drop_self == "auto":
            drop_self = bool(is_self.any())
        if drop_self is True:
            if I.shape[1] < 2:
                raise ValueError("drop_self=True needs at least 2 columns in I")
            no_self = ~is_self.any(axis=1)
            is_self[no_self, -1] = True
            first = is_self.cumsum(axis=1).cumsum(axis=1) == 1  # first self match per row
            keep = ~first
            I = I[keep].reshape(n, -1)
            D = D[keep].reshape(n, -1)
        elif drop_self is False:
            if is_self.any():
                row = int(np.flatnonzero(is_self.any(axis=1))[0])
                raise ValueError(f"I[{row}] contains {row} itself but drop_self=False")
        else:
            raise ValueError(f"drop_self={drop_self!r}, must be True, False or 'auto'")
        kern = _backends.get(backend)
        arrays = kern.build_csr(I, D.astype(np.float32), graph == "union")
        return cls._trusted(*arrays, {"graph": graph})

    @classmethod
    def from_scipy(cls, csr: Any) -> "Graph":
        """Build a graph from a scipy sparse matrix of distances (any sparse format).

        Stored entries are edges (an explicit 0 is a zero-length edge); the diagonal is
        dropped; duplicate entries keep their smallest distance; rows get sorted.
        """
        try:
            from scipy import sparse
        except ImportError as exc:  # pragma: no cover - scipy is a test dependency
            raise ImportError("Graph.from_scipy needs scipy") from exc
        if not sparse.issparse(csr):
            raise TypeError(f"csr must be a scipy sparse matrix, got {type(csr).__name__}")
        if csr.ndim != 2 or csr.shape[0] != csr.shape[1] or csr.shape[0] < 1:
            raise ValueError(f"csr.shape == {csr.shape}, expected square (n, n) with n >= 1")
        coo = csr.tocoo()
        n = csr.shape[0]
        row, col = coo.row.astype(np.int64), coo.col.astype(np.int64)
        dist = to_numpy(coo.data, "csr.data").astype(np.float64)
        if not (np.isfinite(dist).all() and (dist >= 0).all() and (dist <= _FLOAT32_MAX).all()):
            raise ValueError(f"csr.data (the distances) must be finite, >= 0 and fit float32 "
                             f"(<= {_FLOAT32_MAX:.4g})")
        off = row != col
        row, col, dist = row[off], col[off], dist[off].astype(np.float32)
        order = np.lexsort((dist, col, row))
        row, col, dist = row[order], col[order], dist[order]
        first = np.ones(row.size, dtype=bool)
        first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row[first], minlength=n), out=indptr[1:])
        return cls(indptr, col[first], dist[first])


def _check_meta(meta: Any) -> dict:
    """A copy of ``meta``: a dict that JSON can store (as :meth:`Graph.save` does)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must be JSON-serialisable ({exc})") from None


def _check_rows(indptr: np.ndarray, indices: np.ndarray, distances: np.ndarray) -> None:
    """No self loops, rows strictly increasing, distances finite and >= 0.

    ``indptr`` is already a valid offset array and ``indices`` lie in [0, n). Checked in
    blocks of about 2**24 edges, so memory stays bounded for memory-mapped graphs.
    """
    n = indptr.size - 1
    first = 0
    while first < n:
        last = min(n, int(np.searchsorted(indptr, indptr[first] + (1 << 24), "right")))
        last = max(last, first + 1)
        lo, hi = int(indptr[first]), int(indptr[last])
        rows = np.repeat(np.arange(first, last, dtype=np.int64), np.diff(indptr[first:last + 1]))
        idx = indices[lo:hi]
        if (idx == rows).any():
            raise ValueError(f"indices holds a self loop at node {int(rows[idx == rows][0])}")
        bad = (rows[1:] == rows[:-1]) & (idx[1:] <= idx[:-1])
        if bad.any():
            raise ValueError(f"indices of row {int(rows[1:][bad][0])} are not strictly "
                             "increasing (rows must be sorted, without duplicates)")
        dist = distances[lo:hi]
        if not (np.isfinite(dist).all() and (dist >= 0).all()):
            raise ValueError("distances must be finite and >= 0")
        first = last


def _read_npz(path: str, mmap: bool) -> dict:
    """Arrays of an uncompressed ``.npz``; with ``mmap``, read-only memmaps into the file."""
    if not mmap:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{path}: {info.filename} is compressed; use mmap=False")
            f.seek(info.header_offset)
            local = f.read(30)
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
                int.from_bytes(local[28:30], "little")
            f.seek(start)
            shape, fortran, dtype = read_npy_header(f)
            if dtype.hasobject or fortran:
                raise ValueError(f"{path}: {info.filename} is not a plain C-order array")
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape) \
                if int(np.prod(shape)) else np.empty(shape, dtype)
    return out


def _int_array(x: Any, name: str) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}.shape == {arr.shape}, expected 1-D")
    if arr.size == 0:
        return arr.astype(np.int64)  # [] is float64 to NumPy
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values above 2**63 - 1 (found {arr.max()})")
    return arr.astype(np.int64, copy=False)  # unsigned differences would wrap around


def check_prebuilt(graph: Any, n: int, /, **given: Any) -> Graph:
    """A prebuilt graph of n rows whose ``meta`` agrees with the ``given`` options.

    ``given`` maps option names (``k``, ``metric``, ``graph`` -- the kind --, ``knn``,
    ``knn_params``) to the caller's values; None (not given) and ``knn='auto'`` agree
    with anything, and so does an option the graph's ``meta`` does not record.

    Raises
    ------
    TypeError
        ``graph`` is not a Graph.
    ValueError
        Its node count is not n, or an option contradicts ``meta`` (both values named).
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a graph kind ({', '.join(map(repr, GRAPHS))}) or a "
                        f"d2fast.Graph, got {type(graph).__name__}")
    if graph.n != n:
        raise ValueError(f"graph.n == {graph.n}, expected {n} nodes like emb")
    for name, value in given.items():
        built = graph.meta.get(name)
        if value is None or built is None or (name == "knn" and value == "auto"):
            continue
        if name == "knn_params":
            # a Partition is not saved; nprobe='auto' agrees with the value it chose
            wrong = {p: v for p, v in value.items() if p != "partition" and built.get(p) != v
                     and not (p in ("nlist", "nprobe") and v == "auto")
                     and not (p == "recall"
                              and graph.meta.get("knn_auto", {}).get("recall_target") == v)}
            if wrong:
                raise ValueError(f"graph was built with knn_params={built!r}, which "
                                 f"contradicts knn_params={value!r}; leave knn_params unset "
                                 "with a prebuilt graph")
        elif value != built:
            raise ValueError(f"graph was built with {name}={built!r} but {name}={value!r} was "
                             f"given; leave {name} unset to use the graph's, or build a graph "
                             f"with {name}={value!r}")
    return graph


def knn_graph(emb: Any, k: int = 5, *, metric: str = "euclidean", graph: str = "union",
              knn: str = "auto", knn_params: dict | None = None, progress: bool = False,
              backend: str = "auto") -> Graph:
    """The kNN graph of the rows of ``emb`` (SPEC 2).

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings: ndarray, memmap (read in row blocks) or torch tensor; real, finite.
    k : int, default=5
        Neighbours per node, ``1 <= k < n``.
    metric : {'euclidean', 'sqeuclidean', 'cosine'}, default='euclidean'
        Plain L2, squared L2, or 1 - cosine similarity (a zero vector is at 1 from all).
    graph : {'union', 'directed'}, default='union'
        Union: edge {i, j} if j in kNN(i) or i in kNN(j). Directed: i's neighbours are kNN(i).
    knn : {'auto', 'exact', 'hnsw', 'ivf'}, default='auto'
        'exact': faiss brute force over row blocks (never an n x n matrix), O(n^2 d).
        'hnsw' / 'ivf': approximate faiss indexes (see :func:`d2fast.knn.search`).
        'auto': exact up to ``d2fast.knn.EXACT_MAX_ROWS`` rows, IVF above.
    knn_params : dict, optional
        Parameters of the approximate index: HNSW ``M`` (32), ``ef_construction`` (80),
        ``ef_search`` (max(64, 4 c)); IVF ``nlist`` ('auto': 2 sqrt(n), or above 1M rows
        n / 500 where the estimate says those cost half; or an int), ``nprobe`` ('auto', or
        an int), ``pool`` (8 nprobe), ``recall`` (0.99, the target of nprobe 'auto'),
        ``pca`` (0), ``partition`` (a :class:`d2fast.Partition` of these rows, e.g. from
        :func:`d2fast.ivf_partition`); both ``candidates`` (c = k + 9),
        the candidates per row re-ranked with exact distances. See :func:`d2fast.knn.search`.
    progress : bool, default=False
        Show a tqdm progress bar over the query blocks.
    backend : str, default='auto'
        Kernel backend for the re-ranking and the CSR build.

    Returns
    -------
    Graph
        CSR graph, float32 distances in the chosen metric; ``Graph.meta`` records the
        resolved choices (metric, k, kind, kNN method and parameters, faiss version).

    Notes
    -----
    Exact search: faiss ranks ``k + 1 + 8`` candidates per row in float32; they are
    re-ranked with exact float64 distances, ties to the lower index, and a row whose k-th
    neighbour is too close to the last candidate to be sure is searched again with twice
    the candidates. So the lists are the exact kNN with SPEC tie-breaking. Approximate
    search re-ranks its candidates the same way (exact distances, exact tie order).
    """
    X = check_emb(emb)
    k = check_k(k, X.shape[0])
    metric = check_choice(metric, "metric", METRICS)
    graph = check_choice(graph, "graph", GRAPHS)
    knn = check_choice(knn, "knn", KNN)
    return graph_of_rows(X, None, k, metric=metric, graph=graph, knn=knn,
                         knn_params=knn_params, progress=progress, backend=backend)


def graph_of_rows(X: np.ndarray, rows: np.ndarray | None, k: int, *, metric: str, graph: str,
                  knn: str, knn_params: dict | None, progress: bool, backend: str) -> Graph:
    """:func:`knn_graph` of checked rows ``X`` (n, d), or of the rows ``rows`` of X (sorted
    int64 ids, node i = row rows[i]) read straight into the float32 copy the search needs,
    so a memmap's subset is never copied in its own dtype beside it (``prune``'s hard
    prune and class groups)."""
    n, d = (X.shape[0] if rows is None else rows.size), X.shape[1]
    # float32 rows, an approximate index's own copy of them, kNN ids + keys (16 B), CSR
    # build: 2 keys (8 B) per directed edge twice, the output (8 B per edge), row counters
    edges = n * k * (2 if graph == "union" else 1)
    check_memory(4.0 * n * d + index_bytes(n, d, knn, knn_params, k) + 16.0 * n * k
                 + 24.0 * edges + 32.0 * n, f"knn_graph(n={n}, d={d}, k={k})")
    method, resolved = resolve(n, d, k, knn, knn_params)
    X32 = float32_rows(X, normalize=metric == "cosine", rows=rows)
    chosen: dict = {}
    knn_idx, keys = search(X32, k, cosine=metric == "cosine", method=knn, params=knn_params,
                           progress=progress, backend=backend, report=chosen)
    del X32  # a float32 copy of a memmap / other dtype: free it before the CSR build
    if metric == "euclidean":
        np.sqrt(keys, out=keys)
    dist = np.maximum(keys, 0.0).astype(np.float32)
    del keys
    import faiss

    meta = {"metric": metric, "k": k, "graph": graph, "knn": method, "knn_params": resolved,
            "normalization": "l2" if metric == "cosine" else "none",
            "faiss": faiss.__version__}
    if chosen:  # nlist / nprobe 'auto': the values chosen go in knn_params, the estimate beside
        resolved.update({p: chosen[p] for p in ("nlist", "nprobe", "pool") if p in chosen})
        meta["knn_auto"] = chosen
    return Graph._trusted(*_backends.get(backend).build_csr(knn_idx, dist, graph == "union"),
                          meta)
