"""Seeded data and shared checks for the d2fast tests."""
from __future__ import annotations

import numpy as np
import pytest

from d2fast import Graph
from d2fast._backends import reference

FAST_BACKENDS = ("cpp", "numba")  # both must be installed for the test suite (extra "test")


@pytest.fixture(params=FAST_BACKENDS)
def backend(request) -> str:
    """Each compiled backend in turn; a missing one fails (it is part of the product)."""
    return request.param


def random_knn(rng: np.random.Generator, n: int, c: int, missing: float = 0.1):
    """Random kNN lists (n, c) with some -1 (missing) and self entries, and distances."""
    I = rng.integers(0, n, size=(n, c))
    I[rng.random((n, c)) < missing] = -1
    D = (rng.random((n, c)) * rng.choice([0.1, 1.0, 5.0])).astype(np.float32)
    return I, D


def random_graph(rng: np.random.Generator, n: int, c: int, symmetric: bool = True) -> Graph:
    """A reference-built CSR graph on random kNN lists."""
    I, D = random_knn(rng, n, c)
    return Graph(*reference.build_csr(I, D, symmetric))


def random_scores(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Scores of a given distribution: uniform, normal, negative or mixed-sign."""
    if kind == "uniform":
        return rng.random(n)
    if kind == "normal":
        return rng.normal(size=n)
    if kind == "negative":
        return -rng.random(n) - 0.1
    raise ValueError(kind)


def assert_greedy_replay(graph: Graph, passed: np.ndarray, picks: np.ndarray,
                         gamma_r: float, absolute: bool, keys: np.ndarray | None = None) -> None:
    """Replay ``picks`` with the reference update rule; each pick must be the current maximum.

    Float noise between backends is tolerated (1e-9 of the score scale); where the
    replayed maximum is an exact tie, the pick must be the lowest tied index (with
    ``keys``: the tied node of the lowest key, as ``prune`` breaks ties).
    """
    s = passed.astype(np.float64).copy()
    selected = np.zeros(s.size, dtype=bool)
    tol = 1e-9 * max(1.0, float(np.abs(s).max()))
    assert len(set(picks.tolist())) == picks.size, "picks repeat a node"
    for t, v in enumerate(picks):
        assert not selected[v]
        free = np.flatnonzero(~selected)
        best = s[free].max()
        assert s[v] >= best - tol, f"pick {t} (node {v}, {s[v]}) is not the maximum {best}"
        if s[v] == best:
            tied = free[s[free] == best]
            want = tied[0] if keys is None else tied[np.argmin(keys[tied])]
            assert v == want, f"pick {t}: tie not broken to the lowest index (or key)"
        selected[v] = True
        lo, hi = graph.indptr[v], graph.indptr[v + 1]
        nbr, d = graph.indices[lo:hi], graph.distances[lo:hi].astype(np.float64)
        free_nbr = ~selected[nbr]
        delta = s[v] if absolute else reference.libm_exp(-gamma_r * d[free_nbr]) * s[v]
        s[nbr[free_nbr]] -= delta


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the test session (a ``ray.cluster_utils.Cluster`` head with 2
    CPUs, so a test can add a second node); skipped only where Ray is not installed."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'd2fast[ray]')")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def typical_by_hand(X: np.ndarray, k: int) -> np.ndarray:
    """bool (n,): rows whose mean euclidean distance to their neighbours in the union kNN
    graph (k nearest others, plus the rows that count them among theirs) is at or below
    the median, from the dense distance matrix (small n only)."""
    d = np.sqrt(((X[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    near = np.zeros(d.shape, dtype=bool)
    near[np.arange(len(X))[:, None], np.argsort(d, axis=1, kind="stable")[:, :k]] = True
    near |= near.T
    far = np.where(near, d, 0.0).sum(1) / near.sum(1)
    return far <= np.median(far)
