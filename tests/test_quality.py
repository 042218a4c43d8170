"""d2fast.quality: the methods x rates x seeds table."""
import numpy as np
import pytest

import d2fast
from d2fast import quality


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 4)), rng.random(300), rng.integers(0, 3, 300)


def test_compare_runs_every_method_rate_and_seed(data):
    emb, scores, labels = data
    seen = []

    def train_eval(keep, seed):
        seen.append((keep.copy(), seed))
        return keep.size / 300 + seed

    rows = quality.compare(emb, scores, train_eval, labels=labels, rates=(0.5, 0.9),
                           seeds=(3, 4))
    assert [(r["seed"], r["rate"], r["method"]) for r in rows] == \
        [(s, r, m) for s in (3, 4) for r in (0.5, 0.9) for m in quality.METHODS]
    for r, (keep, seed) in zip(rows, seen):
        assert r["n_keep"] == keep.size == int((1 - r["rate"]) * 300 + 1e-9)
        assert r["accuracy"] == keep.size / 300 + seed and seed == r["seed"]
    d2 = [k for r, (k, _) in zip(rows, seen) if r["method"] == "d2" and r["seed"] == 3]
    np.testing.assert_array_equal(d2[0], d2fast.prune(emb, scores, rate=0.5, labels=labels))
    pure = [k for r, (k, _) in zip(rows, seen) if r["method"] == "d2 pure"]
    np.testing.assert_array_equal(pure[0], d2fast.prune(emb, scores, rate=0.5, hard_prune=0.0))
    d2 = [k for r, (k, _) in zip(rows, seen) if r["method"] == "d2" and r["rate"] == 0.9]
    np.testing.assert_array_equal(d2[0], d2fast.prune(emb, scores, rate=0.9, labels=labels))


def test_compare_takes_own_methods(data):
    emb, scores, _ = data
    rows = quality.compare(emb, scores, lambda keep, seed: float(keep[0]), rates=(0.5,),
                           seeds=(0,), methods={"first": lambda e, s, r, l, seed: np.arange(5)})
    assert [(r["method"], r["accuracy"], r["n_keep"]) for r in rows] == [("first", 0.0, 5)]


def test_summarize_and_format_table():
    rows = [{"method": m, "rate": r, "seed": s, "n_keep": 1, "select_s": 0.0,
             "accuracy": acc + s / 100}
            for s in (0, 1) for r in (0.3, 0.9)
            for m, acc in (("d2", 0.8), ("random", 0.79), ("ccs", 0.82))]
    stats = quality.summarize(rows)
    assert stats["d2", 0.3] == pytest.approx((0.805, 0.005, 2))
    lines = quality.format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["method", "30", "%"] and "over 2 runs" in lines[0]
    assert lines[1].split() == ["d2", "80.50", "±", "0.50", "80.50", "±", "0.50"]
    assert lines[4].split()[-2:] == ["+1.00", "+1.00"]  # d2 - random
    assert lines[5].split()[-2:] == ["-2.00", "-2.00"]  # d2 - best (ccs)
    assert len(quality.format_table([r for r in rows if r["method"] != "d2"]).splitlines()) == 3
