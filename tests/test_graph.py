"""knn_graph against brute force; Graph constructors and their validation (SPEC 2)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import d2fast
from d2fast import Graph
from d2fast._backends import reference

from conftest import random_graph, random_knn


def brute_knn(emb: np.ndarray, k: int, metric: str):
    """Exact kNN in float64 over the float32-rounded data: ties to the lower index."""
    X = emb.astype(np.float32).astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = (np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
             .astype(np.float32).astype(np.float64))
        D = np.maximum(1.0 - np.array([(x * X).sum(axis=1) for x in X]), 0.0)
    else:
        D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
        if metric == "euclidean":
            D = np.sqrt(D)
    np.fill_diagonal(D, np.inf)
    n = len(X)
    idx = np.array([np.lexsort((np.arange(n), D[i]))[:k] for i in range(n)])
    return idx, np.take_along_axis(D, idx, 1)


def assert_csr_invariants(g: Graph) -> None:
    assert g.indptr.dtype == np.int64 and g.indices.dtype == np.int32
    assert g.distances.dtype == np.float32
    assert g.indptr[0] == 0 and g.indptr[-1] == g.nnz and (np.diff(g.indptr) >= 0).all()
    rows = np.repeat(np.arange(g.n), g.degrees())
    assert ((g.indices >= 0) & (g.indices < g.n)).all()
    assert (g.indices != rows).all()
    same = rows[1:] == rows[:-1]
    assert (g.indices[1:][same] > g.indices[:-1][same]).all()
    assert np.isfinite(g.distances).all() and (g.distances >= 0).all()


def data(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        return rng.normal(size=(n, d))
    if kind == "duplicates":  # heavy exact ties, plus zero vectors for cosine
        emb = np.round(rng.normal(size=(n // 8 + 1, d)), 1)[rng.integers(0, n // 8 + 1, n)]
        emb[:3] = 0.0
        return emb
    if kind == "grid":  # many equal distances
        return rng.integers(0, 4, size=(n, d)).astype(np.float32)
    raise ValueError(kind)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("kind", ["gauss", "duplicates", "grid"])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_knn_graph_matches_brute_force(metric, kind, k):
    emb = data(kind, 300, 6, seed=k)
    idx, dist = brute_knn(emb, k, metric)
    g = d2fast.knn_graph(emb, k, metric=metric, graph="directed")
    assert_csr_invariants(g)
    assert (g.degrees() == k).all()
    for i in range(g.n):
        row = slice(g.indptr[i], g.indptr[i + 1])
        order = np.argsort(idx[i])
        np.testing.assert_array_equal(g.indices[row], idx[i][order])
        np.testing.assert_allclose(g.distances[row], dist[i][order], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_union_graph_is_symmetric_union(backend):
    emb = data("gauss", 500, 8, seed=1)
    directed = d2fast.knn_graph(emb, 5, graph="directed", backend=backend)
    union = d2fast.knn_graph(emb, 5, backend=backend)
    assert_csr_invariants(union)
    A, U = directed.to_scipy(), union.to_scipy()
    assert (U != U.T).nnz == 0
    want = A.maximum(A.T)
    assert (U != want).nnz == 0
    assert ((A != 0) > (U != 0)).nnz == 0


def test_knn_graph_inputs_are_equivalent():
    torch = pytest.importorskip("torch")  # the optional extra; CI installs it

    emb = data("gauss", 200, 5, seed=2).astype(np.float32)
    ref = d2fast.knn_graph(emb, 4)
    path = __import__("tempfile").mktemp(suffix=".npy")
    np.save(path, emb)
    for same in (emb.astype(np.float64), np.load(path, mmap_mode="r"), torch.from_numpy(emb),
                 emb.tolist(), np.asfortranarray(emb)):
        g = d2fast.knn_graph(same, 4)
        np.testing.assert_array_equal(g.indices, ref.indices)
        np.testing.assert_array_equal(g.indptr, ref.indptr)


def test_knn_graph_does_not_mutate_input():
    emb = data("gauss", 100, 4, seed=3).astype(np.float32)
    before = emb.copy()
    d2fast.knn_graph(emb, 3, metric="cosine")
    d2fast.knn_graph(emb, 3)
    np.testing.assert_array_equal(emb, before)


def test_cosine_zero_vector_is_at_distance_one():
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    g = d2fast.knn_graph(emb, 3, metric="cosine", graph="directed")
    row = slice(g.indptr[0], g.indptr[1])
    np.testing.assert_array_equal(g.indices[row], [1, 2, 3])
    np.testing.assert_allclose(g.distances[row], 1.0)


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 80), c=st.integers(1, 8), seed=st.integers(0, 2**31),
       symmetric=st.booleans(), missing=st.floats(0, 1))
def test_property_build_csr_matches_reference(backend, n, c, seed, symmetric, missing):
    rng = np.random.default_rng(seed)
    I, D = random_knn(rng, n, c, missing)
    D[rng.random(D.shape) < 0.2] = 0.0  # equal distances on duplicate pairs
    want = reference.build_csr(I, D, symmetric)
    got = d2fast._backends.get(backend).build_csr(I, D, symmetric)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert_csr_invariants(Graph(*got))


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 80), c=st.integers(1, 8), seed=st.integers(0, 2**31),
       share=st.floats(0, 1))
def test_property_renumber_matches_reference(backend, n, c, seed, share):
    """Any distinct rows in any order (a subset, or a permutation when share is 1)."""
    rng = np.random.default_rng(seed)
    g = random_graph(rng, n, c, symmetric=bool(rng.integers(2)))
    rows = rng.permutation(n)[:max(1, round(share * n))]
    want = reference.renumber(g.indptr, g.indices, g.distances, rows)
    got = d2fast._backends.get(backend).renumber(g.indptr, g.indices, g.distances, rows)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert_csr_invariants(Graph(*got))
    dense = g.to_scipy().toarray()
    np.testing.assert_array_equal(Graph(*want).to_scipy().toarray(), dense[np.ix_(rows, rows)])


def test_from_knn_faiss_output():
    import faiss

    emb = data("gauss", 400, 8, seed=4).astype(np.float32)
    D, I = faiss.knn(emb, emb, 6)  # squared L2, self match in column 0
    g = Graph.from_knn(I, D, squared=True, graph="directed")
    ref = d2fast.knn_graph(emb, 5, graph="directed")
    np.testing.assert_array_equal(g.indices, ref.indices)
    np.testing.assert_allclose(g.distances, ref.distances, rtol=1e-4, atol=1e-4)
    assert Graph.from_knn(I, np.sqrt(np.maximum(D, 0))).nnz == d2fast.knn_graph(emb, 5).nnz


def test_from_knn_drop_self_rules():
    I = np.array([[0, 1, 2], [2, 1, 0], [0, 1, 3], [3, 0, 1]])  # row 1: self in column 1
    D = np.array([[0.0, 1, 2], [1, 0, 2], [0.5, 1, 1.5], [0, 1, 2]])  # row 2: no self match
    g = Graph.from_knn(I, D, graph="directed")  # auto -> True
    np.testing.assert_array_equal(g.degrees(), [2, 2, 2, 2])
    np.testing.assert_array_equal(g.indices, [1, 2, 0, 2, 0, 1, 0, 1])
    np.testing.assert_array_equal(g.distances, [1, 2, 2, 1, 0.5, 1, 1, 2])
    with pytest.raises(ValueError, match=r"I\[0\] contains 0 itself"):
        Graph.from_knn(I, D, drop_self=False)
    g = Graph.from_knn(np.array([[1], [0]]), np.ones((2, 1)), drop_self="auto")
    np.testing.assert_array_equal(g.degrees(), [1, 1])


def test_from_knn_missing_entries_and_union():
    I = np.array([[1, -1], [-1, -1], [0, 1]])
    D = np.array([[0.5, np.nan], [np.inf, 0], [2.0, 3.0]])  # values at -1 are ignored
    g = Graph.from_knn(I, D)
    np.testing.assert_array_equal(g.indptr, [0, 2, 4, 6])
    np.testing.assert_array_equal(g.indices, [1, 2, 0, 2, 0, 1])
    np.testing.assert_allclose(g.distances, [0.5, 2.0, 0.5, 3.0, 2.0, 3.0])


def test_from_knn_union_keeps_smaller_distance():
    g = Graph.from_knn(np.array([[1], [0]]), np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(g.distances, [1.0, 1.0])


@pytest.mark.parametrize("I,D,err,match", [
    ([[1], [5]], [[1.0], [1.0]], ValueError, r"I must lie in \[0, n\)"),
    ([[1], [-2]], [[1.0], [1.0]], ValueError, r"I must lie in \[0, n\)"),
    ([[1], [0]], [[1.0], [-1.0]], ValueError, "D must be >= 0"),
    ([[1], [0]], [[1.0], [np.nan]], ValueError, "D contains NaN"),
    ([[1], [0]], [[1.0, 2.0], [1.0, 2.0]], ValueError, r"D.shape == \(2, 2\)"),
    ([1, 0], [1.0, 1.0], ValueError, r"I.shape == \(2,\)"),
    ([[1.0], [0.0]], [[1.0], [1.0]], TypeError, "I must have an integer dtype"),
])
def test_from_knn_rejects(I, D, err, match):
    with pytest.raises(err, match=match):
        Graph.from_knn(np.array(I), np.array(D), drop_self=False)


def test_from_knn_squared_clips_rounding_noise():
    g = Graph.from_knn(np.array([[1], [0]]), np.array([[4.0], [-1e-9]]), squared=True)
    np.testing.assert_array_equal(g.distances, [0.0, 0.0])


def test_from_scipy_round_trip_and_canonicalisation():
    from scipy.sparse import coo_matrix

    rows = np.array([0, 0, 1, 2, 2, 0, 1])
    cols = np.array([2, 1, 1, 0, 0, 2, 0])  # (1, 1) diagonal, (2, 0) and (0, 2) repeated
    vals = np.array([3.0, 1.0, 9.0, 2.0, 4.0, 5.0, 0.0])
    m = coo_matrix((vals, (rows, cols)), shape=(3, 3))
    m.sum_duplicates = None  # keep the duplicates as they are
    g = Graph.from_scipy(m.tocsr() if False else m)
    np.testing.assert_array_equal(g.indptr, [0, 2, 3, 4])
    np.testing.assert_array_equal(g.indices, [1, 2, 0, 0])
    np.testing.assert_array_equal(g.distances, [1.0, 3.0, 0.0, 2.0])
    back = Graph.from_scipy(g.to_scipy())
    for a, b in zip((back.indptr, back.indices, back.distances),
                    (g.indptr, g.indices, g.distances)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args,err,match", [
    (([0, 1], [5], [1.0]), ValueError, r"indices must lie in \[0, n\)"),
    (([0, 1], [-1], [1.0]), ValueError, r"indices must lie in \[0, n\)"),
    (([0, 2, 1, 2], [1, 2], [1.0, 1.0]), ValueError, "indptr must be non-decreasing"),
    (([0, 1, 3], [1, 0], [1.0, 1.0]), ValueError, "end at nnz=2"),
    (([1, 1, 2], [1, 0], [1.0, 1.0]), ValueError, "start at 0"),
    (([0, 1, 2], [0, 0], [1.0, 1.0]), ValueError, "self loop at node 0"),
    (([0, 2, 2, 2], [2, 1], [1.0, 1.0]), ValueError, "row 0 are not strictly increasing"),
    (([0, 2, 2, 2], [1, 1], [1.0, 1.0]), ValueError, "row 0 are not strictly increasing"),
    (([0, 1, 2], [1, 0], [1.0, -1.0]), ValueError, "distances must be finite and >= 0"),
    (([0, 1, 2], [1, 0], [1.0, np.nan]), ValueError, "distances must be finite and >= 0"),
    (([0, 1, 2], [1, 0], [1.0]), ValueError, r"distances.shape == \(1,\)"),
    (([0], [], []), ValueError, "expected \\(n \\+ 1,\\) with n >= 1"),
    (([0.0, 1.0, 2.0], [1, 0], [1.0, 1.0]), TypeError, "indptr must have an integer dtype"),
    (([0, 1, 2], [1, 0], ["a", "b"]), TypeError, "distances must have a real numeric dtype"),
])
def test_graph_rejects_malformed_csr(args, err, match):
    with pytest.raises(err, match=match):
        Graph(*[np.array(a) for a in args])


def test_graph_is_read_only_copy():
    indptr, indices, distances = np.array([0, 1, 2]), np.array([1, 0]), np.array([1.0, 2.0])
    g = Graph(indptr, indices, distances)
    indices[0] = 99  # the caller's array changes; the graph must not
    assert g.indices[0] == 1
    with pytest.raises(ValueError):
        g.indices[0] = 5
    assert repr(g) == "Graph(n=2, nnz=2)"


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, mmap):
    g = d2fast.knn_graph(data("gauss", 300, 4, seed=5), 4)
    g.save(tmp_path / "g")  # ".npz" is appended
    h = Graph.load(tmp_path / "g.npz", mmap=mmap)
    assert isinstance(h.indices, np.memmap) == mmap
    for a, b in zip((g.indptr, g.indices, g.distances), (h.indptr, h.indices, h.distances)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    s = np.random.default_rng(0).random(300)
    for backend in d2fast.backends():
        np.testing.assert_array_equal(d2fast.select(h, s, 100, backend=backend),
                                      d2fast.select(g, s, 100, backend=backend))
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temporary left behind


@pytest.mark.parametrize("mmap", [True, False])
def test_load_rejects_corrupt_files(tmp_path, mmap):
    path = tmp_path / "bad.npz"
    np.savez(path, format=np.array("d2fast.Graph/1"), indptr=np.array([0, 1, 2]),
             indices=np.array([1, 7], dtype=np.int32), distances=np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, n\)"):
        Graph.load(path, mmap=mmap)
    np.savez(path, format=np.array("d2fast.Graph/1"), indptr=np.array([0, 1, 2]),
             indices=np.array([1, 1], dtype=np.int32), distances=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="self loop at node 1"):
        Graph.load(path, mmap=mmap)
    np.savez(path, indptr=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="is not a d2fast graph file"):
        Graph.load(path, mmap=mmap)
    with open(path, "wb") as f:
        f.write(b"PK not a zip")
    with pytest.raises(ValueError, match=r"is not a d2fast graph file \(not a .npz\)"):
        Graph.load(path, mmap=mmap)
    np.savez(path, format=np.array("d2fast.Graph/1"), indptr=np.array([0, 1, 2]),
             indices=np.array([1, 0]), distances=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="indices is missing or not a 1-D int32 array"):
        Graph.load(path, mmap=mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_meta_round_trip_and_old_files(tmp_path, mmap):
    import faiss

    g = d2fast.knn_graph(data("gauss", 300, 4, seed=6), 4, metric="cosine", graph="directed")
    assert g.meta == {"metric": "cosine", "k": 4, "graph": "directed", "knn": "exact",
                      "knn_params": {}, "normalization": "l2", "faiss": faiss.__version__}
    g.save(tmp_path / "g.npz")
    assert Graph.load(tmp_path / "g.npz", mmap=mmap).meta == g.meta
    old = tmp_path / "old.npz"  # written before meta existed
    np.savez(old, format=np.array("d2fast.Graph/1"), indptr=g.indptr, indices=g.indices,
             distances=g.distances)
    h = Graph.load(old, mmap=mmap)
    assert h.meta == {} and h.nnz == g.nnz
    np.savez(old, format=np.array("d2fast.Graph/1"), indptr=g.indptr, indices=g.indices,
             distances=g.distances, meta=np.array("[1, 2]"))
    with pytest.raises(ValueError, match="meta is not a JSON object"):
        Graph.load(old, mmap=mmap)


@pytest.mark.parametrize("knn, params", [("ivf", {"nprobe": 2, "pca": 3}), ("hnsw", {"M": 8})])
def test_meta_holds_every_resolved_knn_parameter(knn, params):
    X = data("gauss", 500, 6, seed=7)
    g = d2fast.knn_graph(X, 5, knn=knn, knn_params=params)
    assert g.meta["knn"] == knn and params.items() <= g.meta["knn_params"].items()
    want = {"ivf": {"nlist", "nprobe", "pool", "candidates", "pca", "partition"},
            "hnsw": {"M", "ef_construction", "ef_search", "candidates"}}[knn]
    assert set(g.meta["knn_params"]) == want
    h = d2fast.knn_graph(X, 5, knn=knn, knn_params=g.meta["knn_params"])  # the same search
    np.testing.assert_array_equal(h.indices, g.indices)
    assert d2fast.knn_graph(X, 5, knn="auto").meta["knn"] == "exact"


def test_meta_of_other_constructors():
    I = np.array([[1], [0], [1]])
    assert Graph.from_knn(I, np.ones((3, 1)), graph="directed").meta == {"graph": "directed"}
    g = Graph([0, 1, 2], [1, 0], [1.0, 1.0], meta={"metric": "cosine"})
    assert g.meta == {"metric": "cosine"}
    with pytest.raises(TypeError, match="meta must be a dict"):
        Graph([0, 1, 2], [1, 0], [1.0, 1.0], meta=[1])
    with pytest.raises(TypeError, match="meta must be JSON-serialisable"):
        Graph([0, 1, 2], [1, 0], [1.0, 1.0], meta={"x": object()})


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_permuted_renumbers_the_nodes(backend):
    g = d2fast.knn_graph(data("gauss", 200, 3, seed=9), 6, graph="directed")
    order = np.random.default_rng(1).permutation(200)
    p = g.permuted(order, backend=backend)
    dense = g.to_scipy().toarray()
    np.testing.assert_array_equal(p.to_scipy().toarray(), dense[np.ix_(order, order)])
    assert_csr_invariants(Graph(p.indptr, p.indices, p.distances))
    assert p.meta == g.meta and p.nnz == g.nnz
    back = p.permuted(np.argsort(order), backend=backend)
    for a, b in ((back.indptr, g.indptr), (back.indices, g.indices),
                 (back.distances, g.distances)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="permutation of range"):
        g.permuted(order[:-1])
    with pytest.raises(ValueError):
        g.permuted(np.r_[order[:-1], order[0]])  # a repeat


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_subgraph_is_the_induced_subgraph(backend):
    g = d2fast.knn_graph(data("gauss", 200, 3, seed=8), 6, graph="directed")
    rows = np.sort(np.random.default_rng(0).choice(200, 70, replace=False))
    sub = g.subgraph(rows, backend=backend)
    dense = g.to_scipy().toarray()
    np.testing.assert_array_equal(sub.to_scipy().toarray(), dense[np.ix_(rows, rows)])
    assert_csr_invariants(Graph(sub.indptr, sub.indices, sub.distances))
    assert sub.meta == {**g.meta, "subgraph_of": 200}
    assert g.subgraph(np.arange(200), backend=backend).nnz == g.nnz
    with pytest.raises(ValueError, match="sorted and unique"):
        g.subgraph([3, 1])
    with pytest.raises(ValueError, match=r"rows must lie in \[0, n\)"):
        g.subgraph([0, 200])
