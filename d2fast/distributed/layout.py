"""Where each stage of the distributed build keeps its files in ``workdir``, and the format
of a shard's graph: the contract between the graph stage and the message-passing stages.

Node ids. Rows are relabelled so that each shard's rows are contiguous: node ids run over
shard 0's rows, then shard 1's, ...; within a shard by (IVF list, global row id). Shard p
owns the nodes ``bounds[p] <= i < bounds[p + 1]``. The global row id (position in the
concatenation of the input shard files, in sorted path order) of every node is kept: ties
in the kNN search and in the selection break on it, so results equal one machine's.

Shard graph file ``graph/shard-<p>.npz`` (uncompressed, written atomically):

- ``gid`` int64 (m,): global row id of each node the shard owns, in node order;
- ``indptr`` int64 (m + 1,), ``indices`` int64 (nnz,): out-neighbour NODE ids (the union
  graph's symmetric edges, or kNN(i) for a directed graph), no self loops, no duplicates;
- ``nbr_gid`` int64 (nnz,): their global row ids; each row is sorted by ``nbr_gid`` (the
  order of a single-machine CSR row, so forward sums in the same order);
- ``distances`` float32 (nnz,): as ``Graph.distances`` (L2 not squared, squared L2, or
  1 - cosine);
- directed graphs only: ``in_indptr``, ``in_indices``, ``in_nbr_gid``, ``in_distances``,
  the in-edges (the j with i in kNN(j)) in the same form. A union graph's in-edges are its
  out-edges.
"""
from __future__ import annotations

import os

import numpy as np

from d2fast.graph import _read_npz
from d2fast.io import atomic_write

GRAPH_OUT = ("indptr", "indices", "nbr_gid", "distances")
GRAPH_IN = ("in_indptr", "in_indices", "in_nbr_gid", "in_distances")


def shard_path(workdir: str, stage: str, p: int, ext: str = ".npz") -> str:
    """``<workdir>/<stage>/shard-<p:05d><ext>``, its folder created."""
    folder = os.path.join(workdir, stage)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"shard-{p:05d}{ext}")


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """Uncompressed npz written atomically (a reader never sees a partial file)."""
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path: str, mmap: bool = False) -> dict:
    """All members of an npz written by :func:`save_npz` (memory-mapped when ``mmap``)."""
    return _read_npz(path, mmap)
