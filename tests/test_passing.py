"""forward and select: every backend against the NumPy reference (SPEC 3-4)."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import d2fast
from d2fast import Graph
from d2fast._backends import reference

from conftest import assert_greedy_replay, random_graph, random_scores

CASES = [(n, c, sym, kind)
         for n in (2, 3, 7, 50, 333, 2000)
         for c in (1, 3, 10)
         for sym in (True, False)
         for kind in ("uniform", "normal", "negative")]


@pytest.mark.parametrize("n,c,sym,kind", CASES)
def test_backends_match_reference(backend, n, c, sym, kind):
    rng = np.random.default_rng(zlib.crc32(repr((n, c, sym, kind)).encode()))
    graph = random_graph(rng, n, c, sym)
    scores = random_scores(rng, n, kind)
    for mode in ("sum", "product"):
        ref = d2fast.forward(graph, scores, mode=mode, backend="numpy")
        got = d2fast.forward(graph, scores, mode=mode, backend=backend)
        np.testing.assert_array_equal(got, ref)  # same exp, same order: bit for bit
        for reverse in ("weighted", "absolute"):
            for n_keep in {0, 1, n // 3, n}:
                want = d2fast.select(graph, ref, n_keep, reverse=reverse, backend="numpy")
                picks = d2fast.select(graph, ref, n_keep, reverse=reverse, backend=backend)
                assert picks.dtype == np.int64 and picks.shape == (n_keep,)
                np.testing.assert_array_equal(picks, want)


@pytest.mark.parametrize("seed", range(8))
def test_exact_ties_go_to_lowest_index(backend, seed):
    """Zero distances and integer scores make all arithmetic exact: outputs must be identical."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    I = rng.integers(-1, n, size=(n, 4))
    graph = Graph.from_knn(I, np.zeros(I.shape), drop_self=False) if not \
        (I == np.arange(n)[:, None]).any() else Graph.from_knn(I, np.zeros(I.shape))
    scores = rng.integers(-3, 4, size=n).astype(float)
    for mode in ("sum", "product"):
        passed = d2fast.forward(graph, scores, mode=mode, backend="numpy")
        np.testing.assert_array_equal(d2fast.forward(graph, scores, mode=mode, backend=backend),
                                      passed)
        for reverse in ("weighted", "absolute"):
            want = d2fast.select(graph, passed, n, reverse=reverse, backend="numpy")
            got = d2fast.select(graph, passed, n, reverse=reverse, backend=backend)
            np.testing.assert_array_equal(got, want)
            assert_greedy_replay(graph, passed, got, 0.1, reverse == "absolute")


@pytest.mark.parametrize("seed", range(6))
def test_tie_heavy_replay(backend, seed):
    """Equal scores and duplicate embeddings: every pick is the current maximum."""
    rng = np.random.default_rng(100 + seed)
    base = rng.normal(size=(30, 4))
    emb = base[rng.integers(0, 30, size=300)]  # ~10 copies of each point
    scores = np.repeat(rng.random(3), 100) if seed % 2 else np.ones(300)
    graph = d2fast.knn_graph(emb, k=4, backend=backend)
    passed = d2fast.forward(graph, scores, backend=backend)
    for reverse in ("weighted", "absolute"):
        picks = d2fast.select(graph, passed, 200, reverse=reverse, backend=backend)
        assert_greedy_replay(graph, passed, picks, 0.1, reverse == "absolute")


def test_reference_replay_is_greedy():
    """The replay check itself rejects a non-greedy order (the check can fail)."""
    rng = np.random.default_rng(0)
    graph = random_graph(rng, 100, 4)
    passed = rng.random(100)
    picks = d2fast.select(graph, passed, 50, backend="numpy")
    assert_greedy_replay(graph, passed, picks, 0.1, False)
    with pytest.raises(AssertionError):
        assert_greedy_replay(graph, passed, picks[::-1].copy(), 0.1, False)


def test_forward_definition_by_hand():
    # path 0 - 1 - 2 with distances 1 and 2
    graph = Graph([0, 1, 3, 4], [1, 0, 2, 1], [1.0, 1.0, 2.0, 2.0])
    s = np.array([1.0, 2.0, -3.0])
    e1, e2 = np.exp(-0.5 * 1.0), np.exp(-0.5 * 2.0)
    acc = np.array([e1 * 2, e1 * 1 + e2 * -3, e2 * 2])
    for backend in d2fast.backends():
        np.testing.assert_allclose(d2fast.forward(graph, s, gamma_f=0.5, backend=backend),
                                   s + acc, rtol=1e-15)
        np.testing.assert_allclose(d2fast.forward(graph, s, gamma_f=0.5, mode="product",
                                                  backend=backend), s * acc, rtol=1e-15)


def test_select_by_hand_negative_scores_rise():
    # star: 0 is linked to 1 and 2; all scores negative, absolute update
    graph = Graph([0, 2, 3, 4], [1, 2, 0, 0], [0.0, 0.0, 0.0, 0.0])
    s = np.array([-1.0, -1.5, -1.2])
    # pick 0 (-1.0); neighbours rise by 1.0: 1 -> -0.5, 2 -> -0.2; then 2, then 1
    for backend in d2fast.backends():
        np.testing.assert_array_equal(
            d2fast.select(graph, s, 3, reverse="absolute", backend=backend), [0, 2, 1])


def test_select_does_not_mutate_inputs(backend):
    rng = np.random.default_rng(1)
    graph = random_graph(rng, 200, 5)
    scores = rng.normal(size=200)
    before = scores.copy()
    arrays = [a.copy() for a in (graph.indptr, graph.indices, graph.distances)]
    d2fast.select(graph, d2fast.forward(graph, scores, backend=backend), 150, backend=backend)
    np.testing.assert_array_equal(scores, before)
    for a, b in zip(arrays, (graph.indptr, graph.indices, graph.distances)):
        np.testing.assert_array_equal(a, b)


def test_isolated_nodes_and_empty_graph(backend):
    graph = Graph(np.zeros(6, dtype=np.int64), [], [])  # 5 nodes, no edges
    s = np.array([0.3, 0.9, 0.3, -1.0, 0.9])
    np.testing.assert_array_equal(d2fast.forward(graph, s, backend=backend), s)
    np.testing.assert_array_equal(d2fast.select(graph, s, 5, backend=backend), [1, 4, 0, 2, 3])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), c=st.integers(1, 6), sym=st.booleans(),
       seed=st.integers(0, 2**31), gamma_r=st.floats(0, 3), absolute=st.booleans(),
       product=st.booleans())
def test_property_kernels_agree(n, c, sym, seed, gamma_r, absolute, product):
    rng = np.random.default_rng(seed)
    graph = random_graph(rng, n, c, sym)
    scores = rng.normal(size=n) * rng.choice([1e-3, 1.0, 1e3])
    mode = "product" if product else "sum"
    reverse = "absolute" if absolute else "weighted"
    ref = d2fast.forward(graph, scores, mode=mode, backend="numpy")
    n_keep = int(rng.integers(0, n + 1))
    want = d2fast.select(graph, ref, n_keep, gamma_r=gamma_r, reverse=reverse, backend="numpy")
    for backend in ("cpp", "numba"):
        got = d2fast.forward(graph, scores, mode=mode, backend=backend)
        np.testing.assert_array_equal(got, ref)  # same exp, same order: bit for bit
        picks = d2fast.select(graph, ref, n_keep, gamma_r=gamma_r, reverse=reverse,
                              backend=backend)
        assert_greedy_replay(graph, ref, picks, gamma_r, absolute)
        np.testing.assert_array_equal(picks, want)


def test_underflow_warning():
    emb = np.random.default_rng(0).normal(size=(200, 64)) * 100  # distances ~ 1000
    graph = d2fast.knn_graph(emb, k=5)
    with pytest.warns(UserWarning, match="normalise the embeddings or lower gamma_f"):
        d2fast.forward(graph, np.ones(200))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d2fast.forward(graph, np.ones(200), gamma_f=1e-3)


def test_reference_is_the_oracle():
    assert d2fast.backends()[-1] == "numpy"
    assert reference.select_heap.__module__ == "d2fast._backends.reference"


@pytest.mark.parametrize("n,c,sym,kind", [case for case in CASES if case[0] >= 7])
def test_rounds_matches_heap(backend, n, c, sym, kind):
    """Rounds == heap; generic float inputs, so summation order cannot flip a pick."""
    rng = np.random.default_rng(zlib.crc32(repr(("rounds", n, c, sym, kind)).encode()))
    graph = random_graph(rng, n, c, sym)
    passed = d2fast.forward(graph, random_scores(rng, n, kind) + (kind == "normal") * 0.5)
    for reverse in ("weighted", "absolute"):
        for n_keep in {1, n // 3, n // 2, n - 1, n}:
            want = d2fast.select(graph, passed, n_keep, reverse=reverse, algorithm="heap",
                                 backend="numpy")
            got = d2fast.select(graph, passed, n_keep, reverse=reverse, algorithm="rounds",
                                backend=backend)
            assert got.dtype == np.int64 and got.shape == (n_keep,)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(10))
def test_rounds_exact_ties(backend, seed):
    """Integer scores and zero distances: exact arithmetic, so rounds == heap bit for bit."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 500))
    I = rng.integers(-1, n, size=(n, 4))
    for graph_kind in ("union", "directed"):
        graph = Graph.from_knn(I, np.zeros(I.shape), graph=graph_kind)
        passed = rng.integers(-2, 6, size=n).astype(float)
        for reverse in ("weighted", "absolute"):
            for n_keep in (n // 4, n):
                want = d2fast.select(graph, passed, n_keep, reverse=reverse, backend="numpy")
                got = d2fast.select(graph, passed, n_keep, reverse=reverse,
                                    algorithm="rounds", backend=backend)
                np.testing.assert_array_equal(got, want)


def test_rounds_on_knn_graph_with_duplicates(backend):
    """Duplicates give zero distances and near-ties: a valid greedy up to float noise."""
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(40, 3))[rng.integers(0, 40, size=800)]
    graph = d2fast.knn_graph(emb, 5, graph="directed")
    passed = d2fast.forward(graph, rng.random(800) - 0.2)
    picks = d2fast.select(graph, passed, 800, algorithm="rounds", backend=backend)
    assert_greedy_replay(graph, passed, picks, 0.1, False)


def test_rounds_needs_a_backend_that_has_it():
    graph = random_graph(np.random.default_rng(0), 20, 3)
    with pytest.raises(ValueError, match="algorithm='rounds' is not implemented by the 'numpy'"):
        d2fast.select(graph, np.ones(20), 5, algorithm="rounds", backend="numpy")


# gamma_r="auto" (auto_gamma_r): the reverse weights of a row's edges sum to n / n_keep - 1


def _mean_weight(g: Graph, gamma: float) -> float:
    return float(np.exp(-gamma * g.distances.astype(np.float64)).sum()) / g.n


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_auto_gamma_r_makes_the_mean_reverse_weight_the_rows_each_pick_stands_for(rate):
    from d2fast.passing import auto_gamma_r
    rng = np.random.default_rng(0)
    g = d2fast.knn_graph(rng.normal(size=(600, 6)), 5)
    n_keep = int(600 * (1 - rate))
    gamma, why = auto_gamma_r(g, n_keep)
    assert gamma > 0 and why.startswith("auto: ")
    assert _mean_weight(g, gamma) == pytest.approx(600 / n_keep - 1, rel=1e-9)


def test_auto_gamma_r_follows_the_scale_of_the_distances_and_grows_as_fewer_rows_go():
    from d2fast.passing import auto_gamma_r
    g = d2fast.knn_graph(np.random.default_rng(1).normal(size=(500, 4)), 5)
    scaled = Graph(g.indptr, g.indices, g.distances * 1000.0)
    for n_keep in (150, 250, 350):
        assert auto_gamma_r(scaled, n_keep)[0] == pytest.approx(
            auto_gamma_r(g, n_keep)[0] / 1000.0, rel=1e-6)
    gammas = [auto_gamma_r(g, n_keep)[0] for n_keep in (150, 250, 350, 450)]
    assert gammas == sorted(gammas) and gammas[0] < gammas[-1]


def test_auto_gamma_r_is_zero_when_each_pick_stands_for_more_than_its_degree():
    from d2fast.passing import auto_gamma_r
    g = d2fast.knn_graph(np.random.default_rng(2).normal(size=(300, 4)), 3)
    gamma, why = auto_gamma_r(g, 10)  # m = 29 > mean degree (< 6)
    assert gamma == 0.0 and "whole neighbourhood" in why


def test_auto_gamma_r_degenerate_graphs():
    from d2fast.passing import auto_gamma_r
    # no edges at all, and only zero-length edges: the weights are what they are
    empty = Graph(np.zeros(4, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0))
    assert auto_gamma_r(empty, 1) == (0.0, "auto: 0 (no edge of positive length: every "
                                            "reverse weight is 1)")
    zeros = Graph([0, 1, 2], [1, 0], [0.0, 0.0])
    assert auto_gamma_r(zeros, 1)[0] == 0.0
    # every row kept, or none: nothing to trade, the reverse pass barely acts (finite)
    g = d2fast.knn_graph(np.random.default_rng(3).normal(size=(50, 3)), 4)
    median = float(np.median(g.distances))
    for n_keep in (0, 50):
        gamma, why = auto_gamma_r(g, n_keep)
        assert gamma == pytest.approx(30.0 / median, rel=1e-6) and "nothing to trade" in why
    # duplicates: m not above the zero-length edges per row -> only duplicates are hit
    dup = Graph([0, 1, 2, 4, 5, 6], [1, 0, 3, 4, 2, 2], [0.0, 0.0, 1.0, 2.0, 1.0, 2.0])
    gamma, why = auto_gamma_r(dup, 4)  # m = 0.25, zero-length edges per row = 0.4
    assert gamma == pytest.approx(30.0 / 1.5) and "zero-distance" in why
    with pytest.raises(ValueError, match="n_keep"):
        auto_gamma_r(g, 51)
    with pytest.raises(TypeError, match="graph must be a d2fast.Graph"):
        auto_gamma_r(np.zeros((3, 3)), 1)


def test_auto_gamma_r_large_graphs_use_a_sample_of_the_edges(monkeypatch):
    from d2fast import passing
    g = d2fast.knn_graph(np.random.default_rng(4).normal(size=(2000, 5)), 5)
    full = passing.auto_gamma_r(g, 700)[0]
    monkeypatch.setattr(passing, "_GAMMA_EDGES", g.nnz // 4)
    assert passing.auto_gamma_r(g, 700)[0] == pytest.approx(full, rel=0.05)
