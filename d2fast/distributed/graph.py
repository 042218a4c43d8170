"""Stages 2 and 3: each shard's rows and scores in node order, and its part of the graph.

Steps (plain numpy functions ``step(state, inbox, **args) -> (state, (to_shards,
to_driver))``, run by :mod:`d2fast.distributed.engines`):

- ``write_rows``: the shard's rows (float32, unit rows for cosine) and scores (float64)
  in node order, ``rows/shard-<p>.npy`` and ``scores/shard-<p>.npy``;
- ``search``: the k nearest neighbours of the shard's rows. ``knn='exact'``: over all
  rows (faiss brute force, exact float64 re-ranking: :func:`d2fast.knn.search_database`,
  the search of ``knn_graph(knn='exact')``). ``knn='ivf'``: each row probes its ``nprobe``
  nearest centroids and searches those lists wherever they live (a halo read of the other
  shards' row files); the ``candidates`` nearest rows of each probed list in float32 are
  re-ranked with exact float64 distances. Ties go to the lower GLOBAL row id. Each edge
  whose target another shard owns is sent there (the reverse edge of a union graph, the
  in-edge of a directed one);
- ``write_graph``: the shard's CSR (format of :mod:`d2fast.distributed.layout`).
"""
from __future__ import annotations

import numpy as np

from d2fast import _backends
from d2fast.distributed.layout import load_npz, save_npz, shard_path
from d2fast.distributed.partition import BLOCK_ROWS, check_rows
from d2fast.io import atomic_write
from d2fast.knn import float32_rows, search_database

_QUERY_BLOCK = 4096  # query rows re-ranked at a time


def _partition(state: dict) -> dict:
    """partition.npz (memory-mapped), cached in the state."""
    if "part" not in state:
        state["part"] = load_npz(f"{state['workdir']}/partition.npz", mmap=True)
    return state["part"]


def owned(state: dict) -> tuple[int, int]:
    """The node range ``lo:hi`` the shard owns."""
    bounds = _partition(state)["bounds"]
    return int(bounds[state["p"]]), int(bounds[state["p"] + 1])


def write_rows(state: dict, inbox: list):
    """Step: write the shard's rows and scores in node order."""
    lo, hi = owned(state)
    gid = np.array(_partition(state)["order"][lo:hi])
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


def _node_rows(state: dict, nodes: np.ndarray) -> np.ndarray:
    """float32 rows of the sorted node ids ``nodes``, read from the shards' row files."""
    if "row_files" not in state:
        state["row_files"] = [np.load(shard_path(state["workdir"], "rows", q, ".npy"),
                                      mmap_mode="r") for q in range(state["P"])]
    bounds = _partition(state)["bounds"]
    out = np.empty((nodes.size, state["emb"].width), dtype=np.float32)
    cuts = np.searchsorted(nodes, bounds)
    for q in range(state["P"]):
        a, b = cuts[q], cuts[q + 1]
        if a < b:
            out[a:b] = state["row_files"][q][nodes[a:b] - bounds[q]]
    return out


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
    order = np.asarray(_partition(state)["order"])
    X = np.empty((emb.n, emb.width), dtype=np.float32)
    for start in range(0, emb.n, BLOCK_ROWS):
        X[start:start + BLOCK_ROWS] = float32_rows(emb.read(start, min(emb.n, start + BLOCK_ROWS)),
                                                   cfg["metric"] == "cosine")
    ids, keys = search_database(X, order[lo:hi], None, cfg["k"], cosine=cfg["metric"] == "cosine",
                                method="exact", backend=cfg["backend"])
    node_of = np.empty(emb.n, dtype=np.int64)
    node_of[order] = np.arange(emb.n)
    return np.where(ids >= 0, node_of[np.maximum(ids, 0)], -1), keys


def _search_ivf(state: dict, lo: int, hi: int):
    """IVF kNN of nodes lo:hi (node ids): probed lists searched in float32, re-ranked."""
    import faiss

    cfg, part = state["cfg"], _partition(state)
    k, cosine = cfg["k"], cfg["metric"] == "cosine"
    centroids, list_offsets = np.asarray(part["centroids"]), np.asarray(part["list_offsets"])
    nprobe = min(cfg["nprobe"], centroids.shape[0])
    c = cfg["candidates"]
    Xq = np.load(shard_path(state["workdir"], "rows", state["p"], ".npy"))
    m = Xq.shape[0]
    quantizer = faiss.IndexFlatL2(centroids.shape[1])
    quantizer.add(centroids)
    probes = quantizer.search(Xq, nprobe)[1]  # (m, nprobe), nearest centroid first
    cand = np.full((m, nprobe * c), -1, dtype=np.int64)
    flat = probes.ravel()
    by_list = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[by_list], np.arange(centroids.shape[0] + 1))
    for j in np.flatnonzero(np.diff(starts)):
        a, b = int(list_offsets[j]), int(list_offsets[j + 1])
        if a == b:
            continue
        hits = by_list[starts[j]:starts[j + 1]]
        q, slot = hits // nprobe, hits % nprobe
        cj = min(c, b - a)
        I = faiss.knn(Xq[q], _node_rows(state, np.arange(a, b)), cj)[1]
        cand[q[:, None], slot[:, None] * c + np.arange(cj)] = np.where(I >= 0, I + a, -1)
    ids = np.empty((m, k), dtype=np.int64)
    keys = np.empty((m, k), dtype=np.float64)
    order = part["order"]
    kern = _backends.get(cfg["backend"])
    for start in range(0, m, _QUERY_BLOCK):
        blk = cand[start:start + _QUERY_BLOCK]
        bq = blk.shape[0]
        nodes, inv = np.unique(blk[blk >= 0], return_inverse=True)
        X = np.concatenate([Xq[start:start + bq], _node_rows(state, nodes)])
        local = np.full(blk.shape, -1, dtype=np.int64)
        local[blk >= 0] = bq + inv
        kk = kern.pair_keys(X, np.arange(bq, dtype=np.int64), local, cosine)
        self_ = blk == (lo + start + np.arange(bq))[:, None]
        kk[(blk < 0) | self_] = np.inf
        gid = np.where(blk >= 0, np.asarray(order)[np.maximum(blk, 0)], np.iinfo(np.int64).max)
        best = np.lexsort((gid, kk), axis=1)[:, :k]
        ids[start:start + bq] = np.take_along_axis(blk, best, 1)
        keys[start:start + bq] = np.take_along_axis(kk, best, 1)
    ids[~np.isfinite(keys)] = -1
    keys[~np.isfinite(keys)] = 0.0
    return ids, keys


def write_graph(state: dict, inbox: list):
    """Step: the shard's CSR from its kNN lists and the edges other shards sent it."""
    lo, hi = owned(state)
    order = _partition(state)["order"]
    src, dst, dist = state.pop("knn_edges")
    came = [state.pop("own_reverse")] + [msg for msg in inbox if msg is not None]
    r_row = np.concatenate([m[0] for m in came])
    r_nbr = np.concatenate([m[1] for m in came])
    r_dist = np.concatenate([m[2] for m in came])
    arrays = {"gid": np.array(order[lo:hi])}
    if state["cfg"]["graph"] == "union":
        arrays.update(_csr(lo, hi, np.concatenate([src, r_row]), np.concatenate([dst, r_nbr]),
                           np.concatenate([dist, r_dist]), order, ""))
    else:
        arrays.update(_csr(lo, hi, src, dst, dist, order, ""))
        arrays.update(_csr(lo, hi, r_row, r_nbr, r_dist, order, "in_"))
    save_npz(shard_path(state["workdir"], "graph", state["p"]), **arrays)
    nnz = arrays["indices"].size
    return state, (None, {"nnz": nnz})


def _csr(lo: int, hi: int, row: np.ndarray, nbr: np.ndarray, dist: np.ndarray, order,
         prefix: str) -> dict:
    """CSR rows lo:hi from edges (row, nbr, dist): sorted by the neighbour's global id,
    duplicates keep their smaller distance."""
    nbr_gid = np.asarray(order)[nbr] if nbr.size else np.empty(0, dtype=np.int64)
    sort = np.lexsort((dist, nbr_gid, row))
    row, nbr, nbr_gid, dist = row[sort], nbr[sort], nbr_gid[sort], dist[sort]
    first = np.ones(row.size, dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (nbr[1:] != nbr[:-1])
    row, nbr, nbr_gid, dist = row[first], nbr[first], nbr_gid[first], dist[first]
    indptr = np.zeros(hi - lo + 1, dtype=np.int64)
    np.cumsum(np.bincount(row - lo, minlength=hi - lo), out=indptr[1:])
    return {f"{prefix}indptr": indptr, f"{prefix}indices": nbr.astype(np.int64),
            f"{prefix}nbr_gid": nbr_gid.astype(np.int64),
            f"{prefix}distances": dist.astype(np.float32)}
