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

import numpy as np

from d2fast.distributed.layout import RangeFiles, load_npz, save_npz, shard_path
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


def write_rows(state: dict, inbox: list):
    """Step: write the shard's rows and scores in node order."""
    lo, hi = owned(state)
    gid = np.load(shard_path(state["workdir"], "order", state["p"], ".npy"))
    by_gid = np.argsort(gid, kind="stable")
    cosine = state["cfg"]["metric"] == "cosine"
    rows = np.empty((hi - lo, state["emb"].width), dtype=np.float32)
    scores = np.empty(hi - lo, dtype=np.float64)
    for start in range(0, gid.size, BLOCK_ROWS):
        at = by_gid[start:start + BLOCK_ROWS]
        block = state["emb"].take(gid[at])
        check_rows(block, state["emb"], gid[at])
        rows[at] = float32_rows(block, cosine)
        s = state["scores"].take(gid[at]).astype(np.float64)
        check_rows(s, state["scores"], gid[at])
        scores[at] = s
    for stage, arr in (("rows", rows), ("scores", scores)):
        with atomic_write(shard_path(state["workdir"], stage, state["p"], ".npy")) as tmp:
            np.save(tmp, arr)
    return state, (None, None)


def search(state: dict, inbox: list):
    """Step: kNN lists of the shard's rows; edges to other shards go there as messages."""
    cfg = state["cfg"]
    lo, hi = owned(state)
    if cfg["knn"] == "exact":
        ids, keys = _search_exact(state, lo, hi)
    else:
        ids, keys = _search_ivf(state, lo, hi)
    if cfg["metric"] == "euclidean":
        np.sqrt(keys, out=keys)
    dist = np.maximum(keys, 0.0).astype(np.float32) + np.float32(0.0)
    src = np.repeat(np.arange(lo, hi, dtype=np.int64), ids.shape[1])
    dst, dist = ids.ravel(), dist.ravel()
    keep = dst >= 0
    src, dst, dist = src[keep], dst[keep], dist[keep]
    state["knn_edges"] = (src, dst, dist)
    bounds = _partition(state)["bounds"]
    owner = np.searchsorted(bounds, dst, "right") - 1
    out = []
    for q in range(state["P"]):
        mine = owner == q
        out.append(None if q == state["p"] or not mine.any() else
                   (dst[mine], src[mine], dist[mine]))
    state["own_reverse"] = (dst[owner == state["p"]], src[owner == state["p"]],
                            dist[owner == state["p"]])
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


def _search_ivf(state: dict, lo: int, hi: int):
    """IVF kNN of nodes lo:hi (node ids) by :func:`d2fast._ivf.search_lists` (the search of
    ``ivf_knn`` / ``knn_graph(knn='ivf')``) over the partition's lists, in global row ids."""
    from d2fast._ivf import search_lists

    cfg, part = state["cfg"], _partition(state)
    list_offsets = np.asarray(part["list_offsets"])
    own = np.searchsorted(list_offsets, np.arange(lo, hi), "right") - 1
    ids, keys = search_lists(_RowsByGid(state), cfg["k"], np.asarray(part["centroids"]),
                             list_offsets, part["order"], part["order"][lo:hi], own,
                             nprobe=cfg["nprobe"], cosine=cfg["metric"] == "cosine",
                             normalize=False, candidates=cfg["candidates"], pca=0,
                             backend=cfg["backend"])
    found = ids >= 0
    ids[found] = part["node_of"][ids[found]]
    keys[~found] = 0.0
    return ids, keys


def write_graph(state: dict, inbox: list):
    """Step: the shard's CSR from its kNN lists and the edges other shards sent it."""
    lo, hi = owned(state)
    part = _partition(state)
    own = state.pop("knn_edges")
    came = [state.pop("own_reverse")] + [msg for msg in inbox if msg is not None]
    arrays = {"gid": part["order"][lo:hi]}
    if state["cfg"]["graph"] == "union":
        arrays.update(_csr(lo, hi, [own] + came, part, ""))
    else:
        arrays.update(_csr(lo, hi, [own], part, ""))
        arrays.update(_csr(lo, hi, came, part, "in_"))
    save_npz(shard_path(state["workdir"], "graph", state["p"]), **arrays)
    nnz = arrays["indices"].size
    return state, (None, {"nnz": nnz})


_LOOKUP_BLOCK = 1 << 22  # node <-> global id lookups at a time


def _csr(lo: int, hi: int, parts: list, part: dict, prefix: str) -> dict:
    """CSR rows lo:hi from edges given as (row node ids, neighbour node ids, distances)
    triples (the list is emptied): each row sorted by the neighbour's global id,
    duplicates keep their smaller distance.

    Memory: about 28 B an edge at the peak (one int64 key (row, neighbour's global id), the
    distances and the sort); the neighbours' node ids are looked up again at the end.
    """
    order, node_of = part["order"], part["node_of"]
    n, m = len(order), hi - lo
    edges = sum(p[0].size for p in parts)
    key = np.empty(edges, dtype=np.int64)  # (row - lo) * n + global id of the neighbour
    dist = np.empty(edges, dtype=np.float32)
    at = 0
    while parts:
        row, nbr, d = parts.pop(0)
        dist[at:at + row.size] = d
        for a in range(0, row.size, _LOOKUP_BLOCK):
            b = min(row.size, a + _LOOKUP_BLOCK)
            key[at + a:at + b] = (row[a:b] - lo) * n + order[nbr[a:b]]
        at += row.size
        del row, nbr, d
    sort = np.lexsort((dist, key))
    dist = dist[sort]
    key = key[sort]
    del sort
    first = np.ones(edges, dtype=bool)
    np.not_equal(key[1:], key[:-1], out=first[1:])
    key, dist = key[first], dist[first]
    del first
    indptr = np.searchsorted(key, np.arange(m + 1, dtype=np.int64) * n).astype(np.int64)
    np.remainder(key, n, out=key)  # now the neighbours' global ids
    nbr = np.empty(key.size, dtype=np.int64)
    for a in range(0, key.size, _LOOKUP_BLOCK):
        nbr[a:a + _LOOKUP_BLOCK] = node_of[key[a:a + _LOOKUP_BLOCK]]
    return {f"{prefix}indptr": indptr, f"{prefix}indices": nbr, f"{prefix}nbr_gid": key,
            f"{prefix}distances": dist}
