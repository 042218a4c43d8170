"""The rows left after hard pruning, read as one sharded input of their own.

``hard_prune`` drops the hardest rows before the graph is built (as :func:`d2fast.prune`
does): the driver reads the scores, resolves the fraction
(:func:`d2fast.budgets.resolve_hard_prune`) and writes the kept rows' global ids
(:func:`d2fast.budgets.hard_prune_pool`, sorted) to ``workdir/inputs/pool.npy``. Every
stage then runs on :class:`Subset` views of the embedding and score files, whose row i
is the pool's i-th row: the stages' "global row ids" are pool positions, increasing with
the global row ids, ties break by the tie keys of the global row ids
(:func:`tie_keys_of`), and the driver maps the picks back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from d2fast._ties import tie_keys
from d2fast.distributed.partition import check_rows
from d2fast.distributed.shards import ShardFiles
from d2fast.io import atomic_write


@dataclass(frozen=True)
class Subset:
    """Rows ``pool`` of ``files`` (``pool``: sorted int64 global row ids in the ``.npy``
    file ``path``, memory-mapped when read), renumbered ``0:n``; the reading interface of
    :class:`~d2fast.distributed.shards.ShardFiles` (``n``, ``width``, ``dtype``, ``name``,
    ``read``, ``take``). Rows are checked for NaN/inf as they are read, errors naming the
    global row and its file."""

    files: ShardFiles
    path: str
    n: int

    @property
    def width(self) -> int | None:
        return self.files.width

    @property
    def dtype(self) -> np.dtype:
        return self.files.dtype

    @property
    def name(self) -> str:
        return self.files.name

    def _rows(self, gids: np.ndarray) -> np.ndarray:
        block = self.files.take(gids)
        check_rows(block, self.files, gids)
        return block

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the subset."""
        return self._rows(np.array(np.load(self.path, mmap_mode="r")[start:stop]))

    def take(self, ids: np.ndarray) -> np.ndarray:
        """Rows at the sorted subset ids ``ids``."""
        return self._rows(np.array(np.load(self.path, mmap_mode="r")[ids]))


def tie_keys_of(files, ids: np.ndarray) -> np.ndarray:
    """uint64: the tie keys (:mod:`d2fast._ties`) of the stages' row ids ``ids``, taken of
    the input's row ids (pool positions mapped back when ``files`` is a :class:`Subset`),
    so ties break as :func:`d2fast.prune` breaks them."""
    ids = np.asarray(ids, dtype=np.int64)
    if isinstance(files, Subset):
        ids = np.asarray(np.load(files.path, mmap_mode="r")[ids], dtype=np.int64)
    return tie_keys(ids)


def write_pool(workdir: str, pool: np.ndarray) -> str:
    """``workdir/inputs/pool.npy`` holding ``pool`` (written atomically); its path."""
    folder = os.path.join(workdir, "inputs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pool.npy")
    with atomic_write(path) as tmp:
        np.save(tmp, pool)
    return path
