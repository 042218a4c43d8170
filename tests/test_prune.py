"""prune end to end: agreement across backends, kept counts, inputs of every kind."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import d2fast
from d2fast._ties import tie_keys
from d2fast.passing import auto_gamma_r

from conftest import assert_greedy_replay


def clustered(n: int = 600, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(10, d)) * 4
    emb = centers[rng.integers(0, 10, n)] + rng.normal(size=(n, d))
    return emb.astype(np.float32), rng.random(n)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("graph", ["union", "directed"])
def test_prune_backends_agree(metric, graph):
    emb, scores = clustered()
    kw = dict(k=5, rate=0.7, metric=metric, graph=graph, gamma_f=0.5)
    want = d2fast.prune(emb, scores, backend="numpy", **kw)
    assert want.dtype == np.int64 and want.shape == (180,)
    assert len(np.unique(want)) == want.size
    for backend in ("cpp", "numba", "auto"):
        np.testing.assert_array_equal(d2fast.prune(emb, scores, backend=backend, **kw), want)


def test_prune_is_knn_forward_select():
    emb, scores = clustered(seed=1)
    g = d2fast.knn_graph(emb, 7)
    passed = d2fast.forward(g, scores, gamma_f=0.3, mode="product")
    want = d2fast.select(g, passed, 250, gamma_r=2.0, reverse="absolute")
    got = d2fast.prune(emb, scores, 7, n_keep=250, gamma_f=0.3, gamma_r=2.0, mode="product",
                       reverse="absolute", hard_prune=0.0)
    np.testing.assert_array_equal(got, want)
    assert_greedy_replay(g, passed, got, 2.0, True)


def test_ties_do_not_follow_row_order():
    """Forgetting-like scores (most rows 0) on rows sorted by class, as ImageFolder lists
    them: the kept rows spread over every class, where ties to the lower row id keep the
    first classes only; each pick is the current maximum, ties to the lower tie key; every
    backend agrees."""
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(10), 60)
    emb = (rng.normal(size=(10, 8))[labels] * 4 + rng.normal(size=(600, 8))).astype(np.float32)
    scores = np.zeros(600)
    scores[rng.choice(600, 10, replace=False)] = rng.integers(1, 4, 10)
    keep, info = d2fast.prune(emb, scores, 5, rate=0.7, hard_prune=0.0, return_info=True)
    assert np.bincount(labels[keep], minlength=10).min() >= 9  # 18 a class on average
    g = d2fast.knn_graph(emb, 5)
    passed = d2fast.forward(g, scores)
    assert_greedy_replay(g, passed, keep, info["gamma_r"], False, keys=tie_keys(np.arange(600)))
    by_row = d2fast.select(g, passed, 180, gamma_r=info["gamma_r"])  # ties to the lower id
    assert np.bincount(labels[by_row], minlength=10).min() == 0  # what the test guards
    for backend in ("numpy", "numba", "cpp"):
        np.testing.assert_array_equal(
            d2fast.prune(emb, scores, 5, rate=0.7, hard_prune=0.0, backend=backend), keep)


def test_prune_prefers_diverse_hard_examples():
    """Two tight clusters, scores highest in cluster A: D2 still takes cluster B early."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(100, 2)) * 0.01
    b = rng.normal(size=(100, 2)) * 0.01 + 10
    scores = np.r_[np.full(100, 1.0), np.full(100, 0.9)] + rng.random(200) * 1e-3
    keep = d2fast.prune(np.r_[a, b], scores, k=5, n_keep=10, gamma_r=0.0, hard_prune=0.0)
    assert (keep >= 100).any() and (keep < 100).any()
    topk = np.argsort(-scores)[:10]
    assert (topk < 100).all()  # whereas plain top-k stays in cluster A


@pytest.mark.parametrize("n,rate,want", [(10, 0.9, 1), (10, 0.7, 3), (10, 0.0, 10),
                                         (3, 0.5, 1), (1000, 0.3, 700), (100, 0.29, 71),
                                         (7, 0.99, 0)])
def test_rate_arithmetic(n, rate, want):
    emb, scores = clustered(n, 3)
    assert d2fast.prune(emb, scores, k=1, rate=rate).size == want


def test_n_keep_overrides_rate():
    emb, scores = clustered(50, 3)
    assert d2fast.prune(emb, scores, k=2, rate=0.9, n_keep=17).size == 17
    assert d2fast.prune(emb, scores, k=2, n_keep=50).size == 50


def test_inputs_of_every_kind_agree(tmp_path):
    torch = pytest.importorskip("torch")  # the optional extra; CI installs it
    emb, scores = clustered(300, 6, seed=3)
    want = d2fast.prune(emb, scores, k=4, rate=0.5)
    np.save(tmp_path / "emb.npy", emb)
    mm = np.load(tmp_path / "emb.npy", mmap_mode="r")
    for e, s in [(mm, scores), (torch.from_numpy(emb), torch.from_numpy(scores)),
                 (emb.tolist(), scores.tolist()), (emb[::1, :], scores.astype(np.float32)
                                                   .astype(np.float64))]:
        np.testing.assert_array_equal(d2fast.prune(e, s, k=4, rate=0.5), want)


def test_prune_does_not_mutate_inputs():
    emb, scores = clustered(200, 4)
    e0, s0 = emb.copy(), scores.copy()
    d2fast.prune(emb, scores, rate=0.5, metric="cosine")
    np.testing.assert_array_equal(emb, e0)
    np.testing.assert_array_equal(scores, s0)


def test_negative_scores_like_aum():
    emb, scores = clustered(400, 5, seed=4)
    aum = scores * 4 - 3  # mostly negative
    for reverse in ("weighted", "absolute"):
        want = d2fast.prune(emb, aum, rate=0.2, reverse=reverse, backend="numpy")
        for backend in ("cpp", "numba"):
            np.testing.assert_array_equal(
                d2fast.prune(emb, aum, rate=0.2, reverse=reverse, backend=backend), want)


def test_progress_bar_is_opt_in(capsys):
    emb, scores = clustered(100, 3)
    d2fast.prune(emb, scores, rate=0.5)
    assert "kNN search" not in capsys.readouterr().err
    d2fast.prune(emb, scores, rate=0.5, progress=True)
    assert "kNN search" in capsys.readouterr().err


def test_hard_prune_drops_the_hardest_first():
    emb, scores = clustered(300, 4, seed=5)
    keep = d2fast.prune(emb, scores, rate=0.5, hard_prune=0.1)
    hardest = np.argsort(-scores, kind="stable")[:30]
    assert keep.size == 150 and not np.isin(hardest, keep).any()
    # the same as D2 on the remaining rows, mapped back to their ids
    rest = np.setdiff1d(np.arange(300), hardest)
    want = rest[d2fast.prune(emb[rest], scores[rest], n_keep=150, hard_prune=0.0)]
    np.testing.assert_array_equal(keep, want)
    with pytest.raises(ValueError, match="fewer than n_keep=150 remain"):
        d2fast.prune(emb, scores, rate=0.5, hard_prune=0.6)
    with pytest.raises(ValueError, match="hard_prune == 1.0"):
        d2fast.prune(emb, scores, rate=0.5, hard_prune=1.0)


def test_auto_without_labels_reads_the_atypicality_of_a_fixed_sample(tmp_path):
    from d2fast.budgets import (ATYPICAL_ROWS, atypicality_rows, hard_task_floor,
                                sample_atypicality)

    rng = np.random.default_rng(9)
    n = ATYPICAL_ROWS + 2000
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    far = np.linalg.norm(emb, axis=1)
    rows = atypicality_rows(n)
    for scores, hard in ((far + 0.1 * rng.random(n), False), (rng.random(n), True)):
        _, info = d2fast.prune(emb, scores, rate=0.3, return_info=True)
        want = sample_atypicality(emb[rows], scores[rows], 5, "euclidean")[0]
        assert info["hard_prune_atypicality"] == want
        assert (hard_task_floor(want) > 0.3) == hard  # random scores: about 1/2
        assert ("hard task" in info["hard_prune_reason"]) == hard
        assert info["hard_pruned"] == (int(0.3 * n) if hard else 0)  # the floor: all 3600
        path = tmp_path / "emb.npy"  # a memmap reads the same sample
        np.save(path, emb)
        _, mapped = d2fast.prune(np.load(path, mmap_mode="r"), scores, rate=0.3,
                                 return_info=True)
        assert mapped["hard_prune_atypicality"] == want
    labels = (emb[:, 0] > 0).astype(int)  # with labels the label check decides instead
    _, info = d2fast.prune(emb, scores, rate=0.3, labels=labels, return_info=True)
    assert info["hard_prune_atypicality"] is None


def test_auto_reuses_the_atypicality_graph_when_nothing_is_hard_pruned(monkeypatch):
    import sys

    import d2fast.budgets
    from d2fast.graph import graph_of_rows

    rng = np.random.default_rng(3)
    emb = rng.normal(size=(800, 5)).astype(np.float32)
    scores = np.linalg.norm(emb, axis=1) + 0.1 * rng.random(800)  # atypical = hard
    want = d2fast.prune(emb, scores, rate=0.5, hard_prune=0.0)
    calls = []

    def counted(*args, **kw):
        calls.append(kw["knn"])
        return graph_of_rows(*args, **kw)

    monkeypatch.setattr(d2fast.budgets, "graph_of_rows", counted)
    monkeypatch.setattr(sys.modules["d2fast.prune"], "graph_of_rows", counted)
    keep, info = d2fast.prune(emb, scores, rate=0.5, return_info=True)
    assert info["hard_pruned"] == 0 and calls == ["exact"]  # one graph, not two
    np.testing.assert_array_equal(keep, want)
    calls.clear()
    d2fast.prune(emb, scores, rate=0.5, knn="hnsw")  # another search: its own graph
    assert calls == ["exact", "hnsw"]
    calls.clear()
    keep, info = d2fast.prune(emb, scores, rate=0.8, return_info=True)
    assert info["hard_pruned"] == 0 and calls == ["exact"]  # no hard row typical: no drop
    calls.clear()
    keep, info = d2fast.prune(emb, -scores, rate=0.8, return_info=True)
    assert info["hard_pruned"] > 0 and calls == ["exact", "auto"]  # a hard task: the pool's


def test_typical_share_scales_the_rate_term_without_labels_only():
    from conftest import typical_by_hand

    rng = np.random.default_rng(5)
    emb = rng.normal(size=(600, 4)).astype(np.float32)
    scores = np.linalg.norm(emb, axis=1)  # the hardest rows are the atypical ones
    top = np.quantile(scores, [0.8, 1.0])
    scores[rng.permutation(600)[:60]] = rng.uniform(*top, 60)  # ... but for 60 random rows
    # made as hard as the hardest fifth (about half of them typical, as label noise)
    flags = typical_by_hand(emb, 5)
    share = flags[np.argsort(-scores)[:90]].mean()  # the rate term's (480 - 300) / 2 rows
    keep, info = d2fast.prune(emb, scores, rate=0.8, return_info=True)
    assert "no outlier mode" in info["hard_prune_reason"]
    assert info["hard_pruned"] == int(90 * min(1.0, 2 * share)) and 0 < share < 0.5
    assert f"typical share {share:.3f}" in info["hard_prune_reason"]
    labels = (emb[:, 0] > 0).astype(int)  # two classes the embedding separates
    keep, info = d2fast.prune(emb, scores, rate=0.8, labels=labels, return_info=True)
    assert "typical share" not in info["hard_prune_reason"]  # the label check instead


@pytest.mark.parametrize("budget", ["proportional", "uniform"])
def test_class_balanced_budgets(budget):
    labels = np.repeat([0, 1, 2], [50, 100, 250])
    emb, scores = clustered(400, 4, seed=6)
    keep = d2fast.prune(emb, scores, rate=0.7, labels=labels, class_budget=budget,
                        hard_prune=0.0)
    assert keep.size == 120 and np.unique(keep).size == 120
    counts = np.bincount(labels[keep], minlength=3)
    assert counts.tolist() == ([15, 30, 75] if budget == "proportional" else [40, 40, 40])
    # each class's picks are D2 on that class alone, in order
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        want = rows[d2fast.prune(emb[rows], scores[rows], n_keep=int(counts[c]),
                                 hard_prune=0.0)]
        np.testing.assert_array_equal(keep[labels[keep] == c], want)
    # balanced prefixes: the first 12 picks hold every class
    assert set(labels[keep[:12]]) == {0, 1, 2}


def test_uniform_budget_caps_small_classes():
    labels = np.repeat([0, 1, 2], [3, 40, 57])
    emb, scores = clustered(100, 3, seed=7)
    with pytest.warns(UserWarning, match="class size - 1"):  # a class of <= k rows
        keep = d2fast.prune(emb, scores, n_keep=60, labels=labels, class_budget="uniform",
                            hard_prune=0.0)  # no label check: all three classes whole
    assert np.bincount(labels[keep]).tolist() == [3, 29, 28]


def test_labels_are_checked():
    emb, scores = clustered(50, 3)
    with pytest.raises(ValueError, match=r"labels.shape == \(49,\), expected \(50,\)"):
        d2fast.prune(emb, scores, labels=np.zeros(49, int))
    with pytest.raises(TypeError, match="labels must be class ids"):
        d2fast.prune(emb, scores, labels=np.full(50, 0.5))
    with pytest.raises(ValueError, match="class_budget='equal', must be one of"):
        d2fast.prune(emb, scores, labels=np.zeros(50, int), class_budget="equal")


def test_k_above_a_class_size_warns_once_naming_the_class():
    rng = np.random.default_rng(0)
    emb, scores = rng.normal(size=(60, 4)), rng.random(60)
    labels = np.array(["big"] * 55 + ["tiny"] * 5)
    with pytest.warns(UserWarning, match=r"k=5 is not below the size of class\(es\) tiny ") as rec:
        d2fast.prune(emb, scores, k=5, rate=0.5, labels=labels,
                     class_budget="proportional", hard_prune=0)
    assert len([w for w in rec if "class(es)" in str(w.message)]) == 1
    assert rec[0].filename == __file__  # points at the caller, not at prune.py
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d2fast.prune(emb, scores, k=4, rate=0.5, labels=labels,
                     class_budget="proportional", hard_prune=0)


def test_info_reports_the_resolved_choices():
    from d2fast.budgets import resolve_hard_prune, sample_atypicality

    emb, scores = clustered(400, 6, seed=8)
    keep, info = d2fast.prune(emb, scores, rate=0.7, return_info=True)
    np.testing.assert_array_equal(keep, d2fast.prune(emb, scores, rate=0.7))
    assert {k: info[k] for k in ("n", "n_keep", "graph_source", "metric", "normalization",
                                 "graph", "k", "knn", "knn_params", "backend")} == {
        "n": 400, "n_keep": 120, "graph_source": "built", "metric": "euclidean",
        "normalization": "none", "graph": "union", "k": 5, "knn": "exact", "knn_params": {},
        "backend": d2fast.backends()[0]}
    atypical = sample_atypicality(emb, scores, 5, "euclidean")[0]  # all 400 rows: no sample
    assert info["hard_prune_atypicality"] == atypical
    assert (info["hard_prune"], info["hard_prune_reason"]) == resolve_hard_prune(
        scores, "auto", 120, atypical)
    assert info["hard_pruned"] == 400 - info["classes"][0]["rows"] > 0  # auto: rate term
    assert info["dedup_groups"] is None
    assert set(info["timings_s"]) == {"knn", "dedup", "forward", "select", "total"}
    assert all(t >= 0 for t in info["timings_s"].values())
    assert info["timings_s"]["total"] >= info["timings_s"]["knn"] > 0
    _, info = d2fast.prune(emb, scores, 4, metric="cosine", knn="ivf",
                           knn_params={"nprobe": 3}, graph="directed", backend="numpy",
                           hard_prune=0.1, return_info=True)
    assert (info["metric"], info["normalization"], info["graph"], info["k"]) == (
        "cosine", "l2", "directed", 4)
    assert info["knn"] == "ivf" and info["backend"] == "numpy" and info["hard_pruned"] == 40
    assert info["hard_prune_atypicality"] is None  # a given hard_prune: not computed
    assert info["knn_params"] == {"nlist": d2fast.knn.default_nlist(360), "nprobe": 3,
                                  "pool": None, "candidates": 13, "pca": 0, "partition": None}
    assert info["knn_auto"] is None


def test_info_per_class_with_label_names_and_lowered_k():
    emb, scores = clustered(100, 3, seed=9)
    labels = np.array(["cat"] * 60 + ["dog"] * 36 + ["emu"] * 4)
    with pytest.warns(UserWarning, match="emu"):
        _, info = d2fast.prune(emb, scores, rate=0.5, labels=labels,
                               class_budget="proportional", hard_prune=0,
                               return_info=True)
    assert [(c["label"], c["rows"], c["n_keep"], c["k"]) for c in info["classes"]] == [
        ("cat", 60, 30, 5), ("dog", 36, 18, 5), ("emu", 4, 2, 3)]


def test_prebuilt_graph_is_reused():
    emb, scores = clustered(500, 6, seed=10)
    g = d2fast.knn_graph(emb, 6, metric="cosine", graph="directed")
    want = d2fast.prune(emb, scores, 6, rate=0.6, metric="cosine", graph="directed",
                        hard_prune=0)
    keep, info = d2fast.prune(emb, scores, rate=0.6, graph=g, hard_prune=0, return_info=True)
    np.testing.assert_array_equal(keep, want)
    assert (info["graph_source"], info["k"], info["metric"], info["graph"]) == (
        "given", 6, "cosine", "directed")
    np.testing.assert_array_equal(  # options that agree with the graph are fine
        d2fast.prune(emb, scores, 6, rate=0.6, graph=g, metric="cosine", knn="exact",
                     hard_prune=0), want)


def test_prebuilt_graph_gives_auto_its_k_and_metric():
    from d2fast.budgets import sample_atypicality

    emb, scores = clustered(500, 6, seed=10)
    g = d2fast.knn_graph(emb, 6, metric="cosine", graph="directed")
    want = d2fast.prune(emb, scores, 6, rate=0.6, metric="cosine", graph="directed",
                        return_info=True)[1]["hard_prune_atypicality"]
    _, info = d2fast.prune(emb, scores, rate=0.6, graph=g, return_info=True)
    assert info["hard_prune_atypicality"] == want == sample_atypicality(emb, scores, 6,
                                                                        "cosine")[0]
    bare = d2fast.Graph(g.indptr, g.indices, g.distances)  # no meta: k=5, euclidean
    _, info = d2fast.prune(emb, scores, rate=0.6, graph=bare, return_info=True)
    assert info["hard_prune_atypicality"] == sample_atypicality(emb, scores, 5,
                                                                "euclidean")[0]


def test_prebuilt_graph_with_labels_and_hard_prune_uses_induced_subgraphs():
    from d2fast.budgets import class_budgets, merge_balanced

    emb, scores = clustered(400, 5, seed=11)
    labels = np.repeat([3, 7], [150, 250])
    g = d2fast.knn_graph(emb, 8)
    keep = d2fast.prune(emb, scores, rate=0.5, graph=g, labels=labels,
                        class_budget="proportional", hard_prune=0.1)
    hardest = np.argsort(-scores, kind="stable")[:40]
    classes = [np.setdiff1d(np.flatnonzero(labels == c), hardest) for c in (3, 7)]
    budgets = class_budgets([rows.size for rows in classes], 200, "proportional")
    picks = []
    for rows, budget in zip(classes, budgets):
        sub = g.subgraph(rows)
        assert sub.nnz < g.subgraph(np.flatnonzero(labels == labels[rows[0]])).nnz
        gamma = auto_gamma_r(sub, budget)[0]  # gamma_r='auto': of each class's subgraph
        picks.append(rows[d2fast.select(sub, d2fast.forward(sub, scores[rows]), budget,
                                        gamma_r=gamma)])
    np.testing.assert_array_equal(keep, merge_balanced(picks))


@pytest.mark.parametrize("kw, err, match", [
    (dict(k=5), ValueError, "graph was built with k=8 but k=5 was given"),
    (dict(metric="cosine"), ValueError, "metric='euclidean' but metric='cosine'"),
    (dict(knn="ivf"), ValueError, "knn='exact' but knn='ivf'"),
    (dict(knn_params={"nprobe": 2}), ValueError, "contradicts knn_params"),
])
def test_prebuilt_graph_that_contradicts_the_options(kw, err, match):
    emb, scores = clustered(100, 3)
    g = d2fast.knn_graph(emb, 8)
    with pytest.raises(err, match=match):
        d2fast.prune(emb, scores, graph=g, **kw)
    with pytest.raises(ValueError, match="graph.n == 100, expected 99 nodes like emb"):
        d2fast.prune(emb[:99], scores[:99], graph=g)
    with pytest.raises(TypeError, match="graph must be a graph kind"):
        d2fast.prune(emb, scores, graph=g.to_scipy())
    with pytest.raises(ValueError, match="graph='mutual', must be one of"):
        d2fast.prune(emb, scores, graph="mutual")


def test_duplicates_warn_and_dedup_keeps_distinct_rows():
    """The issue's case: every row present twice."""
    emb, scores = clustered(1000, 8, seed=12)
    emb2, scores2 = np.r_[emb, emb], np.r_[scores, scores]
    with pytest.warns(UserWarning, match="2000 rows have a neighbour at distance 0") as rec:
        keep = d2fast.prune(emb2, scores2, rate=0.7, hard_prune=0, gamma_r=0.1)
    assert len(rec) == 1 and rec[0].filename == __file__
    assert np.unique(keep % 1000).size < keep.size  # D2 alone keeps copies of kept rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keep, info = d2fast.prune(emb2, scores2, rate=0.7, hard_prune=0, dedup=0.0,
                                  return_info=True)
    assert keep.size == 600 and (keep < 1000).all()  # distinct: the lower id of each pair
    np.testing.assert_array_equal(info["dedup_groups"], np.r_[np.arange(1000), np.arange(1000)])
    assert info["dedup_removed"] == 1000 and info["zero_distance_rows"] == 2000
    # D2 on the doubled data's graph cut down to the rows kept by dedup
    sub = d2fast.knn_graph(emb2, 5).subgraph(np.arange(1000))
    np.testing.assert_array_equal(keep, d2fast.select(sub, d2fast.forward(sub, scores), 600,
                                                      gamma_r=auto_gamma_r(sub, 600)[0]))


def test_dedup_groups_are_components_of_close_edges():
    emb = np.array([[0.0, 0], [0.05, 0], [0.1, 0], [5, 5], [5, 5.5], [9, 0], [9, 0.01]])
    scores = np.arange(7.0)
    keep, info = d2fast.prune(emb, scores, 2, n_keep=3, dedup=0.06, hard_prune=0,
                              return_info=True)
    # 0-1-2 chained (0.1 apart end to end), 3 and 4 are 0.5 apart, 5-6 joined
    np.testing.assert_array_equal(info["dedup_groups"], [0, 0, 0, 3, 4, 5, 5])
    assert keep.size == 3 and np.unique(keep).size == 3 and set(keep.tolist()) <= {0, 3, 4, 5}
    assert info["dedup_removed"] == 3
    with pytest.raises(ValueError, match="dedup=0.06 leaves 4 rows, fewer than n_keep=5"):
        d2fast.prune(emb, scores, 2, n_keep=5, dedup=0.06, hard_prune=0)
    with pytest.raises(ValueError, match="dedup == -1.0"):
        d2fast.prune(emb, scores, 2, dedup=-1.0)


def test_underflow_warning_names_the_class():
    rng = np.random.default_rng(13)
    emb = np.r_[rng.normal(size=(60, 4)), rng.normal(size=(3, 4)) * 100]
    scores = rng.random(63)
    labels = np.array(["bird"] * 60 + ["tiny"] * 3)
    with pytest.warns(UserWarning) as rec:
        d2fast.prune(emb, scores, 3, rate=0.5, labels=labels,
                     class_budget="proportional", hard_prune=0)
    [w] = [w for w in rec if "underflow" in str(w.message)]
    assert "forward weights underflow in class 'tiny' (3 rows, not more than k=3: its graph " \
           "uses k=2, so each row's neighbours are the class's other rows" in str(w.message)
    assert "'bird'" not in str(w.message) and w.filename == __file__
    with pytest.warns(UserWarning, match=r"underflow: median exp\(-gamma_f \* d\)") as rec:
        d2fast.prune(emb * 1000, scores, 2, rate=0.5, hard_prune=0)  # no labels
    assert rec[0].filename == __file__


def test_progress_with_labels_is_one_bar(monkeypatch):
    """prune(labels=..., progress=True): one tqdm bar over the classes, none per class."""
    import tqdm.auto

    made = []

    class Counted(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if not self.disable:  # a bar shown
                made.append(kwargs.get("desc"))

    monkeypatch.setattr(tqdm.auto, "tqdm", Counted)
    rng = np.random.default_rng(0)
    emb, scores = rng.normal(size=(300, 4)), rng.random(300)
    labels = np.repeat(["cat", "dog", "eel"], 100)
    keep = d2fast.prune(emb, scores, k=5, rate=0.5, labels=labels,
                        class_budget="proportional", progress=True)
    assert made == ["kNN search", "prune"] and keep.size == 150  # the label check's graph
    made.clear()
    d2fast.prune(emb, scores, k=5, rate=0.5, labels=labels, class_budget="proportional",
                 hard_prune=0.0, progress=True)  # no label check: one bar over the classes
    assert made == ["prune"]
    made.clear()
    d2fast.prune(emb, scores, k=5, rate=0.5, progress=True)  # no labels: the kNN bar
    assert made == ["kNN search"]


def test_gamma_r_auto_is_the_default_computed_per_class_and_reported():
    emb, scores = clustered(600, 6, seed=21)
    keep, info = d2fast.prune(emb, scores, rate=0.5, hard_prune=0.0, return_info=True)
    g = d2fast.knn_graph(emb, 5)
    gamma, why = auto_gamma_r(g, 300)
    assert info["gamma_r"] == gamma and info["gamma_r_reason"] == why
    np.testing.assert_array_equal(keep, d2fast.prune(emb, scores, rate=0.5, hard_prune=0.0,
                                                     gamma_r=gamma))
    labels = np.repeat([0, 1, 2], [300, 200, 100])
    _, info = d2fast.prune(emb, scores, rate=0.5, labels=labels,
                           class_budget="proportional", return_info=True)
    assert info["gamma_r"] is None and info["gamma_r_reason"].startswith("auto per class")
    assert all(c["gamma_r"] > 0 and c["gamma_r_reason"].startswith("auto: ")
               for c in info["classes"])
    _, info = d2fast.prune(emb, scores, rate=0.5, gamma_r=0.1, labels=labels,
                           class_budget="proportional",
                           return_info=True)
    assert (info["gamma_r"], info["gamma_r_reason"]) == (0.1, "given: 0.1")
    assert {c["gamma_r"] for c in info["classes"]} == {0.1}
    _, info = d2fast.prune(emb, scores, n_keep=0, return_info=True)  # no selection, no graph
    assert info["gamma_r"] is None and info["gamma_r_reason"].startswith("auto: no graph")
    with pytest.raises(ValueError, match="gamma_r must be a float >= 0 or 'auto'"):
        d2fast.prune(emb, scores, gamma_r="fixed")
    with pytest.raises(ValueError, match="gamma_r == -1.0"):
        d2fast.prune(emb, scores, gamma_r=-1)


# -- hard_prune="auto" with labels: the label check -------------------------------------------

def noisy_labels(n=600, seed=4):
    """Clustered rows whose label is their cluster, 20 % flipped (harder on average);
    returns emb, scores, labels, the true labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, 8)) * 4
    truth = rng.integers(0, 6, n)
    emb = (centers[truth] + rng.normal(size=(n, 8))).astype(np.float32)
    labels = truth.copy()
    flip = rng.random(n) < 0.2
    labels[flip] = (labels[flip] + rng.integers(1, 6, flip.sum())) % 6
    scores = rng.random(n) + 0.3 * flip  # not a separate mode
    return emb, scores, labels, truth


def checked_by_hand(emb, scores, labels, rate, graph=None):
    """The label check's pool and scores, composed from the budgets module."""
    from d2fast import budgets

    n = scores.size
    n_keep = int(round((1 - rate) * n))
    beta, _ = budgets.resolve_hard_prune(scores, "auto", n_keep)
    pool = budgets.hard_prune_pool(scores, beta, n_keep)
    g = d2fast.knn_graph(emb, 5) if graph is None else graph
    return budgets.label_check(g, labels, scores, pool, n_keep)[:2] + (n_keep,)


@pytest.mark.parametrize("rate", [0.7, 0.9])
def test_label_check_with_one_graph_is_d2_on_the_checked_pool(rate):
    emb, scores, labels, truth = noisy_labels()
    given = scores.copy()
    pool, checked, n_keep = checked_by_hand(emb, scores, labels, rate)
    keep, info = d2fast.prune(emb, scores, rate=rate, labels=labels, class_budget=None,
                              return_info=True)
    np.testing.assert_array_equal(keep, pool[d2fast.prune(emb[pool], checked[pool],
                                                          n_keep=n_keep, hard_prune=0.0)])
    np.testing.assert_array_equal(scores, given)  # the caller's scores are not changed
    assert 0 < info["hard_prune_rescued"] < int(info["hard_prune"] * 600)
    assert info["hard_pruned"] == 600 - pool.size
    assert "label check:" in info["hard_prune_reason"]
    assert len(info["classes"]) == 1 and info["classes"][0]["label"] is None
    flipped = labels != truth  # 20 % of the rows
    dropped = np.setdiff1d(np.arange(600), pool)  # the check drops mostly flipped rows
    assert dropped.size and np.mean(flipped[dropped]) > 0.6
    rescued = np.flatnonzero(checked != scores)  # and rescues clean ones
    assert rescued.size == info["hard_prune_rescued"] and not flipped[rescued].any()


def test_label_check_with_class_budgets_is_per_class_d2_on_the_checked_pool():
    emb, scores, labels, _ = noisy_labels(seed=5)
    pool, checked, n_keep = checked_by_hand(emb, scores, labels, 0.9)
    keep, info = d2fast.prune(emb, scores, rate=0.9, labels=labels, class_budget="uniform",
                              return_info=True)
    np.testing.assert_array_equal(keep, pool[d2fast.prune(
        emb[pool], checked[pool], n_keep=n_keep, hard_prune=0.0, labels=labels[pool],
        class_budget="uniform")])
    assert info["hard_prune_rescued"] > 0 and len(info["classes"]) == 6


def test_label_check_reads_a_prebuilt_graph():
    emb, scores, labels, _ = noisy_labels(seed=6)
    g = d2fast.knn_graph(emb, 4, graph="directed")
    pool, checked, n_keep = checked_by_hand(emb, scores, labels, 0.8, graph=g)
    keep = d2fast.prune(emb, scores, rate=0.8, labels=labels, class_budget=None, graph=g)
    np.testing.assert_array_equal(keep, pool[d2fast.prune(
        emb[pool], checked[pool], n_keep=n_keep, hard_prune=0.0, graph=g.subgraph(pool))])


@pytest.mark.parametrize("rate", [0.0, 0.9])
def test_label_check_changes_nothing_with_nothing_to_check(rate):
    emb, _, labels, _ = noisy_labels(seed=7)
    s = np.full(600, 1.0) if rate else np.random.default_rng(0).random(600)
    keep, info = d2fast.prune(emb, s, rate=rate, labels=labels, return_info=True)
    np.testing.assert_array_equal(keep, d2fast.prune(emb, s, rate=rate))
    assert info["hard_prune_rescued"] == 0 and "label check" not in info["hard_prune_reason"]


def test_label_check_at_low_rates_drops_only_rows_among_easy_rows_of_another_class():
    emb, scores, labels, truth = noisy_labels(seed=8)
    keep, info = d2fast.prune(emb, scores, rate=0.3, labels=labels, return_info=True)
    assert info["hard_prune"] == 0.0 and info["hard_prune_rescued"] == 0  # no rate term
    assert "disputed rows of the pool dropped, hardest first" in info["hard_prune_reason"]
    dropped = np.setdiff1d(np.arange(600), keep)
    assert info["hard_pruned"] > 0
    pool, _, _ = checked_by_hand(emb, scores, labels, 0.3)
    gone = np.setdiff1d(np.arange(600), pool)
    assert gone.size == info["hard_pruned"] and not np.isin(gone, keep).any()
    assert np.mean(labels[gone] != truth[gone]) > 0.8  # mostly flipped rows


def test_labels_only_for_the_check_need_hard_prune_auto():
    emb, scores, labels, _ = noisy_labels()
    with pytest.raises(ValueError, match="labels without class_budget serve only "
                       "hard_prune='auto'.*hard_prune=0.1: pass class_budget="):
        d2fast.prune(emb, scores, rate=0.9, labels=labels, hard_prune=0.1)
    info = d2fast.prune(emb, scores, rate=0.9, labels=labels, hard_prune=0.1,
                        class_budget="proportional", return_info=True)[1]
    assert info["hard_prune_rescued"] == 0 and info["hard_pruned"] == 60  # as given
    without = d2fast.prune(emb, scores, rate=0.9, class_budget=None, return_info=True)[1]
    assert without["hard_prune_rescued"] == 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rate", [0.3, 0.6, 0.8, 0.95])
def test_label_check_drops_exactly_the_rule_s_rows(seed, rate):
    """An independent, loop-by-loop reading of the rule: where fewer than half of the rows
    have a label that at least half of their neighbours share (a hard task), the rate term
    starts at rate 0 and drops at least (1 - a / 0.2) / 2 of the rows (a: Spearman of score
    and mean neighbour distance); of the rows the hard prune drops (outlier mode and rate
    term), those whose label all their graph neighbours share are rescued; then, hardest
    first, the pool's rows whose label fewer than half of their neighbours share and whose
    neighbours of other labels have a median score at or below the median score are
    dropped while the drop budget lasts; nothing else."""
    from d2fast.mixture import high_mode

    emb, scores, labels, _ = noisy_labels(n=400, seed=seed)
    if seed % 2:  # a separate mode of 40 high scores, as mislabelled rows make
        scores = scores.copy()
        scores[::10] = 5 + 0.3 * np.random.default_rng(seed).normal(size=40)
    if seed == 2:  # forgetting-like: mostly 0, so the median is the minimum
        scores = np.floor(scores * 3) * (np.random.default_rng(seed).random(400) < 0.3)
    if seed == 4:  # labels the embedding does not separate: a hard task
        labels = np.random.default_rng(seed).integers(0, 6, 400)
    keep, info = d2fast.prune(emb, scores, rate=rate, labels=labels, return_info=True)
    n, n_keep = 400, keep.size
    g = d2fast.knn_graph(emb, 5)
    order = sorted(range(n), key=lambda i: (-scores[i], tie_keys(np.array([i]))[0]))
    mode_drop = min(high_mode(scores).count, n - n_keep)
    pruned = max(mode_drop, min(int(max(0.0, (n - n_keep) - 0.5 * n) * 0.5), n - n_keep))
    shared = [2 * sum(labels[j] == labels[i] for j in g.indices[g.indptr[i]:g.indptr[i + 1]])
              >= g.indptr[i + 1] - g.indptr[i] for i in range(n)]
    hard_task = sum(shared) < 0.5 * n
    assert hard_task == (seed == 4) and hard_task == ("hard task" in info["hard_prune_reason"])
    if hard_task:  # the rate term from rate 0, at least (1 - a / 0.2) / 2 of the rows
        from scipy.stats import spearmanr

        far = [np.mean(g.distances[g.indptr[i]:g.indptr[i + 1]]) for i in range(n)]
        a = spearmanr(scores, far)[0]
        floor = 0.0 if a >= 0.2 else 0.5 * min(1.0, 1.0 - a / 0.2)
        pruned = min(n - n_keep, max(pruned, int((n - n_keep) * 0.5), int(n * floor)))
        assert f"hardness-atypicality {a:.3f}" in info["hard_prune_reason"]
    pool, rescued, dropped = n - pruned, 0, set()
    for i in order[:pruned]:
        near = g.indices[g.indptr[i]:g.indptr[i + 1]]
        if all(labels[j] == labels[i] for j in near):
            rescued += 1
        else:
            dropped.add(i)
    pool += rescued
    for i in order[pruned:]:
        near = g.indices[g.indptr[i]:g.indptr[i + 1]]
        other = [j for j in near if labels[j] != labels[i]]
        if pool > n_keep and 2 * (len(near) - len(other)) < len(near) and \
                np.median(scores[other]) <= np.median(scores):
            dropped.add(i)
            pool -= 1
    assert info["hard_pruned"] == len(dropped) and not dropped & set(keep.tolist())
    assert info["hard_prune_rescued"] == rescued
