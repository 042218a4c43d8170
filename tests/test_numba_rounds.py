"""numba-specific checks of select_rounds; its agreement with the reference is tested,
for every backend, in test_passing.py."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_graph

import d2fast
from d2fast import Graph
from d2fast._backends import numba as kern


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
