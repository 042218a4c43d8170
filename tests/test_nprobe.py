"""nprobe='auto' (d2fast._nprobe): the sampled recall curve and the choice from it."""
from __future__ import annotations

import numpy as np
import pytest

import d2fast
from d2fast import _ivf, _nprobe, knn
from d2fast._threads import faiss_threads

from test_knn import clustered, recall


def _curves(X, part, k, pca=0):
    offsets, members = part.lists()
    space = _ivf._SearchSpace(X, part.centroids, False, pca)
    with faiss_threads() as threads:
        return _nprobe.recall_curves(X, False, part.metric == "cosine", space.rows, space.centroids, part.centroids,
                                     offsets, members, np.arange(X.shape[0]), part.assign, k,
                                     threads)


def _blobs(blobs: int, size: int, d: int, seed: int) -> np.ndarray:
    """Well separated clusters: with fewer lists than clusters, a list's centroid lies
    between clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(blobs, d)) * 4
    return (np.repeat(centres, size, axis=0) + rng.normal(size=(blobs * size, d))).astype(
        np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_curves_are_the_recall_of_the_sampled_queries(metric):
    """At every nprobe and pool, the curve equals the recall that ivf_knn gets on the
    sampled queries: a neighbour is found exactly when its list is probed."""
    cosine = metric == "cosine"
    X = np.random.default_rng(3).normal(size=(3000, 6)).astype(np.float32)  # no clusters
    X = knn.float32_rows(X, normalize=cosine)
    part = d2fast.ivf_partition(X, 40, metric=metric)
    curves, pairs = _curves(X, part, 6)
    assert list(curves) == [None]  # no wide pool below 40 lists
    curve = curves[None]
    q = _nprobe.sample(X.shape[0])
    assert pairs == q.size * 6 and curve.size == 40
    truth = knn.search_database(X, q, None, 6, cosine=cosine, method="exact")[0]
    assert 0 < curve[0] < curve[5] < 1 and curve[-1] == 1.0
    assert (np.diff(curve) >= 0).all()
    for p in (1, 2, 3, 5, 8, 40):
        ids = d2fast.ivf_knn(X, 6, part, nprobe=p, rows=q)[0]
        assert abs(curve[p - 1] - recall(ids, truth)) <= 1 / pairs, p


def test_a_wide_pool_finds_the_lists_of_split_clusters():
    X = _blobs(3200, 20, 64, seed=7)
    part = d2fast.ivf_partition(X, 2000)  # fewer lists than clusters (two-level k-means)
    curves, pairs = _curves(X, part, 8)
    assert list(curves) == [None, 128, 256, 512, 1024]
    q = _nprobe.sample(X.shape[0])
    truth = knn.search_database(X, q, None, 8, cosine=False, method="exact")[0]
    for pool, p in [(None, 2), (None, 4), (128, 2), (128, 4), (1024, 3)]:
        ids = d2fast.ivf_knn(X, 8, part, nprobe=p, rows=q, pool=pool)[0]
        assert abs(curves[pool][p - 1] - recall(ids, truth)) <= 1 / pairs, (pool, p)
    assert curves[128][3] > curves[None][3] + 0.005  # the default pool misses some lists
    got = d2fast.knn_graph(X, 8, knn="ivf", knn_params={"partition": part, "nprobe": "auto"})
    assert got.meta["knn_auto"]["pool"] == 128


@pytest.mark.parametrize("shift, cosine, subset", [(0.0, False, False), (300.0, False, False),
                                                 (0.0, True, False), (0.0, False, True)])
def test_sample_search_is_exact(shift, cosine, subset):
    """The sampled queries' neighbours, read list by list until the Voronoi bound proves
    the rest too far, are those of exact search (also far from the origin, where float32
    rounding is largest, and over a subset of the rows as database)."""
    X = knn.float32_rows(clustered(4000, 16, seed=9) + np.float32(shift), normalize=cosine)
    db = np.flatnonzero(np.random.default_rng(1).random(4000) < 0.6) if subset else None
    part = d2fast.ivf_partition(X if db is None else X[db], 60,
                                metric="cosine" if cosine else "euclidean")
    offsets, members = part.lists()
    members = members if db is None else db[members]
    q = np.arange(0, 4000, 17)
    with faiss_threads() as threads:
        got = _nprobe._exact_neighbours(X, False, cosine, q, part.centroids, offsets,
                                        members, 7, threads)
    want = knn.search_database(X, q, db, 7, cosine=cosine, method="exact")[0]
    np.testing.assert_array_equal(got, want)


def test_curve_with_pca_bounds_the_recall():
    X = clustered(3000, 24, seed=4)
    part = d2fast.ivf_partition(X, 30)
    curve = _curves(X, part, 5, pca=4)[0][None]
    q = _nprobe.sample(X.shape[0])
    truth = knn.search_database(X, q, None, 5, cosine=False, method="exact")[0]
    for p in (1, 3, 6):
        ids = d2fast.ivf_knn(X, 5, part, nprobe=p, rows=q, pca=4)[0]
        assert recall(ids, truth) <= curve[p - 1] + 1e-12


@pytest.mark.parametrize("target", [0.8, 0.95, 0.99, 1.0])
def test_auto_takes_the_least_costly_choice_sure_of_the_target(target):
    X = _blobs(1600, 20, 64, seed=8)
    part = d2fast.ivf_partition(X, 1000)
    curves, pairs = _curves(X, part, 10)
    offsets, members = part.lists()
    with faiss_threads() as threads:
        chosen = _nprobe.auto_nprobe(X, False, False, lambda ids: X[ids], part.centroids,
                                     part.centroids, offsets, members, np.arange(X.shape[0]),
                                     part.assign, 10, target, threads)
    p, pool, got = chosen["nprobe"], chosen["pool"], chosen["recall_sampled"]
    size = X.shape[0] / 1000
    choices = []
    for w, curve in curves.items():
        sure = curve - 2 * np.sqrt(curve * (1 - curve) / pairs)
        choices += [(q * size + (8 * q if w is None else w), q, w)
                    for q in range(1, curve.size + 1) if sure[q - 1] >= target]
    assert choices and min(choices, key=lambda c: c[0])[1:] == (p, pool)
    assert got == curves[pool][p - 1]


def test_auto_reaches_its_target_on_all_rows_and_records_its_choice():
    X = clustered(20000, 16, seed=6)
    exact = d2fast.knn_graph(X, 10, knn="exact", graph="directed")
    g = d2fast.knn_graph(X, 10, knn="ivf", graph="directed", knn_params={"nprobe": "auto"})
    chosen = g.meta["knn_auto"]
    assert g.meta["knn_params"]["nprobe"] == chosen["nprobe"] and 1 <= chosen["nprobe"] < 16
    assert g.meta["knn_params"]["pool"] == chosen["pool"]
    assert chosen["recall_target"] == 0.99 and chosen["queries_sampled"] == 256
    assert chosen["recall_sampled"] >= 0.99
    got = recall(g.indices.reshape(-1, 10), exact.indices.reshape(-1, 10))
    assert got >= 0.985
    # the recorded parameters run the same search; a prebuilt graph agrees with 'auto'
    params = {p: v for p, v in g.meta["knn_params"].items() if p != "partition"}
    again = d2fast.knn_graph(X, 10, knn="ivf", graph="directed", knn_params=params)
    np.testing.assert_array_equal(again.indices, g.indices)
    s = np.random.default_rng(0).random(20000)
    keep, info = d2fast.prune(X, s, 10, rate=0.5, graph=g, knn_params={"nprobe": "auto"},
                              return_info=True)
    assert info["knn_params"]["nprobe"] == chosen["nprobe"] and info["knn_auto"] == chosen
    with pytest.raises(ValueError, match="contradicts"):
        d2fast.prune(X, s, 10, rate=0.5, graph=g, knn_params={"nprobe": "auto", "recall": 0.9})
    lower = d2fast.knn_graph(X, 10, knn="ivf", knn_params={"nprobe": "auto", "recall": 0.8})
    assert lower.meta["knn_auto"]["nprobe"] < chosen["nprobe"]


@pytest.mark.parametrize("params, match", [
    ({"nprobe": "many"}, r"must be an int >= 1 or 'auto'"),
    ({"nprobe": "auto", "recall": 1.5}, r"must be a number in \(0, 1\]"),
    ({"nprobe": "auto", "recall": 0}, r"must be a number in \(0, 1\]"),
    ({"nprobe": "auto", "recall": "high"}, r"must be a number in \(0, 1\]"),
    ({"nprobe": 4, "recall": 0.9}, r"target of nprobe='auto', but nprobe == 4"),
    ({"nprobe": 4, "pool": 3}, r"pool'\] == 3 < nprobe == 4"),
    ({"pool": "wide"}, r"must be an int >= 1"),
])
def test_params_are_checked(params, match):
    X = clustered(500, 4)
    with pytest.raises(ValueError, match=match):
        d2fast.knn_graph(X, 3, knn="ivf", knn_params=params)


def test_ivf_knn_checks_nprobe_and_recall():
    X = clustered(500, 4)
    part = d2fast.ivf_partition(X, 5)
    with pytest.raises(ValueError, match="'auto'"):
        d2fast.ivf_knn(X, 3, part, nprobe="all")
    with pytest.raises(ValueError, match="0 < recall <= 1"):
        d2fast.ivf_knn(X, 3, part, nprobe="auto", recall=0.0)
    with pytest.raises(TypeError, match="real number"):
        d2fast.ivf_knn(X, 3, part, nprobe="auto", recall="0.9")
    ids, _ = d2fast.ivf_knn(X, 3, part, nprobe="auto", recall=1.0)
    exact = knn.search(np.ascontiguousarray(X), 3, cosine=False, method="exact")[0]
    assert recall(ids[_nprobe.sample(500)], exact[_nprobe.sample(500)]) == 1.0
