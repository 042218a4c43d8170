"""Every bad input of SPEC 1 gets a TypeError/ValueError naming the argument."""
from __future__ import annotations

import numpy as np
import pytest

import d2fast
from d2fast import Graph

EMB = np.random.default_rng(0).normal(size=(20, 3))
SCORES = np.random.default_rng(1).random(20)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(emb=EMB[:, 0]), ValueError, r"emb.shape == \(20,\), expected 2-D"),
    (dict(emb=np.empty((0, 3))), ValueError, "emb.shape == \\(0, 3\\)"),
    (dict(emb=np.empty((20, 0))), ValueError, "emb.shape == \\(20, 0\\)"),
    (dict(emb=np.where(np.eye(20, 3) > 0, np.nan, EMB)), ValueError, "emb contains NaN or inf"),
    (dict(emb=np.where(np.eye(20, 3) > 0, np.inf, EMB)), ValueError, "emb contains NaN or inf"),
    (dict(emb=EMB.astype(complex)), TypeError, "emb must have a real numeric dtype"),
    (dict(emb=EMB.astype(object)), TypeError, "emb must have a real numeric dtype"),
    (dict(emb=EMB > 0), TypeError, "emb must have a real numeric dtype"),
    (dict(emb="not an array"), TypeError, "emb must have a real numeric dtype"),
    (dict(scores=SCORES[:19]), ValueError, r"scores.shape == \(19,\), expected \(20,\)"),
    (dict(scores=SCORES[:, None]), ValueError, r"scores.shape == \(20, 1\), expected 1-D"),
    (dict(scores=np.r_[SCORES[:19], np.nan]), ValueError, "scores contains NaN or inf"),
    (dict(scores=np.r_[SCORES[:19], -np.inf]), ValueError, "scores contains NaN or inf"),
    (dict(scores=SCORES.astype(complex)), TypeError, "scores must have a real numeric dtype"),
    (dict(k=0), ValueError, r"k == 0, must satisfy 1 <= k < n \(n=20\)"),
    (dict(k=20), ValueError, r"k == 20, must satisfy 1 <= k < n \(n=20\)"),
    (dict(k=2.5), TypeError, "k must be an int"),
    (dict(k=True), TypeError, "k must be an int"),
    (dict(rate=1.0), ValueError, "rate == 1.0, must satisfy 0 <= rate < 1"),
    (dict(rate=-0.1), ValueError, "rate == -0.1, must satisfy 0 <= rate < 1"),
    (dict(rate=float("nan")), ValueError, "rate == nan"),
    (dict(rate="0.5"), TypeError, "rate must be a real number"),
    (dict(n_keep=21), ValueError, "n_keep == 21, must satisfy 0 <= n_keep <= 20"),
    (dict(n_keep=-1), ValueError, "n_keep == -1"),
    (dict(n_keep=3.0), TypeError, "n_keep must be an int"),
    (dict(gamma_f=-1.0), ValueError, "gamma_f == -1.0, must be finite and >= 0"),
    (dict(gamma_r=float("inf")), ValueError, "gamma_r == inf"),
    (dict(metric="manhattan"), ValueError, "metric='manhattan', must be one of"),
    (dict(graph="mutual"), ValueError, "graph='mutual', must be one of"),
    (dict(mode="mean"), ValueError, "mode='mean', must be one of"),
    (dict(reverse="none"), ValueError, "reverse='none', must be one of"),
    (dict(knn="lsh"), ValueError, "knn='lsh', must be one of"),
    (dict(backend="fortran"), ValueError, "backend='fortran' is not one of"),
    (dict(backend=3), TypeError, "backend must be a str"),
])
def test_prune_rejects(kwargs, err, match):
    args = dict(emb=EMB, scores=SCORES, k=3, rate=0.5)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        d2fast.prune(**args)


def test_forward_and_select_reject():
    g = d2fast.knn_graph(EMB, 3)
    with pytest.raises(TypeError, match="graph must be a d2fast.Graph"):
        d2fast.forward(g.to_scipy(), SCORES)
    with pytest.raises(ValueError, match=r"scores.shape == \(19,\)"):
        d2fast.forward(g, SCORES[:19])
    with pytest.raises(ValueError, match="scores is empty"):
        d2fast.select(g, [], 0)
    with pytest.raises(ValueError, match="n_keep == 21"):
        d2fast.select(g, SCORES, 21)
    with pytest.raises(ValueError, match="algorithm='magic', must be one of"):
        d2fast.select(g, SCORES, 2, algorithm="magic")


def test_forward_overflow_is_an_error():
    g = Graph([0, 1, 2], [1, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="overflowed"):
        d2fast.forward(g, [1e308, 1e308])


def test_errors_leave_inputs_untouched():
    emb, scores = EMB.copy(), SCORES.copy()
    with pytest.raises(ValueError):
        d2fast.prune(emb, scores, k=50)
    np.testing.assert_array_equal(emb, EMB)
    np.testing.assert_array_equal(scores, SCORES)


def test_memory_guard_refuses_before_allocating(monkeypatch):
    from d2fast import _validate

    monkeypatch.setattr(_validate, "available_memory", lambda: 1024)
    with pytest.raises(MemoryError, match=r"knn_graph\(n=20, d=3, k=3\) needs about"):
        d2fast.prune(EMB, SCORES, k=3)
    g = Graph([0, 1, 2], [1, 0], [1.0, 1.0])
    monkeypatch.setattr(_validate, "available_memory", lambda: 10)
    with pytest.raises(MemoryError, match=r"select\(n=2\) needs about .* GiB but only"):
        d2fast.select(g, [1.0, 2.0], 1)


def test_bfloat16_tensors_are_upcast_everywhere():
    torch = pytest.importorskip("torch")
    emb = torch.from_numpy(EMB).bfloat16()
    scores = torch.from_numpy(SCORES).bfloat16()
    as_float = (emb.float().numpy(), scores.float().numpy())
    expected = d2fast.prune(*as_float, k=3, rate=0.5, knn="exact", hard_prune=0)
    np.testing.assert_array_equal(
        d2fast.prune(emb, scores, k=3, rate=0.5, knn="exact", hard_prune=0), expected)
    g = d2fast.knn_graph(emb, k=3, knn="exact")
    np.testing.assert_array_equal(g.indices, d2fast.knn_graph(as_float[0], k=3, knn="exact").indices)
    np.testing.assert_array_equal(d2fast.forward(g, scores), d2fast.forward(g, as_float[1]))
    np.testing.assert_array_equal(d2fast.baselines.ccs(emb, scores, rate=0.5),
                                  d2fast.baselines.ccs(*as_float, rate=0.5))


def test_repeated_row_id_is_named():
    from d2fast._validate import check_ids
    with pytest.raises(ValueError, match=r"keep repeats row id 4 \(2 ids are repeated\)"):
        check_ids([1, 4, 7, 4, 7, 7], 10, "keep", unique=True)
    np.testing.assert_array_equal(check_ids([3, 1, 2], 10, "keep", unique=True), [3, 1, 2])


def test_namespace_is_clean_and_lazy():
    assert "annotations" not in dir(d2fast)
    for name in ("datasets", "scores", "baselines", "extrapolate"):
        assert name in dir(d2fast)
    assert callable(d2fast.datasets.load_digits)  # no explicit import needed


@pytest.mark.parametrize("names", [
    np.array(["dog", "cat", "emu"]), np.array(["dog", "cat", "emu"], dtype=object),
    ["dog", "cat", "emu"]], ids=["str", "object", "list"])
def test_string_labels_map_to_sorted_ids(names):
    ids = np.arange(20) % 3
    labels = np.asarray(names, dtype=object)[ids].tolist() if isinstance(names, list) \
        else names[ids]
    as_ids = np.array([1, 0, 2])[ids]  # sorted: cat=0, dog=1, emu=2
    np.testing.assert_array_equal(
        d2fast.prune(EMB, SCORES, k=3, rate=0.5, labels=labels,
                     class_budget="proportional", hard_prune=0.1),
        d2fast.prune(EMB, SCORES, k=3, rate=0.5, labels=as_ids,
                     class_budget="proportional", hard_prune=0.1))
    for method in ("random", "topk", "moderate"):
        fn = getattr(d2fast.baselines, method)
        np.testing.assert_array_equal(fn(EMB, SCORES, rate=0.5, labels=labels),
                                      fn(EMB, SCORES, rate=0.5, labels=as_ids))


def test_unsortable_labels_are_a_clear_error():
    with pytest.raises(TypeError, match="labels mixes values that cannot be sorted"):
        d2fast.prune(EMB, SCORES, k=3, rate=0.5, labels=np.array(["a", 1] * 10, dtype=object))
