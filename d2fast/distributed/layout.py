"""Where each stage of the distributed build keeps its files in ``workdir``, and the format
of a shard's graph: the contract between the graph stage and the message-passing stages.

Node ids. Rows are relabelled so that each shard's rows are contiguous: node ids run over
shard 0's rows, then shard 1's, ...; within a shard by (IVF list, global row id). Shard p
owns the nodes ``bounds[p] <= i < bounds[p + 1]``. The global row id (position in the
concatenation of the input shard files, in sorted path order) of every node is kept: ties
in the kNN search and in the selection break on it, so results equal one machine's. The
mapping is kept per shard (``order/``, ``node_of/``: see
:mod:`d2fast.distributed.partition`) and read through :class:`RangeFiles`, so no process
holds it whole.

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

from d2fast.distributed.shards import npy_layout, npy_rows, npy_take
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


def npz_layout(path: str) -> dict:
    """Each member of an npz written by :func:`save_npz`: name -> its
    :func:`~d2fast.distributed.shards.npy_layout` in the file, so that
    :func:`~d2fast.distributed.shards.npy_rows` reads it by ranges (reads no data)."""
    return {name: (getattr(arr, "offset", 0), arr.dtype, arr.shape, True)
            for name, arr in _read_npz(path, True).items()}


class RangeFiles:
    """One array stored along its first axis as consecutive ranges, one ``.npy`` file a
    range (file i holds items ``ranges[i]:ranges[i + 1]``), read by slices or by index
    arrays: only the items asked for are read, and no file stays mapped
    (:func:`~d2fast.distributed.shards.npy_rows`, :func:`~d2fast.distributed.shards.npy_take`),
    so what was read leaves this process's resident memory with the result.

    Parameters
    ----------
    paths : list of str
        The files, one a range.
    ranges : array-like of int, shape (files + 1,)
        Non-decreasing item offsets of the files, from 0.
    """

    def __init__(self, paths: list, ranges) -> None:
        self.paths, self.ranges = list(paths), np.asarray(ranges, dtype=np.int64)
        self.layouts = [npy_layout(p) for p in self.paths]
        self.dtype = self.layouts[0][1]
        self.shape = (int(self.ranges[-1]),) + tuple(self.layouts[0][2][1:])
        self.size = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """All items, one read a file: what numpy reads when given a RangeFiles (without
        it numpy would read item by item, a file opened for each)."""
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key) -> np.ndarray:
        """Items ``key`` (a slice of step 1, or an int array of any order), a new array."""
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("RangeFiles slices take step 1")
            stop = max(start, stop)
            first = min(int(np.searchsorted(self.ranges, start, "right")) - 1,
                        len(self.paths) - 1)
            last = max(int(np.searchsorted(self.ranges, stop, "left")), first + 1)
            parts = [npy_rows(self.paths[i], max(start, self.ranges[i]) - self.ranges[i],
                              min(stop, self.ranges[i + 1]) - self.ranges[i], self.layouts[i])
                     for i in range(first, last)]
            return np.concatenate(parts) if len(parts) > 1 else parts[0]
        ids = np.asarray(key, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"RangeFiles index out of range 0:{len(self)}")
        out = np.empty(ids.shape + self.shape[1:], dtype=self.dtype)
        flat = ids.ravel()
        which = np.searchsorted(self.ranges, flat, "right") - 1
        by_file = np.argsort(which, kind="stable")
        cuts = np.searchsorted(which[by_file], np.arange(len(self.paths) + 1))
        view = out.reshape((flat.size,) + self.shape[1:])
        for i in np.flatnonzero(np.diff(cuts)):
            at = by_file[cuts[i]:cuts[i + 1]]
            view[at] = npy_take(self.paths[i], flat[at] - self.ranges[i], self.layouts[i])
        return out
