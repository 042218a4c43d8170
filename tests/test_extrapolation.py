"""Score extrapolation (d2fast.extrapolation) against brute-force NumPy computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import d2fast
from d2fast import knn
from d2fast.extrapolation import extrapolate, evaluate_extrapolation

torch.set_num_threads(1)

GNN_FAST = {"epochs": 30, "hidden": 16}  # enough to exercise training, seconds to run


def smooth_field(n: int = 2000, d: int = 4, known_frac: float = 0.15, seed: int = 0):
    """Embeddings, a smooth score field over them, and a random known subset (unsorted)."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d))
    scores = np.sin(emb[:, 0]) + 0.5 * emb[:, 1] ** 2 - np.cos(emb[:, 2])
    known = rng.choice(n, int(known_frac * n), replace=False)
    return emb, scores, known


def brute_neighbours(emb, queries, database, k, metric="euclidean"):
    """Distances (float64, in the metric) and ids of the k nearest database rows, ties to
    the lower id; on the float32 rows the search uses (unit rows for cosine)."""
    X = emb.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    X = X.astype(np.float32).astype(np.float64)
    diff = X[queries][:, None, :] - X[database][None, :, :]
    if metric == "cosine":
        D = 1.0 - X[queries] @ X[database].T
    else:
        D = (diff ** 2).sum(-1)
        if metric == "euclidean":
            D = np.sqrt(D)
    order = np.lexsort((np.broadcast_to(database, D.shape), D), axis=1)[:, :k]
    return np.take_along_axis(D, order, 1), database[order]


@pytest.fixture(scope="module")
def field():
    emb, scores, known = smooth_field()
    return emb, scores, known, np.setdiff1d(np.arange(len(emb)), known)


@pytest.fixture(scope="module")
def gnn_run(field):
    emb, scores, known, _ = field
    return extrapolate(emb, known, scores[known], method="gnn", return_info=True)


@pytest.mark.parametrize("weights", ["distance", "uniform"])
def test_knn_recovers_a_smooth_field(field, weights):
    emb, scores, known, unknown = field
    out, info = extrapolate(emb, known, scores[known], weights=weights, return_info=True)
    assert out.dtype == np.float64 and out.shape == scores.shape
    assert evaluate_extrapolation(out, scores, unknown)["spearman"] >= 0.9
    assert info["val_spearman"] >= 0.8 and info["method"] == "knn"  # 60 held-out rows
    np.testing.assert_array_equal(out[known], scores[known])  # exactly, not approximately


def test_gnn_recovers_a_smooth_field(field, gnn_run):
    emb, scores, known, unknown = field
    out, info = gnn_run
    assert out.dtype == np.float64 and out.shape == scores.shape
    assert evaluate_extrapolation(out, scores, unknown)["spearman"] >= 0.9
    np.testing.assert_array_equal(out[known], scores[known])
    assert info["method"] == "gnn" and info["n_known"] == known.size
    assert info["n_val"] == round(0.2 * known.size) == info["val_idx"].size
    assert np.isin(info["val_idx"], known).all()  # model selection on known rows only
    assert 0 <= info["best_epoch"] <= info["epochs_run"] <= 500
    assert info["epochs_run"] == 500 or info["epochs_run"] - info["best_epoch"] == 50
    assert info["early_stopped"] == (info["epochs_run"] - info["best_epoch"] == 50)
    assert info["val_spearman"] >= 0.8 and info["val_loss"] < 0.5
    assert np.isfinite(info["train_loss"]) and info["time_s"] > 0


def test_uniform_knn_is_the_mean_of_the_nearest_known_rows(field):
    emb, scores, known, unknown = field
    for metric in ("euclidean", "cosine"):
        out = extrapolate(emb, known, scores[known], k=7, weights="uniform", metric=metric)
        _, ids = brute_neighbours(emb, unknown, np.sort(known), 7, metric)
        np.testing.assert_allclose(out[unknown], scores[ids].mean(axis=1), rtol=1e-12)


@pytest.mark.parametrize("temperature", [None, 0.3])
def test_distance_weights_match_brute_force(field, temperature):
    emb, scores, known, unknown = field
    out, info = extrapolate(emb, known, scores[known], k=5, temperature=temperature,
                            return_info=True)
    D, ids = brute_neighbours(emb, unknown, np.sort(known), 5)
    t = np.median(D) if temperature is None else temperature
    assert info["temperature"] == pytest.approx(t, rel=1e-12)
    w = np.exp(-(D - D[:, :1]) / t)
    np.testing.assert_allclose(out[unknown], (w * scores[ids]).sum(1) / w.sum(1), rtol=1e-10)


def test_distance_weights_do_not_underflow():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(300, 3)) * 1e4  # neighbour distances ~1e3..1e4
    scores = rng.normal(size=300)
    known = np.arange(0, 300, 3)
    unknown = np.setdiff1d(np.arange(300), known)
    out = extrapolate(emb, known, scores[known], k=4, temperature=1.0)
    D, ids = brute_neighbours(emb, unknown, known, 4)
    assert (np.exp(-D / 1.0).sum(1) == 0).all()  # the naive weights would give 0 / 0
    assert np.isfinite(out).all()
    w = np.exp(-(D - D[:, :1]))
    np.testing.assert_allclose(out[unknown], (w * scores[ids]).sum(1) / w.sum(1), rtol=1e-12)


def test_knn_validation_uses_only_known_rows(field):
    emb, scores, known, unknown = field
    out, info = extrapolate(emb, known, scores[known], k=6, return_info=True, seed=5)
    val = info["val_idx"]
    assert np.isin(val, known).all() and val.size == round(0.2 * known.size)
    assert (np.diff(val) > 0).all()
    train = np.setdiff1d(known, val)
    D, ids = brute_neighbours(emb, val, train, 6)
    w = np.exp(-(D - D[:, :1]) / np.median(D))
    pred = (w * scores[ids]).sum(1) / w.sum(1)
    assert info["val_pearson"] == pytest.approx(stats.pearsonr(pred, scores[val])[0], abs=1e-9)
    assert info["val_spearman"] == pytest.approx(stats.spearmanr(pred, scores[val])[0], abs=1e-9)
    # unknown rows' true scores are not an input: garbage there changes nothing
    garbage = scores.copy()
    garbage[unknown] = np.random.default_rng(1).normal(size=unknown.size) * 1e6
    out2, info2 = extrapolate(emb, known, garbage[known], k=6, return_info=True, seed=5)
    np.testing.assert_array_equal(out, out2)
    assert info2["val_spearman"] == info["val_spearman"]


def test_knn_without_validation_may_use_every_known_row():
    emb, scores, known = smooth_field(n=200, known_frac=0.1)
    out, info = extrapolate(emb, known, scores[known], k=known.size, weights="uniform",
                            val_fraction=0, return_info=True)
    unknown = np.setdiff1d(np.arange(200), known)
    np.testing.assert_allclose(out[unknown], scores[known].mean(), rtol=1e-12)
    assert info["n_val"] == 0 and np.isnan(info["val_spearman"])


def test_all_rows_known_returns_them():
    emb, scores, _ = smooth_field(n=50)
    perm = np.random.default_rng(0).permutation(50)
    np.testing.assert_array_equal(extrapolate(emb, perm, scores[perm], k=3), scores)


def test_gnn_is_deterministic_and_seeded(field):
    emb, scores, known, unknown = field
    threads = torch.get_num_threads()
    a = extrapolate(emb, known, scores[known], method="gnn", seed=1, **GNN_FAST)
    b = extrapolate(emb, known, scores[known], method="gnn", seed=1, **GNN_FAST)
    c, info = extrapolate(emb, known, scores[known], method="gnn", seed=2, return_info=True,
                          **GNN_FAST)
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(a, b)  # bit-identical
    assert not np.array_equal(a[unknown], c[unknown]) and np.isfinite(c).all()
    assert info["epochs_run"] <= 30
    assert not info["early_stopped"]  # 30 epochs < patience 50: it ran them all
    # a permutation of the (known_idx, known_scores) pairs is the same input
    perm = np.random.default_rng(0).permutation(known.size)
    d = extrapolate(emb, known[perm], scores[known[perm]], method="gnn", seed=1, **GNN_FAST)
    np.testing.assert_array_equal(a, d)


def test_gnn_does_not_touch_the_global_rng(field):
    emb, scores, known, _ = field
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    extrapolate(emb, known, scores[known], method="gnn", epochs=2)
    np.testing.assert_array_equal(torch.rand(3), want)


def test_gnn_labels_and_three_layers(field):
    emb, scores, known, unknown = field
    labels = (emb[:, 3] > 0).astype(np.int64) * 7 - 3  # any integer values
    out = extrapolate(emb, known, scores[known], method="gnn", labels=labels, layers=3,
                      **GNN_FAST)
    np.testing.assert_array_equal(out[known], scores[known])
    assert evaluate_extrapolation(out, scores, unknown)["spearman"] > 0.5


def test_gnn_takes_a_prebuilt_graph(field):
    emb, scores, known, _ = field
    union = d2fast.knn_graph(emb, 10)
    want = extrapolate(emb, known, scores[known], method="gnn", **GNN_FAST)
    got = extrapolate(emb, known, scores[known], method="gnn", graph=union, k=10, **GNN_FAST)
    np.testing.assert_array_equal(got, want)
    directed = d2fast.knn_graph(emb, 10, graph="directed")  # made symmetric: the same
    got = extrapolate(emb, known, scores[known], method="gnn", graph=directed, **GNN_FAST)
    np.testing.assert_array_equal(got, want)
    got = extrapolate(emb, known, scores[known], method="gnn", graph="directed", **GNN_FAST)
    np.testing.assert_array_equal(got, want)  # a kind, as in prune
    with pytest.raises(ValueError, match="graph was built with k=10 but k=1 was given"):
        extrapolate(emb, known, scores[known], method="gnn", graph=union, k=1, **GNN_FAST)
    with pytest.raises(ValueError, match="metric='euclidean' but metric='cosine'"):
        extrapolate(emb, known, scores[known], method="gnn", graph=union, metric="cosine",
                    **GNN_FAST)


def test_normalized_adjacency_against_dense():
    from d2fast.extrapolation import _normalized_adjacency

    rng = np.random.default_rng(5)
    graph = d2fast.knn_graph(rng.normal(size=(40, 2)), 3, graph="directed")
    A = (graph.to_scipy().toarray() > 0) | (graph.to_scipy().toarray().T > 0)
    A = A.astype(float) + np.eye(40)
    want = A / np.sqrt(np.outer(A.sum(1), A.sum(1)))
    got = _normalized_adjacency(graph, torch.device("cpu")).to_dense().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_symmetric_propagation_gradient():
    from d2fast.extrapolation import _normalized_adjacency, _symmetric_propagation

    rng = np.random.default_rng(6)
    adj = _normalized_adjacency(d2fast.knn_graph(rng.normal(size=(50, 3)), 4),
                                torch.device("cpu"))
    x = torch.randn(50, 2, requires_grad=True)
    w = torch.randn(50, 2)
    (_symmetric_propagation()(adj, x) * w).sum().backward()
    dense = adj.to_dense()
    x2 = x.detach().clone().requires_grad_(True)
    ((dense @ x2) * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_torch_inputs_match_numpy(field):
    emb, scores, known, _ = field
    t_emb, t_idx, t_sc = torch.from_numpy(emb), torch.from_numpy(known), torch.from_numpy(
        scores[known])
    np.testing.assert_array_equal(extrapolate(t_emb, t_idx, t_sc),
                                  extrapolate(emb, known, scores[known]))
    np.testing.assert_array_equal(
        extrapolate(t_emb.float(), t_idx, t_sc, method="gnn", **GNN_FAST),
        extrapolate(emb.astype(np.float32), known, scores[known], method="gnn", **GNN_FAST))


def test_caller_arrays_are_not_changed(field):
    emb, scores, known, _ = field
    labels = np.arange(len(emb)) % 3
    args = [emb, known, scores[known], labels]
    copies = [a.copy() for a in args]
    extrapolate(emb, known, args[2])
    extrapolate(emb, known, args[2], method="gnn", labels=labels, epochs=3)
    evaluate_extrapolation(scores, scores, known)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("method", ["exact", "hnsw", "ivf"])
def test_search_database_against_brute_force(method):
    rng = np.random.default_rng(2)
    emb = rng.integers(0, 4, size=(1500, 3)).astype(np.float32)  # many exact ties
    database = np.sort(rng.choice(1500, 300, replace=False))
    queries = np.arange(0, 1500, 2)  # half of them are also in the database
    ids, keys = knn.search_database(knn.float32_rows(emb, False), queries, database, 5,
                                    cosine=False, method=method)
    assert (ids != queries[:, None]).all()  # no self matches
    not_self = [database[database != q] for q in queries]
    for q, row_ids, row_keys, db in zip(queries[:50], ids, keys, not_self):
        D, want = brute_neighbours(emb, np.array([q]), db, 5, "sqeuclidean")
        if method == "exact":
            np.testing.assert_array_equal(row_ids, want[0])
        np.testing.assert_array_equal(row_keys, D[0])  # the same k-th distances


def test_evaluate_matches_scipy_with_ties():
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 5, 400).astype(float)  # heavy ties
    true = pred + rng.integers(0, 3, 400)
    idx = rng.choice(400, 150, replace=False)
    for sub in (None, idx):
        got = evaluate_extrapolation(pred, true, sub)
        p, t = (pred, true) if sub is None else (pred[sub], true[sub])
        assert got["n"] == p.size
        assert got["pearson"] == pytest.approx(stats.pearsonr(p, t)[0], abs=1e-12)
        assert got["spearman"] == pytest.approx(stats.spearmanr(p, t)[0], abs=1e-12)
    from d2fast.extrapolation import _average_ranks
    np.testing.assert_array_equal(_average_ranks(pred), stats.rankdata(pred))
    got = evaluate_extrapolation(np.ones(5), np.arange(5.0))
    assert np.isnan(got["pearson"]) and np.isnan(got["spearman"])
    assert evaluate_extrapolation(torch.arange(6.0), -torch.arange(6.0))["spearman"] == -1.0


N = 60
_rng = np.random.default_rng(0)
EMB = _rng.normal(size=(N, 3))
KNOWN = np.arange(0, N, 3)
SC = _rng.normal(size=KNOWN.size)
BAD = [
    (dict(emb=np.r_[EMB[:-1], [[np.nan] * 3]]), ValueError, "emb contains NaN"),
    (dict(emb=EMB[:, 0]), ValueError, r"emb.shape"),
    (dict(known_idx=KNOWN + 0.5), TypeError, "known_idx must be row ids"),
    (dict(known_idx=KNOWN + 3), ValueError, r"known_idx must lie in \[0, n\)"),
    (dict(known_idx=KNOWN - 1), ValueError, r"known_idx must lie in \[0, n\)"),
    (dict(known_idx=np.r_[KNOWN[:-1], 0]), ValueError, "known_idx holds row 0 twice"),
    (dict(known_idx=np.array([], dtype=int), known_scores=[]), ValueError, "known_idx is empty"),
    (dict(known_idx=KNOWN[:, None]), ValueError, r"known_idx.shape"),
    (dict(known_scores=SC[:-1]), ValueError, r"known_scores.shape"),
    (dict(known_scores=np.r_[SC[:-1], np.inf]), ValueError, "known_scores contains NaN"),
    (dict(known_scores=SC.astype(complex)), TypeError, "known_scores must have a real"),
    (dict(method="mlp"), ValueError, "method="),
    (dict(k=0), ValueError, "k == 0"),
    (dict(k=17), ValueError, r"k == 17, must satisfy 1 <= k <= 16 \(16 known rows not held"),
    (dict(k=2.0), TypeError, "k must be an int"),
    (dict(k=True), TypeError, "k must be an int"),
    (dict(method="gnn", k=N), ValueError, r"k == 60, must satisfy 1 <= k < n \(n=60\)"),
    (dict(metric="l1"), ValueError, "metric="),
    (dict(weights="gauss"), ValueError, "weights="),
    (dict(knn="flat"), ValueError, "knn="),
    (dict(knn="hnsw", knn_params={"nprobe": 2}), ValueError, "knn_params has"),
    (dict(temperature=0), ValueError, "temperature == 0"),
    (dict(temperature=-1.0), ValueError, "temperature == -1"),
    (dict(temperature=float("nan")), ValueError, "temperature == nan"),
    (dict(temperature="1"), TypeError, "temperature must be a real"),
    (dict(val_fraction=1.0), ValueError, "val_fraction == 1.0"),
    (dict(val_fraction=-0.1), ValueError, "val_fraction == -0.1"),
    (dict(method="gnn", val_fraction=0), ValueError, "val_fraction == 0.0 holds out no"),
    (dict(labels=np.zeros(N, dtype=int)), ValueError, "labels is used by method='gnn' only"),
    (dict(method="gnn", labels=np.zeros(N - 1, dtype=int)), ValueError, r"labels.shape"),
    (dict(method="gnn", labels=np.full(N, 0.5)), TypeError, "labels must be class ids"),
    (dict(graph=d2fast.knn_graph(EMB, 3)), ValueError, "graph is used by method='gnn' only"),
    (dict(method="gnn", graph="mutual"), ValueError, "graph='mutual', must be one of"),
    (dict(method="gnn", graph=d2fast.knn_graph(EMB[:-1], 3)), ValueError, "graph.n == 59"),
    (dict(method="gnn", graph=np.zeros((N, N))), TypeError, "graph must be a graph kind"),
    (dict(method="gnn", hidden=0), ValueError, "hidden == 0"),
    (dict(method="gnn", layers=1), ValueError, "layers == 1"),
    (dict(method="gnn", layers=4), ValueError, "layers == 4"),
    (dict(method="gnn", epochs=0), ValueError, "epochs == 0"),
    (dict(method="gnn", patience=0), ValueError, "patience == 0"),
    (dict(method="gnn", lr=-0.1), ValueError, "lr == -0.1"),
    (dict(method="gnn", weight_decay=float("inf")), ValueError, "weight_decay == inf"),
    (dict(method="gnn", device="nonsense"), ValueError, "device='nonsense'"),
    (dict(seed=-1), ValueError, "seed == -1"),
    (dict(seed=1.5), TypeError, "seed must be an int"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD)
def test_bad_inputs_name_the_argument(kwargs, exc, match):
    args = dict(emb=EMB, known_idx=KNOWN, known_scores=SC, k=3) | kwargs
    with pytest.raises(exc, match=match):
        extrapolate(**args)


def test_evaluate_bad_inputs():
    with pytest.raises(ValueError, match=r"true.shape"):
        evaluate_extrapolation(np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match="pred contains NaN"):
        evaluate_extrapolation([np.nan, 1.0], [0.0, 1.0])
    with pytest.raises(TypeError, match="idx must be row ids"):
        evaluate_extrapolation(np.zeros(4), np.zeros(4), [0.5])
    with pytest.raises(ValueError, match=r"idx must lie in \[0, n\)"):
        evaluate_extrapolation(np.zeros(4), np.zeros(4), [4])


def test_public_names():
    assert d2fast.extrapolate is extrapolate
    assert d2fast.evaluate_extrapolation is evaluate_extrapolation
