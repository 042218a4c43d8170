"""Stages 2 and 3: each shard's rows and scores in node order, and its part of the graph.

Steps (plain numpy functions ``step(state, inbox, **args) -> (state, (to_shards,
to_driver))``, run by :mod:`d2fast.distributed.engines`):

- ``write_rows``: the shard's rows (float32, unit rows for cosine) and scores (float64)
  in node order, ``rows/shard-<p>.npy`` and ``scores/shard-<p>.npy``;
- ``search``: the k nearest neighbours of the shard's rows. ``knn='exact'``: over all
  rows (faiss brute force, exact float64 re-ranking: :func:`d2fast.knn.search_database`,
  the search of ``knn_graph(knn='exact')``). ``knn='ivf'``: the search of
  :func:`d2fast.ivf_knn` (``d2fast._ivf.search_lists``) over the partition's lists, the
  rows of a probed list read wherever they live (a halo read of the other shards' row
  files). Either way in global row ids, so ties go to the lower global id and the lists
  are those one machine finds with the same centroids. Each edge whose target another
  shard owns is sent there (the reverse edge of a union graph, the in-edge of a directed
  one);
- ``write_graph``: the shard's CSR (format of :mod:`d2fast.distributed.layout`).
"""
from __future__ import annotations

import mmap
import os
import shutil
import zipfile

import numpy as np

from d2fast.distributed.layout import RangeFiles, load_npz, shard_path
from d2fast.distributed.partition import BLOCK_ROWS, check_rows, mapping
from d2fast.io import atomic_write
from d2fast.knn import float32_rows, search_database


def _partition(state: dict) -> dict:
    """partition.npz (centroids, list offsets, bounds, ranges: small), cached in the state
    with the node <-> global row id mapping (``order``, ``node_of``: per-shard files)."""
    if "part" not in state:
        workdir = state["workdir"]
        state["part"] = dict(load_npz(f"{workdir}/partition.npz"),
                             order=mapping(workdir, "order"),
                             node_of=mapping(workdir, "node_of"))
    return state["part"]


def owned(state: dict) -> tuple[int, int]:
    """The node range ``lo:hi`` the shard owns."""
    bounds = _partition(state)["bounds"]
    return int(bounds[state["p"]]), int(bounds[state["p"] + 1])


_ROWS_BLOCK = 1 << 14  # rows read and written at a time by write_rows


def write_rows(state: dict, inbox: list):
    """Step: write the shard's rows and scores in node order.

    The input is read in global row order, ``_ROWS_BLOCK`` rows at a time, and each block
    is written to its node positions through a mapping of the row file that is closed
    after the block: the shard's rows are never all in memory (the scores are: 8 B a row).
    """
    lo, hi = owned(state)
    gid = np.load(shard_path(state["workdir"], "order", state["p"], ".npy"))
    by_gid = np.argsort(gid, kind="stable")
    cosine = state["cfg"]["metric"] == "cosine"
    shape = (hi - lo, state["emb"].width)
    scores = np.empty(hi - lo, dtype=np.float64)
    with atomic_write(shard_path(state["workdir"], "rows", state["p"], ".npy")) as tmp:
        offset = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                           shape=shape).offset
        with open(tmp, "r+b") as f:
            for start in range(0, gid.size, _ROWS_BLOCK):
                at = by_gid[start:start + _ROWS_BLOCK]
                block = state["emb"].take(gid[at])
                check_rows(block, state["emb"], gid[at])
                block = float32_rows(block, cosine)
                with mmap.mmap(f.fileno(), 0) as mapped:
                    rows = np.frombuffer(mapped, dtype=np.float32, count=shape[0] * shape[1],
                                         offset=offset).reshape(shape)
                    rows[at] = block
                    del rows  # the mapping closes only when no array views it
                s = state["scores"].take(gid[at]).astype(np.float64)
                check_rows(s, state["scores"], gid[at])
                scores[at] = s
    with atomic_write(shard_path(state["workdir"], "scores", state["p"], ".npy")) as tmp:
        np.save(tmp, scores)
    return state, (None, None)


_SEARCH_BLOCK = 1 << 18  # queries searched at a time (their candidates and results)


def node_dtype(n: int) -> np.dtype:
    """int32 for node ids when they fit, else int64."""
    return np.dtype(np.int32 if n < 2**31 else np.int64)


def choose_nprobe(state: dict, inbox: list, *, estimate: bool):
    """Step: ``nprobe='auto'`` (:func:`d2fast._nprobe.auto_nprobe`) on the shard with
    ``estimate``, from the same sampled queries (global row ids) as one machine, reading
    the lists near them from every shard's rows; the choice dict goes to the driver."""
    if not estimate:
        return state, (None, None)
    from d2fast._nprobe import auto_nprobe, sample
    from d2fast._threads import faiss_threads

    cfg, part = state["cfg"], _partition(state)
    list_offsets = np.asarray(part["list_offsets"])
    centroids = np.asarray(part["centroids"])
    rows = _RowsByGid(state)

    def list_of(gids: np.ndarray) -> np.ndarray:  # read from node_of, no array over all rows
        return np.searchsorted(list_offsets, part["node_of"][gids], "right") - 1

    # only the queries one machine samples (recall_curves' own sample of these 256 or
    # fewer is then all of them), and their lists
    q = sample(rows.shape[0]).astype(np.int64)
    with faiss_threads() as threads:
        chosen = auto_nprobe(rows, False, cfg["metric"] == "cosine", rows.__getitem__,
                             centroids, centroids, list_offsets, part["order"], q,
                             list_of(q), cfg["k"], cfg["recall"], threads, list_of)
    return state, (None, chosen)


def search(state: dict, inbox: list, *, nprobe: int | None = None, pool: int | None = None):
    """Step: kNN lists of the shard's rows; edges to other shards go there as messages.
    ``nprobe`` and ``pool``: the IVF search's (an int, as :func:`choose_nprobe` chose).

    Kept until ``write_graph``: the neighbours' node ids (``node_dtype``) and distances
    (float32) of each row, (m, k) each, -1 / 0 where fewer than k were found (12 B an
    edge below 2^31 rows)."""
    cfg = state["cfg"]
    lo, hi = owned(state)
    dtype = node_dtype(state["emb"].n)
    nbr = np.empty((hi - lo, cfg["k"]), dtype=dtype)
    dist = np.empty((hi - lo, cfg["k"]), dtype=np.float32)
    step = hi - lo if cfg["knn"] == "exact" else _SEARCH_BLOCK
    for a in range(lo, hi, max(step, 1)):
        b = min(hi, a + step)
        ids, keys = _search_exact(state, a, b) if cfg["knn"] == "exact" else \
            _search_ivf(state, a, b, nprobe, pool)
        if cfg["metric"] == "euclidean":
            np.sqrt(keys, out=keys)
        nbr[a - lo:b - lo] = ids
        dist[a - lo:b - lo] = np.maximum(keys, 0.0).astype(np.float32) + np.float32(0.0)
        del ids, keys
    state["knn"] = (nbr, dist)
    bounds = _partition(state)["bounds"]
    out = []
    for q in range(state["P"]):
        mine = (nbr >= bounds[q]) & (nbr < bounds[q + 1])
        rows, cols = np.nonzero(mine)
        out.append(None if q == state["p"] or rows.size == 0 else
                   (nbr[rows, cols], (rows + lo).astype(dtype), dist[rows, cols]))
        del mine, rows, cols
    return state, (out, None)


def _search_exact(state: dict, lo: int, hi: int):
    """Exact kNN (as node ids) over all rows, searched in global row order."""
    cfg, emb = state["cfg"], state["emb"]
    X = np.empty((emb.n, emb.width), dtype=np.float32)
    for start in range(0, emb.n, BLOCK_ROWS):
        X[start:start + BLOCK_ROWS] = float32_rows(emb.read(start, min(emb.n, start + BLOCK_ROWS)),
                                                   cfg["metric"] == "cosine")
    ids, keys = search_database(X, _partition(state)["order"][lo:hi], None, cfg["k"],
                                cosine=cfg["metric"] == "cosine", method="exact",
                                backend=cfg["backend"])
    return np.where(ids >= 0, _partition(state)["node_of"][np.maximum(ids, 0)], -1), keys


class _RowsByGid:
    """All shards' rows (float32, unit rows for cosine) indexed by global row id, read
    from the row files of the shards that own them: the ``X`` of
    :func:`d2fast._ivf.search_lists` (which reads only the rows it asks for)."""

    def __init__(self, state: dict) -> None:
        self.node_of = _partition(state)["node_of"]
        self.rows = RangeFiles([shard_path(state["workdir"], "rows", q, ".npy")
                                for q in range(state["P"])], _partition(state)["bounds"])
        self.shape = (state["emb"].n, state["emb"].width)

    def __getitem__(self, gids: np.ndarray) -> np.ndarray:
        return self.rows[self.node_of[gids]]


def _search_ivf(state: dict, lo: int, hi: int, nprobe: int, pool: int | None):
    """IVF kNN of nodes lo:hi (node ids) by :func:`d2fast._ivf.search_lists` (the search of
    ``ivf_knn`` / ``knn_graph(knn='ivf')``) over the partition's lists, in global row ids."""
    from d2fast._ivf import search_lists

    cfg, part = state["cfg"], _partition(state)
    list_offsets = np.asarray(part["list_offsets"])
    own = np.searchsorted(list_offsets, np.arange(lo, hi), "right") - 1
    ids, keys = search_lists(_RowsByGid(state), cfg["k"], np.asarray(part["centroids"]),
                             list_offsets, part["order"], part["order"][lo:hi], own,
                             nprobe=nprobe, cosine=cfg["metric"] == "cosine",
                             normalize=False, candidates=cfg["candidates"], pca=0, pool=pool,
                             backend=cfg["backend"])
    found = ids >= 0
    ids[found] = part["node_of"][ids[found]]
    keys[~found] = 0.0
    return ids, keys


def write_graph(state: dict, inbox: list):
    """Step: the shard's CSR from its kNN lists and the edges other shards sent it,
    built and written block of rows by block of rows (:func:`_write_csr`)."""
    lo, hi = owned(state)
    part = _partition(state)
    nbr, dist = state.pop("knn")
    came = [msg for msg in inbox if msg is not None]

    def out_edges(a: int, b: int) -> list:
        """The kNN edges of local rows a:b: [(row, neighbour node, distance)]."""
        n, d = nbr[a:b], dist[a:b]
        rows, cols = np.nonzero(n >= 0)
        return [(rows + a, n[rows, cols], d[rows, cols])]

    def in_edges(a: int, b: int) -> list:
        """The edges j -> i with i in local rows a:b, j's kNN edge: [(i, j, distance)]."""
        hit = (nbr >= lo + a) & (nbr < lo + b)
        rows, cols = np.nonzero(hit)
        del hit
        out = [(nbr[rows, cols] - lo, rows + lo, dist[rows, cols])]
        for dst, src, d in came:
            at = np.flatnonzero((dst >= lo + a) & (dst < lo + b))
            out.append((dst[at] - lo, src[at], d[at]))
        return out

    path, k = shard_path(state["workdir"], "graph", state["p"]), state["cfg"]["k"]
    members = {"gid": part["order"][lo:hi]}
    if state["cfg"]["graph"] == "union":
        members.update(_csr(path, lo, hi, lambda a, b: out_edges(a, b) + in_edges(a, b),
                            part, "", k))
    else:
        members.update(_csr(path, lo, hi, out_edges, part, "", k))
        members.update(_csr(path, lo, hi, in_edges, part, "in_", k))
    nnz = _save_members(path, members)
    return state, (None, {"nnz": nnz})


_CSR_EDGES = 1 << 21  # edges (about) sorted at a time when a CSR is built


def _csr(path: str, lo: int, hi: int, edges, part: dict, prefix: str, k: int) -> dict:
    """CSR rows lo:hi from ``edges(a, b)`` (the edges of local rows a:b as (local row,
    neighbour node id, distance) triples): each row sorted by the neighbour's global id,
    duplicates keep their smaller distance. Built a block of rows at a time (about
    ``_CSR_EDGES`` edges at degree 2k, 28 B each while sorted) and written to raw files next to
    ``path``; returns the members for :func:`_save_members` (array or (raw file, dtype,
    shape))."""
    order = part["order"]
    n, m = len(order), hi - lo
    rows_a_block = max(1, _CSR_EDGES // (2 * k))
    counts = np.zeros(m, dtype=np.int64)
    raw = {name: f"{path}.{prefix}{name}.raw" for name in ("indices", "nbr_gid", "distances")}
    files = {name: open(p, "wb") for name, p in raw.items()}
    try:
        for a in range(0, m, rows_a_block):
            b = min(m, a + rows_a_block)
            parts = edges(a, b)
            row = np.concatenate([p[0] for p in parts]).astype(np.int64)
            nbr = np.concatenate([p[1] for p in parts]).astype(np.int64)
            dist = np.concatenate([p[2] for p in parts])
            del parts
            key = row * n + order[nbr]  # (local row, neighbour's global id)
            sort = np.argsort(key)  # one sort; a key's duplicates then keep the least dist
            key, nbr, dist = key[sort], nbr[sort], dist[sort]
            del sort
            first = np.ones(key.size, dtype=bool)
            np.not_equal(key[1:], key[:-1], out=first[1:])
            start = np.flatnonzero(first)
            dist = np.minimum.reduceat(dist, start) if start.size else dist
            key, nbr = key[start], nbr[start]
            counts[a:b] = np.bincount(key // n - a, minlength=b - a)
            np.remainder(key, n, out=key)
            nbr.tofile(files["indices"])
            key.tofile(files["nbr_gid"])
            dist.tofile(files["distances"])
    finally:
        for f in files.values():
            f.close()
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    return {f"{prefix}indptr": indptr,
            f"{prefix}indices": (raw["indices"], np.dtype(np.int64), (nnz,)),
            f"{prefix}nbr_gid": (raw["nbr_gid"], np.dtype(np.int64), (nnz,)),
            f"{prefix}distances": (raw["distances"], np.dtype(np.float32), (nnz,))}


def _save_members(path: str, members: dict) -> int:
    """The graph file ``path`` (an uncompressed npz, written atomically) from arrays and
    raw files (streamed in, then removed); the number of (out-)edges."""
    fmt = np.lib.format
    with atomic_write(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, member in members.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                    if isinstance(member, np.ndarray):
                        fmt.write_array(out, member, allow_pickle=False)
                        continue
                    raw, dtype, shape = member
                    fmt.write_array_header_1_0(out, {"descr": fmt.dtype_to_descr(dtype),
                                                     "fortran_order": False, "shape": shape})
                    with open(raw, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
    for member in members.values():
        if not isinstance(member, np.ndarray):
            os.remove(member[0])
    return int(members["indptr"][-1])
