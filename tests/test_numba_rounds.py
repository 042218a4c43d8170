"""The numba backend's parallel exact selection in rounds (SPEC 4): the picks of the heap."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import assert_greedy_replay, random_graph, random_scores

import d2fast
from d2fast import Graph
from d2fast._backends import numba as kern
from d2fast._backends import reference


def _both(graph: Graph, scores: np.ndarray, n_keep: int, absolute: bool):
    """(numba rounds, NumPy reference) picks."""
    args = (graph.indptr, graph.indices, graph.distances, scores, n_keep, 0.1, absolute)
    return kern.select_rounds(*args), reference.select_heap(*args)


@pytest.mark.parametrize("kind", ["uniform", "normal", "negative"])
@pytest.mark.parametrize("sym", [True, False], ids=["union", "directed"])
@pytest.mark.parametrize("n,c", [(7, 1), (50, 3), (300, 5), (2000, 10)])
def test_rounds_matches_reference(n, c, sym, kind):
    """Generic float scores, so the summation order within a round cannot flip a pick."""
    rng = np.random.default_rng(zlib.crc32(repr(("numba rounds", n, c, sym, kind)).encode()))
    graph = random_graph(rng, n, c, sym)
    passed = d2fast.forward(graph, random_scores(rng, n, kind))
    for absolute in (False, True):
        for n_keep in sorted({1, n // 3, n // 2, n - 1, n}):
            got, want = _both(graph, passed, n_keep, absolute)
            assert got.dtype == np.int64 and got.shape == (n_keep,)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(10))
def test_rounds_exact_ties(seed):
    """Integer scores and zero distances: exact arithmetic, so the picks agree bit for bit."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 500))
    I = rng.integers(-1, n, size=(n, 4))
    for graph_kind in ("union", "directed"):
        graph = Graph.from_knn(I, np.zeros(I.shape), graph=graph_kind)
        passed = rng.integers(-2, 6, size=n).astype(float)
        for absolute in (False, True):
            for n_keep in (n // 4, n):
                got, want = _both(graph, passed, n_keep, absolute)
                np.testing.assert_array_equal(got, want)


def test_rounds_does_not_modify_scores():
    rng = np.random.default_rng(1)
    graph = random_graph(rng, 100, 4)
    passed = rng.normal(size=100)
    kept = passed.copy()
    kern.select_rounds(graph.indptr, graph.indices, graph.distances, passed, 100, 0.1, False)
    np.testing.assert_array_equal(passed, kept)


def test_rounds_nan_raises():
    """inf - inf on the first round's updates: a FloatingPointError, like select_heap."""
    graph = Graph.from_knn(np.array([[1], [2], [1]]), np.zeros((3, 1)))  # path 0 - 1 - 2
    passed = np.array([np.inf, np.inf, 1.0])
    with pytest.raises(FloatingPointError, match="NaN"):
        kern.select_rounds(graph.indptr, graph.indices, graph.distances, passed, 3, 0.1, True)


@pytest.mark.parametrize("sym", [True, False], ids=["union", "directed"])
def test_select_rounds_numba(sym):
    """The public entry point dispatches algorithm='rounds' to the numba kernel."""
    rng = np.random.default_rng(5)
    graph = random_graph(rng, 600, 5, sym)
    passed = d2fast.forward(graph, rng.random(600) - 0.2)
    for reverse in ("weighted", "absolute"):
        got = d2fast.select(graph, passed, 600, reverse=reverse, algorithm="rounds",
                            backend="numba")
        want = d2fast.select(graph, passed, 600, reverse=reverse, algorithm="heap",
                             backend="numba")
        np.testing.assert_array_equal(got, want)
    assert d2fast.select(graph, passed, 0, algorithm="rounds", backend="numba").shape == (0,)


def test_rounds_on_knn_graph_with_duplicates():
    """Duplicates give zero distances and near-ties: a valid greedy up to float noise."""
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(40, 3))[rng.integers(0, 40, size=800)]
    graph = d2fast.knn_graph(emb, 5, graph="directed")
    passed = d2fast.forward(graph, rng.random(800) - 0.2)
    picks = d2fast.select(graph, passed, 800, algorithm="rounds", backend="numba")
    assert_greedy_replay(graph, passed, picks, 0.1, False)
