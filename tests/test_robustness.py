"""Numerical robustness of forward/select on every backend (cpp, numba, numpy reference).

Extreme but finite inputs give the reference's exact result or a ValueError that says why;
never NaN-driven picks. Limits (d2fast/passing.py): forward raises ValueError when the passed
scores overflow float64; select raises ValueError when max|scores| * (n_keep + 1) exceeds
half the float64 range (below it no update can overflow: a pick moves a score by at most
max|scores|).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_greedy_replay, random_graph

import d2fast
from d2fast import Graph
from d2fast._backends import reference
from d2fast.passing import _SELECT_LIMIT, auto_gamma_r

BACKENDS = ("cpp", "numba", "numpy")
N = 120


def picks_of(graph: Graph, s: np.ndarray, n_keep: int, backend: str, **kw) -> np.ndarray:
    """select with every algorithm the backend has; all must agree. Returns the picks."""
    algorithms = ["heap"] + (["rounds"] if backend != "numpy" else [])
    runs = [d2fast.select(graph, s, n_keep, algorithm=a, backend=backend, **kw)
            for a in algorithms]
    for got in runs:
        assert got.dtype == np.int64 and got.shape == (n_keep,)
        assert np.unique(got).size == n_keep and (got >= 0).all() and (got < graph.n).all()
        np.testing.assert_array_equal(got, runs[0])
    return runs[0]


def expect_reference(graph: Graph, s: np.ndarray, backend: str, gamma_f: float = 1.0,
                     gamma_r: float = 0.1) -> None:
    """forward and select (both reverse modes, n_keep in {0, n/2, n}) equal the reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # weight underflow warning
        passed = d2fast.forward(graph, s, gamma_f=gamma_f, backend=backend)
    want = reference.forward(graph.indptr, graph.indices, graph.distances, s, gamma_f, False)
    np.testing.assert_array_equal(passed, want)
    assert np.isfinite(passed).all()
    for reverse in ("weighted", "absolute"):
        for n_keep in (0, graph.n // 2, graph.n):
            got = picks_of(graph, passed, n_keep, backend, gamma_r=gamma_r, reverse=reverse)
            ref = reference.select_heap(graph.indptr, graph.indices, graph.distances, passed,
                                        n_keep, gamma_r, reverse == "absolute")
            np.testing.assert_array_equal(got, ref)
            assert_greedy_replay(graph, passed, got, gamma_r, reverse == "absolute")


SCALES = {
    "huge_mixed_sign": lambda rng: rng.choice([-1.0, 1.0], N) * 1e300 * rng.random(N),
    "plus_minus_1e300": lambda rng: rng.choice([-1e300, 1e300], N),
    "huge_and_tiny": lambda rng: np.where(rng.random(N) < 0.5, 1e300, 1e-300) *
    rng.choice([-1.0, 1.0], N),
    "denormal": lambda rng: rng.random(N) * 5e-320,
    "all_equal_positive": lambda rng: np.full(N, 3.5),
    "all_equal_negative": lambda rng: np.full(N, -2.0),
    "all_zero": lambda rng: np.zeros(N),
    "few_distinct": lambda rng: rng.integers(-2, 3, N).astype(float),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(SCALES))
def test_extreme_scores_match_reference(backend, kind):
    rng = np.random.default_rng(sorted(SCALES).index(kind))
    for symmetric in (True, False):
        expect_reference(random_graph(rng, N, 5, symmetric), SCALES[kind](rng), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_zero_scores_pick_in_index_order(backend):
    graph = random_graph(np.random.default_rng(3), N, 5)
    passed = d2fast.forward(graph, np.zeros(N), backend=backend)
    np.testing.assert_array_equal(passed, 0.0)
    for n_keep in (0, 1, N // 3, N):  # every score stays 0: ties go to the lowest index
        np.testing.assert_array_equal(picks_of(graph, passed, n_keep, backend), np.arange(n_keep))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gamma_zero(backend):
    rng = np.random.default_rng(4)
    graph = random_graph(rng, N, 6)
    s = rng.normal(size=N)
    expect_reference(graph, s, backend, gamma_f=0.0, gamma_r=0.0)
    # weights exp(-0 * d) are exactly 1: forward sums the neighbours, weighted == absolute
    acc = np.array([s[graph.indices[graph.indptr[i]:graph.indptr[i + 1]]].sum()
                    for i in range(N)])
    passed = d2fast.forward(graph, s, gamma_f=0.0, backend=backend)
    np.testing.assert_allclose(passed, s + acc, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(picks_of(graph, passed, N, backend, gamma_r=0.0),
                                  picks_of(graph, passed, N, backend, reverse="absolute"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distance", [800.0, 3.0e38])
def test_weights_that_underflow_exp(backend, distance):
    """exp(-gamma * d) == 0: forward returns the scores, select is top-n_keep by score."""
    rng = np.random.default_rng(5)
    I = (np.arange(N)[:, None] + np.arange(1, 6)[None, :]) % N
    graph = Graph.from_knn(I, np.full(I.shape, distance), drop_self=False)
    s = rng.normal(size=N)
    s[::7] = s[0]  # ties
    with pytest.warns(UserWarning, match="forward weights underflow"):
        passed = d2fast.forward(graph, s, gamma_f=1.0, backend=backend)
    np.testing.assert_array_equal(passed, s)
    top = np.lexsort((np.arange(N), -s))  # by score, ties to the lower index
    np.testing.assert_array_equal(picks_of(graph, s, N, backend, gamma_r=1.0), top)
    # absolute updates do not decay: they still subtract the full score
    got = picks_of(graph, s, N, backend, reverse="absolute")
    ref = reference.select_heap(graph.indptr, graph.indices, graph.distances, s, N, 0.1, True)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_denormal_and_zero_distances(backend):
    rng = np.random.default_rng(6)
    I = rng.integers(0, N, size=(N, 4))
    I[I == np.arange(N)[:, None]] = -1
    D = rng.choice(np.array([0.0, 1e-45, 1e-40, 1e-38], dtype=np.float32), size=I.shape)
    graph = Graph.from_knn(I, D, drop_self=False)
    assert (graph.distances < 1.2e-38).all() and (graph.distances > 0).any()
    expect_reference(graph, rng.normal(size=N), backend, gamma_f=1e30, gamma_r=1e30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_nodes(backend):
    graph = Graph(np.zeros(N + 1, dtype=np.int64), [], [])
    s = np.random.default_rng(7).integers(0, 5, N).astype(float)
    np.testing.assert_array_equal(d2fast.forward(graph, s, backend=backend), s)
    np.testing.assert_array_equal(picks_of(graph, s, N, backend),
                                  np.lexsort((np.arange(N), -s)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sum", "product"])
def test_forward_overflow_is_a_value_error(backend, mode):
    graph = random_graph(np.random.default_rng(8), N, 5)
    s = np.full(N, 1e308 if mode == "sum" else 1e200)
    with pytest.raises(ValueError, match=r"scores too large: the forward pass overflowed"):
        d2fast.forward(graph, s, mode=mode, backend=backend)
    with pytest.raises(ValueError, match="scores too large"):
        d2fast.prune(np.random.default_rng(0).normal(size=(N, 3)), s, mode=mode,
                     backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_select_refuses_scores_that_could_overflow(backend):
    graph = random_graph(np.random.default_rng(9), N, 5)
    s = np.full(N, 1.7e308)
    for n_keep in (1, N):
        with pytest.raises(ValueError, match=r"scores too large: max \|scores\| = 1.7e\+308"):
            d2fast.select(graph, s, n_keep, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_select_at_the_limit_is_exact(backend):
    """The largest accepted scale, the worst growth (absolute updates, weight 1): exact."""
    rng = np.random.default_rng(10)
    graph = random_graph(rng, N, 8)
    s = rng.choice([-1.0, 1.0], N) * rng.random(N)
    s *= _SELECT_LIMIT / (N + 1) / np.abs(s).max()
    for reverse, gamma_r in (("absolute", 0.1), ("weighted", 0.0)):
        got = picks_of(graph, s, N, backend, gamma_r=gamma_r, reverse=reverse)
        ref = reference.select_heap(graph.indptr, graph.indices, graph.distances, s, N,
                                    gamma_r, reverse == "absolute")
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_keep", [0, 1, N - 1, N])
def test_prune_extreme_n_keep(backend, n_keep):
    rng = np.random.default_rng(11)
    emb, s = rng.normal(size=(N, 4)), rng.random(N)
    got = d2fast.prune(emb, s, k=4, n_keep=n_keep, backend=backend, hard_prune=0.0)
    assert got.dtype == np.int64 and got.shape == (n_keep,)
    assert np.unique(got).size == n_keep
    graph = d2fast.knn_graph(emb, 4)
    passed = reference.forward(graph.indptr, graph.indices, graph.distances, s, 1.0, False)
    gamma_r = auto_gamma_r(graph, n_keep)[0]  # prune's default, finite at n_keep 0 and N
    np.testing.assert_array_equal(got, reference.select_heap(
        graph.indptr, graph.indices, graph.distances, passed, n_keep, gamma_r, False))
