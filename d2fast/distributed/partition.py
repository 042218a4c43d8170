"""Stage 1: the IVF partition of the sharded rows, and the shards it defines.

The centroids are trained by :func:`d2fast.ivf_partition` on a sample read from the
shard files; every shard worker assigns a range of rows to lists (step ``assign``); the
driver gives each shard a contiguous run of whole lists, balanced by rows, and numbers
the nodes shard by shard (see :mod:`d2fast.distributed.layout`). The result is
``partition.npz`` in ``workdir``:

- ``centroids`` float32 (nlist, d); ``assign`` int64 (n,): the list of each global row
  (with the centroids, a :class:`d2fast.Partition`);
- ``order`` int64 (n,): the global row id of each node; ``node_of`` int64 (n,): its inverse;
- ``bounds`` int64 (P + 1,): shard p owns nodes ``bounds[p]:bounds[p + 1]``;
- ``list_offsets`` int64 (nlist + 1,): list j holds nodes ``list_offsets[j]:list_offsets[j + 1]``.
"""
from __future__ import annotations

import numpy as np

from d2fast.distributed.shards import ShardFiles
from d2fast.knn import _TRAIN_PER_LIST
from d2fast.partition import assign_rows, ivf_partition

BLOCK_ROWS = 1 << 16  # rows read at a time


def train_centroids(emb: ShardFiles, nlist: int, metric: str, seed: int = 0) -> np.ndarray:
    """k-means centroids (float32, (nlist, d)) from a sample of ``40 nlist`` rows."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(emb.n, min(emb.n, _TRAIN_PER_LIST * nlist), replace=False))
    rows = emb.take(sample)
    check_rows(rows, emb, sample)
    return ivf_partition(rows, nlist, metric=metric, seed=seed).centroids


def check_rows(block: np.ndarray, files: ShardFiles, ids: np.ndarray) -> None:
    """Finite rows (and scores): a ValueError names the first bad row and its file."""
    with np.errstate(over="ignore", invalid="ignore"):
        ok = np.isfinite(block) if block.ndim == 1 else np.isfinite(
            np.einsum("ij,ij->i", block, block, dtype=np.float64, casting="unsafe"))
    if not ok.all():
        gid = int(ids[int(np.flatnonzero(~ok)[0])])
        f = int(np.searchsorted(files.offsets, gid, "right")) - 1
        raise ValueError(f"{files.name} row {gid} ({files.paths[f]}, row {gid - files.offsets[f]})"
                         " contains NaN or inf (or overflows float64 in its norm)")


def assign(state: dict, inbox: list, *, start: int, stop: int, centroids: np.ndarray):
    """Step: the IVF list (int32) of the global rows ``start:stop``, for the driver."""
    emb, cosine = state["emb"], state["cfg"]["metric"] == "cosine"
    out = np.empty(stop - start, dtype=np.int32)
    for lo in range(start, stop, BLOCK_ROWS):
        hi = min(stop, lo + BLOCK_ROWS)
        block = emb.read(lo, hi)
        check_rows(block, emb, np.arange(lo, hi))
        out[lo - start:hi - start] = assign_rows(block, centroids, cosine)
    return state, (None, out)


def plan(assigned: np.ndarray, nlist: int, shards: int) -> dict:
    """Whole lists to shards, contiguous runs balanced by rows; the node numbering.

    Raises
    ------
    ValueError
        When fewer lists than shards hold rows.
    """
    n = assigned.size
    counts = np.bincount(assigned, minlength=nlist).astype(np.int64)
    full = np.flatnonzero(counts)
    if full.size < shards:
        raise ValueError(f"shards={shards}, but only {full.size} IVF lists hold rows "
                         f"(nlist={nlist}); use fewer shards or more lists (knn_params nlist)")
    cum = np.cumsum(counts[full])
    first = [0]  # index into `full` of each shard's first non-empty list
    for p in range(1, shards):
        j = int(np.searchsorted(cum, p * n / shards, "left")) + 1
        first.append(min(max(j, first[-1] + 1), full.size - (shards - p)))
    list_bounds = np.array([0] + [int(full[j]) for j in first[1:]] + [nlist], dtype=np.int64)
    list_offsets = np.zeros(nlist + 1, dtype=np.int64)
    np.cumsum(counts, out=list_offsets[1:])
    order = np.argsort(assigned, kind="stable").astype(np.int64)
    node_of = np.empty(n, dtype=np.int64)
    node_of[order] = np.arange(n)
    return {"order": order, "node_of": node_of, "assign": assigned.astype(np.int64),
            "bounds": list_offsets[list_bounds], "list_offsets": list_offsets}
