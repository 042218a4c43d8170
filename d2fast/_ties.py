"""The order in which ``prune`` breaks ties between equal scores: a fixed hash of the row id.

Row order must not decide which of two equally scored rows is kept. Data sets often come
sorted (by class, as ImageFolder lists them, or by source), and some scores tie massively:
forgetting counts are 0 for 90 % of clean MNIST rows. With ties to the lower row id, D2
there kept the first classes only (stop 25: the 4000 class-sorted MNIST rows of
``benchmarks/quality_study.py --dataset mnist5k``, forgetting, 70 % pruned: four classes
of ten, 38 % test accuracy against 90 % for a random subset). Ties go instead to the lower
``tie_keys(id)``: splitmix64 of the id, a bijection of 64-bit integers, so a total order
that looks random, is the same on every run, machine and shard, and costs O(1) an id
(the distributed build needs no O(n) table).
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def tie_keys(ids: np.ndarray) -> np.ndarray:
    """uint64 array of ids' shape: splitmix64 of each id (int64 ids >= 0); distinct ids
    get distinct keys."""
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def tie_order(ids: np.ndarray) -> np.ndarray:
    """int64 positions that sort ``ids`` by their tie keys."""
    return np.argsort(tie_keys(ids), kind="stable").astype(np.int64)
