"""Stage 1: the IVF partition of the sharded rows, and the shards it defines.

The centroids are trained by :func:`d2fast.ivf_partition` on a sample read from the
shard files (on the driver). The rest runs on the workers, so that no process holds an
array over all n rows; worker p first works on the global rows ``cuts[p]:cuts[p + 1]``
(its *range*), then on the nodes of shard p:

1. ``assign``: the IVF list of every row of the range; per list, the count of the range's
   rows goes to the worker that counts that list (worker q counts the lists
   ``list_blocks(nlist, P)[q]:...[q + 1]``);
2. ``count``: per counted list, the rows of each range before it (an exclusive prefix
   sum over the ranges, sent back to the ranges) and the list's total (to the driver);
3. the driver gives each shard a contiguous run of whole lists, balanced by rows
   (:func:`plan`, from the totals only), and writes ``partition.npz``;
4. ``number``: the node id of every row of the range (list by list, by global row id
   within a list, see :mod:`d2fast.distributed.layout`); each (node, global id) pair
   goes to the shard that owns the node;
5. ``write_order``: each shard writes the global row id of each of its nodes.

Files in ``workdir`` (the mapping kept per shard, read through
:class:`~d2fast.distributed.layout.RangeFiles`):

- ``partition.npz``: ``centroids`` float32 (nlist, d), ``list_offsets`` int64
  (nlist + 1,): list j holds nodes ``list_offsets[j]:list_offsets[j + 1]``, ``bounds``
  int64 (P + 1,): shard p owns nodes ``bounds[p]:bounds[p + 1]``, ``cuts`` int64 (P + 1,):
  the ranges;
- ``assign/shard-<p>.npy`` int32: the list of each global row of range p;
- ``node_of/shard-<p>.npy`` int64: the node id of each global row of range p;
- ``order/shard-<p>.npy`` int64: the global row id of each node of shard p.
"""
from __future__ import annotations

import os

import numpy as np

from d2fast.distributed.layout import RangeFiles, load_npz, shard_path
from d2fast.distributed.shards import ShardFiles
from d2fast.io import atomic_write
from d2fast.knn import _TRAIN_PER_LIST
from d2fast.partition import Partition, assign_rows, ivf_partition

BLOCK_ROWS = 1 << 16  # rows read at a time


def train_centroids(emb: ShardFiles, nlist: int, metric: str, seed: int = 0) -> np.ndarray:
    """k-means centroids (float32, (nlist, d)) from a sample of ``40 nlist`` rows."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(emb.n, min(emb.n, _TRAIN_PER_LIST * nlist), replace=False))
    rows = emb.take(sample)
    check_rows(rows, emb, sample)
    return ivf_partition(rows, nlist, metric=metric, seed=seed).centroids


def nearest_to_sample(state: dict, inbox: list, *, start: int, stop: int, queries: np.ndarray,
                      c: int):
    """Step (``nlist='auto'``): the c nearest of the global rows ``start:stop`` to each
    sampled query (``queries``: float32 (s, d), unit rows for cosine) by float32 squared
    L2, ``(D, I)`` (s, c) with global row ids, to the driver
    (:func:`d2fast._nlist.nearest_rows`)."""
    from d2fast._nlist import nearest_rows
    from d2fast.knn import float32_rows

    emb, cosine = state["emb"], state["cfg"]["metric"] == "cosine"
    return state, (None, nearest_rows(queries, lambda a, b: float32_rows(emb.read(a, b), cosine),
                                      start, stop, c, state["cfg"]["backend"]))


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


def list_blocks(nlist: int, shards: int) -> np.ndarray:
    """int64 (P + 1,): worker q counts the lists ``blocks[q]:blocks[q + 1]`` (step ``count``)."""
    return np.linspace(0, nlist, shards + 1).astype(np.int64)


def _send(state: dict, messages: list) -> list:
    """``messages`` (one per shard) with this shard's own kept in ``state['own']``."""
    state["own"] = messages[state["p"]]
    return [None if q == state["p"] else m for q, m in enumerate(messages)]


def _received(state: dict, inbox: list) -> list:
    """The messages of every shard in shard order, this shard's own included."""
    return [state.pop("own") if q == state["p"] else m for q, m in enumerate(inbox)]


def assign(state: dict, inbox: list, *, start: int, stop: int, centroids: np.ndarray):
    """Step: the IVF list (int32) of the global rows ``start:stop`` (saved as
    ``assign/shard-<p>.npy``); the per-list row counts to the counting workers."""
    emb, cosine = state["emb"], state["cfg"]["metric"] == "cosine"
    out = np.empty(stop - start, dtype=np.int32)
    for lo in range(start, stop, BLOCK_ROWS):
        hi = min(stop, lo + BLOCK_ROWS)
        block = emb.read(lo, hi)
        check_rows(block, emb, np.arange(lo, hi))
        out[lo - start:hi - start] = assign_rows(block, centroids, cosine)
    with atomic_write(shard_path(state["workdir"], "assign", state["p"], ".npy")) as tmp:
        np.save(tmp, out)
    state.update(lists=out, range_start=start)
    counts = np.bincount(out, minlength=centroids.shape[0]).astype(np.int64)
    blocks = list_blocks(centroids.shape[0], state["P"])
    return state, (_send(state, [counts[blocks[q]:blocks[q + 1]] for q in range(state["P"])]),
                   None)


def count(state: dict, inbox: list):
    """Step: for the lists this worker counts, the rows of every earlier range (to each
    range) and the lists' totals (to the driver)."""
    counts = np.stack(_received(state, inbox))  # (P ranges, lists counted here)
    before = np.cumsum(counts, axis=0) - counts
    return state, (_send(state, list(before)), counts.sum(axis=0))


def plan(counts: np.ndarray, shards: int) -> dict:
    """Whole lists to shards, contiguous runs balanced by rows, from the lists' row counts.

    Returns ``bounds`` (P + 1,) and ``list_offsets`` (nlist + 1,), int64 (node ids).

    Raises
    ------
    ValueError
        When fewer lists than shards hold rows.
    """
    nlist, n = counts.size, int(counts.sum())
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
    return {"bounds": list_offsets[list_bounds], "list_offsets": list_offsets}


def number(state: dict, inbox: list):
    """Step: the node id of every row of the range (saved as ``node_of/shard-<p>.npy``);
    each (node, global id) pair is sent to the shard that owns the node."""
    part = load_npz(os.path.join(state["workdir"], "partition.npz"))
    lists, start = state.pop("lists"), state.pop("range_start")
    before = np.concatenate(_received(state, inbox))  # (nlist,): earlier ranges' rows
    by_list = np.argsort(lists, kind="stable")  # within a list: by global row id
    sorted_lists = lists[by_list]
    first = np.searchsorted(sorted_lists, sorted_lists, "left")
    node = np.empty(lists.size, dtype=np.int64)
    node[by_list] = part["list_offsets"][sorted_lists] + before[sorted_lists] + \
        np.arange(lists.size) - first
    with atomic_write(shard_path(state["workdir"], "node_of", state["p"], ".npy")) as tmp:
        np.save(tmp, node)
    owner = np.searchsorted(part["bounds"], node, "right") - 1
    gid = np.arange(start, start + lists.size, dtype=np.int64)
    messages = []
    for q in range(state["P"]):
        mine = owner == q
        messages.append((node[mine], gid[mine]) if mine.any() else None)
    return state, (_send(state, messages), None)


def write_order(state: dict, inbox: list):
    """Step: the global row id of each node of the shard (``order/shard-<p>.npy``)."""
    bounds = load_npz(os.path.join(state["workdir"], "partition.npz"))["bounds"]
    lo, hi = int(bounds[state["p"]]), int(bounds[state["p"] + 1])
    order = np.full(hi - lo, -1, dtype=np.int64)
    for nodes, gids in filter(None, _received(state, inbox)):
        order[nodes - lo] = gids
    if (order < 0).any():
        raise RuntimeError(f"shard {state['p']}: {int((order < 0).sum())} nodes got no row; "
                           "the workdir is damaged")
    with atomic_write(shard_path(state["workdir"], "order", state["p"], ".npy")) as tmp:
        np.save(tmp, order)
    return state, (None, None)


def mapping(workdir: str, name: str) -> RangeFiles:
    """``order`` (node -> global row id) or ``node_of`` (global row id -> node) over the
    per-shard files, read by ranges (``assign`` too: global row id -> list)."""
    part = load_npz(os.path.join(workdir, "partition.npz"))
    ranges = part["bounds"] if name == "order" else part["cuts"]
    return RangeFiles([shard_path(workdir, name, p, ".npy") for p in range(ranges.size - 1)],
                      ranges)


def load(workdir: str, metric: str = "euclidean") -> Partition:
    """The run's partition as a :class:`d2fast.Partition` (centroids and the list of every
    row; O(n) memory: for one-machine comparisons and inspection), e.g. for
    ``knn_graph(knn='ivf', knn_params={'partition': ...})``."""
    part = load_npz(os.path.join(workdir, "partition.npz"))
    return Partition(centroids=part["centroids"], assign=mapping(workdir, "assign")[:]
                     .astype(np.int64), metric=metric)
