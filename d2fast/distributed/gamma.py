"""``gamma_r='auto'`` across shards: the edge sample of :func:`d2fast.passing.auto_gamma_r`.

The rule reads the distances of the edges at :func:`d2fast.passing.gamma_sample` ``(nnz)``,
positions in the CSR order of the one-machine graph (rows by global row id, each row's
edges by the neighbour's global row id: the order of a row in ``graph/shard-<p>.npz``).
Worker p takes the global rows of its range ``cuts[p]:cuts[p + 1]`` (consecutive ids, so
the ranges cut the one-machine CSR into consecutive pieces) and reads their degrees and
sampled distances from the graph files of the shards that own them. Steps
(``step(state, inbox, **args) -> (state, (to_shards, to_driver))``; nothing is sent
between shards):

- ``gamma_degrees``: the degree of every row of the range (kept) and their sum (to the
  driver, which turns the P sums into each range's first edge position);
- ``gamma_edges``: the distances of the sampled edges of the range, in position order (to
  the driver: concatenated over the ranges, the one-machine sample, at most 2^20 float32).

Each worker holds O(n / P) (its range's node ids and degrees) and the sample positions
(at most 8 MiB).
"""
from __future__ import annotations

import numpy as np

from d2fast.distributed.graph import _partition
from d2fast.distributed.layout import npz_layout, shard_path
from d2fast.distributed.shards import npy_take
from d2fast.passing import gamma_sample


def _owners(state: dict, nodes: np.ndarray):
    """For each shard q owning some of ``nodes``: (a reader of q's graph file members at
    given positions, ``read(name, positions)``, no mapping kept; the mask of the nodes q
    owns; their local ids in q)."""
    bounds = _partition(state)["bounds"]
    owner = np.searchsorted(bounds, nodes, "right") - 1
    for q in np.unique(owner):
        at = owner == q
        path = shard_path(state["workdir"], "graph", int(q))
        members = npz_layout(path)
        yield ((lambda name, pos, path=path, members=members:
                npy_take(path, pos, members[name])), at, nodes[at] - bounds[q])


def gamma_degrees(state: dict, inbox: list):
    """Step: the out-degree of each global row of the shard's range; their sum."""
    nodes = np.load(shard_path(state["workdir"], "node_of", state["p"], ".npy"))
    deg = np.zeros(nodes.size, dtype=np.int64)
    for read, at, local in _owners(state, nodes):
        deg[at] = read("indptr", local + 1) - read("indptr", local)
    state["gamma_rows"] = (nodes, deg)
    return state, (None, int(deg.sum()))


def gamma_edges(state: dict, inbox: list, *, base: int, nnz: int):
    """Step: the distances (float32) of the sampled edges of the range, in position
    order; the range's first edge is at CSR position ``base`` of a graph of ``nnz``."""
    nodes, deg = state.pop("gamma_rows")
    start = base + np.cumsum(deg) - deg  # the CSR position of each row's first edge
    pos = gamma_sample(nnz)
    pos = pos[np.searchsorted(pos, base):np.searchsorted(pos, base + int(deg.sum()))]
    row = np.searchsorted(start, pos, "right") - 1  # a row of degree 0 shares its start
    offset = pos - start[row]
    out = np.empty(pos.size, dtype=np.float32)
    for read, at, local in _owners(state, nodes[row]):
        out[at] = read("distances", read("indptr", local) + offset[at])
    return state, (None, out)
