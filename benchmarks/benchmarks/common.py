"""Seeded data and helpers shared by the benchmarks.

Every maker is cached per process: this asv runner re-runs ``setup`` before each timed
sample, so ``setup`` must be cheap after its first call. Cached arrays are read-only
(``Graph`` arrays are, and the makers freeze theirs) so no benchmark can alter another's
input.

``D2FAST_BENCH_QUICK=1`` in the environment reduces the sizes (see :func:`resolve`).
Thread counts are never set here: OpenMP, faiss and numba follow ``OMP_NUM_THREADS`` /
``NUMBA_NUM_THREADS`` as given.
"""
from __future__ import annotations

import functools
import os
import time

import numpy as np

import d2fast

SEED = 0
K = 5  # neighbours per node, as in the paper's experiments
KEEP = 0.3  # fraction kept by select
RATE = 0.7  # fraction removed by prune (keeps KEEP)
BACKENDS = ["cpp", "numba"]  # the fast backends; "numpy" is the reference
QUICK = os.environ.get("D2FAST_BENCH_QUICK", "") not in ("", "0")


def resolve(reduced, full):
    """``reduced`` when ``D2FAST_BENCH_QUICK`` is set (CI), else ``full``."""
    return reduced if QUICK else full


def sizes() -> list[int]:
    """Node counts of the scaling benchmarks: 1e4, 1e5, 1e6 (quick: 1e4 only)."""
    return resolve(reduced=[10_000], full=[10_000, 100_000, 1_000_000])


def n_keep(n: int) -> int:
    """Picks for ``n`` nodes at the benchmark keep fraction (30 %)."""
    return int(KEEP * n)


class Benchmark:
    """Base of every benchmark class (numpy's habit); holds the defaults."""

    timeout = 120.0


class Slow(Benchmark):
    """A call of seconds or more: one call per sample, no warm-up, one process."""

    number = 1
    repeat = (1, 3, 20.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 300.0


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=None)
def embeddings(n: int, d: int = 64, n_clusters: int = 100, seed: int = SEED) -> np.ndarray:
    """Clustered Gaussian embeddings, float32 of shape (n, d), C-contiguous.

    Unit-normal cluster centres, within-cluster noise of standard deviation 0.25 per
    coordinate, so kNN distances are O(1) and ``exp(-gamma * d)`` does not underflow.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d), dtype=np.float32)
    emb = centres[rng.integers(0, n_clusters, size=n)]
    emb += np.float32(0.25) * rng.standard_normal((n, d), dtype=np.float32)
    return _frozen(emb)


@functools.lru_cache(maxsize=None)
def scores(n: int, seed: int = SEED) -> np.ndarray:
    """Random difficulty scores, float64 of shape (n,), uniform in [0, 1)."""
    return _frozen(np.random.default_rng(seed + 1).random(n))


@functools.lru_cache(maxsize=None)
def random_knn(n: int, k: int = K, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """kNN-like lists with random neighbour ids, no self matches.

    Returns ``I`` int64 of shape (n, k) with ``I[i, t] != i`` (ids may repeat in a row,
    as duplicates the CSR build must merge) and ``D`` float32 of shape (n, k), uniform
    in [0, 2). Stands in for a faiss search where an exact one is too slow to set up.
    """
    rng = np.random.default_rng(seed + 2)
    I = np.arange(n, dtype=np.int64)[:, None] + rng.integers(1, n, size=(n, k))
    I %= n
    D = 2.0 * rng.random((n, k), dtype=np.float32)
    return _frozen(I), _frozen(D)


@functools.lru_cache(maxsize=None)
def random_self_knn(n: int, k: int = K, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """:func:`random_knn` as a search of the data against itself returns it: ``I`` int64
    and ``D`` float32 of shape (n, k + 1), column 0 the self match at distance 0."""
    I, D = random_knn(n, k, seed)
    I = np.hstack([np.arange(n, dtype=np.int64)[:, None], I])
    D = np.hstack([np.zeros((n, 1), dtype=np.float32), D])
    return _frozen(I), _frozen(D)


@functools.lru_cache(maxsize=None)
def random_graph(n: int, k: int = K, seed: int = SEED) -> d2fast.Graph:
    """The union ``Graph.from_knn`` of :func:`random_knn` (about 2k edges per node)."""
    I, D = random_knn(n, k, seed)
    return d2fast.Graph.from_knn(I, D, graph="union", drop_self=False)


@functools.lru_cache(maxsize=None)
def passed_scores(n: int, k: int = K, seed: int = SEED) -> np.ndarray:
    """:func:`scores` after the forward pass on :func:`random_graph` (select's input)."""
    return _frozen(d2fast.forward(random_graph(n, k, seed), scores(n, seed)))


def require_backend(backend: str = "auto") -> None:
    """Skip the combination (``NotImplementedError``) when ``backend`` is not built here,
    else load (numba: compile) its kernels once, so that no timing includes the loading
    and every ``peakmem_reference`` baseline holds the loaded modules."""
    if backend != "auto" and backend not in d2fast.backends():
        raise NotImplementedError(f"backend {backend!r} unavailable: "
                                  f"{d2fast.backends_missing().get(backend, '')}")
    _warm_up(backend)


@functools.lru_cache(maxsize=None)
def _warm_up(backend: str) -> None:
    I, D = random_knn(64, K)
    graph = d2fast.Graph.from_knn(I, D, drop_self=False, backend=backend)
    passed = d2fast.forward(graph, scores(64), backend=backend)
    d2fast.select(graph, passed, 16, backend=backend)


def best_time(func, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls of ``func()``, in seconds (time.perf_counter)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best
