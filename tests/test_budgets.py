"""hard_prune="auto" (budgets.auto_hard_prune): the rule, its cap and its edge cases, and
its hard-task signal without labels (hardness_atypicality, atypicality_rows) and the rate
term's typical share (typical_flags, typical_share); its
label check (label_check_rows, disputed_labels, unanimous_labels, among_easy,
label_checked_pool; label_check itself in test_prune.py)."""
from contextlib import nullcontext
from fractions import Fraction

import numpy as np
import pytest

import d2fast
from conftest import typical_by_hand
from d2fast._ties import tie_keys
from d2fast.budgets import (AGREE_MIN, ATYPICAL_MIN, ATYPICAL_ROWS, RATE_FREE, RATE_SLOPE,
                            TYPICAL_EVEN, Typical, among_easy, among_hardest,
                            atypicality_rows, auto_hard_prune, beta_dropping,
                            disputed_labels, hard_prune_pool, hard_task_drop, hard_task_floor,
                            hard_task_pool, hardness_atypicality, label_check_rows,
                            label_checked_pool, rate_term_drop, resolve_hard_prune,
                            sample_atypicality, typical_flags, typical_share,
                            unanimous_labels)


def noisy(n_clean=1800, n_noise=200, seed=0):
    """Skewed clean difficulties plus a separate mode of high ones (mislabelled rows)."""
    rng = np.random.default_rng(seed)
    clean = rng.gamma(2.0, 1.0, n_clean)
    return np.concatenate([clean, rng.normal(14.0, 1.0, n_noise)])


def dropped(scores, beta):
    return int(Fraction(repr(beta)) * scores.size)


def test_given_float_is_used_as_is():
    assert resolve_hard_prune(np.arange(10.0), 0.2, 5) == (0.2, "given: 0.2")
    assert resolve_hard_prune(np.arange(10.0), 0, 5)[0] == 0.0


@pytest.mark.parametrize("bad", ["automatic", "", "0.1"])
def test_unknown_string_is_an_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match="hard_prune"):
        resolve_hard_prune(np.arange(10.0), bad, 5)


def test_clear_noise_mode_is_dropped_at_low_rates():
    scores = noisy()
    beta, reason = resolve_hard_prune(scores, "auto", int(0.7 * scores.size))
    assert abs(dropped(scores, beta) - 200) <= 10
    assert "outlier mode 0.1" in reason and "rate term 0.000" in reason
    pool = hard_prune_pool(scores, beta, int(0.7 * scores.size))
    assert np.count_nonzero(pool >= 1800) <= 10  # the noise rows are gone


@pytest.mark.parametrize("make", [lambda r: r.normal(size=3000),
                                  lambda r: r.lognormal(0.0, 0.8, 3000),
                                  lambda r: r.exponential(1.0, 3000),
                                  lambda r: -r.gamma(3.0, 1.0, 3000)])  # negative, AUM-like
def test_unimodal_scores_have_no_outlier_mode(make):
    scores = make(np.random.default_rng(3))
    beta, reason = auto_hard_prune(scores, int(0.5 * scores.size))
    assert beta == 0.0 and "no outlier mode" in reason


def test_rate_term_grows_with_the_rate():
    scores = np.random.default_rng(0).normal(size=1000)  # no outlier mode
    rates = (0.3, 0.5, 0.7, 0.9)
    betas = [auto_hard_prune(scores, int(round((1 - r) * 1000)))[0] for r in rates]
    np.testing.assert_allclose(betas, [max(0.0, r - RATE_FREE) * RATE_SLOPE for r in rates],
                               atol=1e-3)
    assert betas == pytest.approx([0.0, 0.0, 0.1, 0.2], abs=1e-3)


@pytest.mark.parametrize("rate", [0.3, 0.6, 0.7, 0.9])
def test_the_larger_of_mode_and_rate_term_wins(rate):
    scores = noisy()  # a mode of 10 %
    n = scores.size
    beta, _ = auto_hard_prune(scores, int(round((1 - rate) * n)))
    mode = dropped(scores, auto_hard_prune(scores, n // 2)[0]) / n
    assert abs(mode - 0.1) <= 0.005
    assert beta == pytest.approx(max(mode, (rate - RATE_FREE) * RATE_SLOPE), abs=2 / n)


@pytest.mark.parametrize("n_keep", [1999, 1990, 1900])
def test_capped_so_that_n_keep_fits(n_keep):
    scores = noisy()
    beta, reason = auto_hard_prune(scores, n_keep)
    assert dropped(scores, beta) == scores.size - n_keep
    assert "capped" in reason
    assert hard_prune_pool(scores, beta, n_keep).size == n_keep


def test_nothing_to_drop_when_every_row_is_kept():  # rate 0
    scores = noisy()
    assert auto_hard_prune(scores, scores.size)[0] == 0.0  # rate 0
    assert auto_hard_prune(np.empty(0), 0)[0] == 0.0


def test_constant_scores_drop_nothing():
    beta, reason = auto_hard_prune(np.full(500, 3.0), 50)
    assert beta == 0.0 and "constant" in reason


def test_tiny_n_uses_the_rate_term_only():
    beta, reason = auto_hard_prune(np.array([0.1, 5.0, 0.2, 0.3, 9.0]), 1)
    assert dropped(np.zeros(5), beta) == int((0.8 - RATE_FREE) * RATE_SLOPE * 5)
    assert "fewer than" in reason


def test_integer_scores_with_a_never_learned_atom():
    """Forgetting-like counts: most rows 0-2 forgettings, 10 % never learned (count = E)."""
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.poisson(0.7, 900), np.full(100, 20)]).astype(np.float64)
    beta, _ = auto_hard_prune(scores, 700)
    assert dropped(scores, beta) == 100


@pytest.mark.parametrize("n", range(97, 400, 37))  # modes of >= 13 rows
def test_beta_drops_exactly_the_rows_the_rule_counts(n):
    rng = np.random.default_rng(n)
    scores = np.r_[rng.random(n - n // 7), 5 + 0.05 * rng.random(n // 7)]  # a mode of n // 7
    for n_keep in (0, 1, n // 10, n // 2, n - n // 7, n - 1):
        beta, reason = auto_hard_prune(scores, n_keep)
        rate_term = int(max(0.0, 1 - n_keep / n - RATE_FREE) * RATE_SLOPE * n)
        want = min(max(n // 7, rate_term), n - n_keep)
        assert f"drop {want} of {n} rows" in reason and dropped(scores, beta) == want
        assert hard_prune_pool(scores, beta, n_keep).size >= n_keep


@pytest.mark.parametrize("n", [1, 3, 7, 10, 49, 97, 1000, 12_345])
def test_beta_dropping_is_the_smallest_float_that_drops_exactly_that_many(n):
    for drop in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        beta = beta_dropping(drop, n)
        assert dropped(np.zeros(n), beta) == drop
        assert beta == 0.0 or dropped(np.zeros(n), float(np.nextafter(beta, 0.0))) < drop


@pytest.mark.parametrize("n, n_keep, want", [(1000, 1000, 0), (1000, 500, 0), (1000, 499, 0),
                                             (1000, 300, 100), (1000, 100, 200),
                                             (1000, 0, 250), (7, 1, 1), (0, 0, 0)])
def test_rate_term_drop(n, n_keep, want):
    assert rate_term_drop(n, n_keep) == want


def test_prune_defaults_to_auto_and_zero_is_pure_d2():
    rng = np.random.default_rng(2)
    emb, scores = rng.normal(size=(600, 4)), noisy(540, 60, seed=2)
    auto, info = d2fast.prune(emb, scores, rate=0.5, return_info=True)
    assert np.array_equal(auto, d2fast.prune(emb, scores, rate=0.5, hard_prune="auto"))
    atypical = sample_atypicality(emb, scores, 5, "euclidean")[0]  # scores unrelated to emb
    assert info["hard_prune_atypicality"] == atypical < ATYPICAL_MIN
    beta, _ = auto_hard_prune(scores, 300, atypical)  # a hard task: 150 rows or the floor's
    drop = min(300, max(150, int(600 * hard_task_floor(atypical))))
    assert dropped(scores, beta) == drop == info["hard_pruned"] and drop > 150
    assert np.array_equal(auto, d2fast.prune(emb, scores, rate=0.5, hard_prune=beta))
    assert not np.isin(np.arange(540, 600), auto).any()  # the noise mode is not kept
    pure = d2fast.prune(emb, scores, rate=0.5, hard_prune=0.0)
    assert np.isin(np.arange(540, 600), pure).any()


def test_auto_with_labels_and_tiny_classes():
    rng = np.random.default_rng(4)
    emb, scores = rng.normal(size=(600, 4)), noisy(540, 60, seed=4)
    # five classes along the first axis (kNN label agreement about 0.7: not a hard task,
    # where random labels would make one, see test_hard_task_pool)
    labels = np.digitize(emb[:, 0], [-0.8, -0.25, 0.25, 0.8])
    labels[:2] = 7  # a class of two rows
    labels[2:5] = 8  # and one of three, the five together far away and fairly hard, so
    emb[:5] += 50  # that the label check keeps them (their neighbours of another label
    scores[:5] = np.quantile(scores[5:540], 0.9)  # are not easy)
    mode = np.arange(540, 600)
    for k, rate, n_keep in [(5, 0.5, 300), (1, 0.7, 180)]:
        with pytest.warns(UserWarning, match="class") if k == 5 else nullcontext():
            keep = d2fast.prune(emb, scores, k=k, rate=rate, labels=labels,
                                class_budget="proportional")
        assert keep.size == n_keep and np.unique(keep).size == n_keep
        # the noise mode's rows are kept only where the label check finds their label shared
        disputed = disputed_labels(d2fast.knn_graph(emb, k), labels)
        assert not np.isin(mode[disputed[mode]], keep).any()
        assert np.isin(mode, keep).sum() < 0.2 * mode.size


# -- hard_prune="auto" without labels: the hard task ---------------------------------------

def test_hard_task_starts_the_rate_term_at_rate_0():
    scores = np.arange(1000, dtype=float)  # no outlier mode: the rate term alone
    for n_keep in (700, 500, 300, 100):  # rates 0.3 to 0.9
        plain, _ = auto_hard_prune(scores, n_keep)
        assert auto_hard_prune(scores, n_keep, None)[0] == plain
        assert auto_hard_prune(scores, n_keep, ATYPICAL_MIN)[0] == plain  # at the bound
        beta, why = auto_hard_prune(scores, n_keep, ATYPICAL_MIN - 0.01)
        assert dropped(scores, beta) == hard_task_drop(1000, n_keep) == (1000 - n_keep) // 2
        assert "hard task (hardness-atypicality 0.190 < 0.2)" in why
        assert f"rate term {(1000 - n_keep) / 1000 * RATE_SLOPE:.3f}" in why
    assert "hardness-atypicality 0.500" in auto_hard_prune(scores, 700, 0.5)[1]
    assert auto_hard_prune(scores, 1000, -1.0)[0] == 0.0  # every row kept
    assert auto_hard_prune(np.ones(1000), 300, -1.0)[0] == 0.0  # constant scores
    assert dropped(scores, auto_hard_prune(scores, 0, -1.0)[0]) == 500  # half the budget
    assert resolve_hard_prune(scores, "auto", 700, -1.0) == auto_hard_prune(scores, 700, -1.0)
    assert resolve_hard_prune(scores, 0.0, 700, -1.0)[0] == 0.0  # a float is used as given


# -- hard_prune="auto" without labels: the typical share of the rate term's rows ------------

def test_typical_flags_and_share():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    g = d2fast.knn_graph(X, 5, knn="exact")
    flags = typical_flags(g)
    assert flags.sum() == 100  # at or below the median of distinct mean distances
    # the typical rows lie near the centre of the Gaussian
    assert np.linalg.norm(X[flags], axis=1).mean() < 0.7 * np.linalg.norm(X[~flags], axis=1).mean()
    by_hand = typical_by_hand(X, 5)
    np.testing.assert_array_equal(flags, by_hand)
    scores = rng.random(200)
    order = np.argsort(-scores)
    rows = np.sort(rng.choice(200, 120, replace=False))  # a sample of the rows
    sample = Typical(rows, flags[rows])
    for lo, hi in ((0, 200), (10, 50), (0, 1), (199, 200)):
        inside = np.isin(rows, order[lo:hi])
        want = flags[rows][inside].mean() if inside.any() else None
        assert typical_share(scores, lo, hi, sample) == want
    assert typical_share(scores, 5, 5, sample) is None  # no row there
    isolated = d2fast.Graph(np.zeros(4, dtype=np.int64), np.empty(0, dtype=np.int64),
                            np.empty(0, dtype=np.float32))
    assert not typical_flags(isolated).any()  # no neighbours: not typical


@pytest.mark.parametrize("seed", range(6))
def test_among_hardest_follows_the_hard_prune_order(seed):
    """Tie-heavy scores (forgetting-like counts, -0.0 and 0.0): the rows among the m
    hardest are hard_prune_pool's first m, for every m."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    scores = rng.poisson(0.7, n).astype(np.float64) * rng.choice([-1.0, 1.0])
    scores[rng.random(n) < 0.1] = -0.0
    order = np.lexsort((tie_keys(np.arange(n)), -scores))
    rows = np.sort(rng.choice(n, int(rng.integers(0, n + 1)), replace=False))
    for m in range(-1, n + 2):
        want = np.isin(rows, order[:max(m, 0)])
        np.testing.assert_array_equal(among_hardest(scores, m, rows), want, err_msg=f"m={m}")
    for m in range(n):  # that order is hard_prune_pool's
        pool = hard_prune_pool(scores, beta_dropping(m, n), 0)
        np.testing.assert_array_equal(np.setdiff1d(np.arange(n), pool), np.sort(order[:m]))


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.4, 0.5, 0.8, 1.0])
def test_rate_term_scaled_by_the_typical_share(share):
    n = 1000
    scores = np.arange(n, dtype=float)  # no outlier mode; hardest = highest id
    flags = np.zeros(n, dtype=bool)
    for n_keep in (700, 500, 300, 100, 0):
        rate_drop = rate_term_drop(n, n_keep)
        hard = np.arange(n - rate_drop, n)  # the rate term's rows
        flags[:] = False
        typical = int(round(share * rate_drop))
        flags[hard[:typical]] = True
        sample = Typical(np.arange(n), flags.copy())
        plain, _ = auto_hard_prune(scores, n_keep, 0.5)
        beta, why = auto_hard_prune(scores, n_keep, 0.5, sample)
        if rate_drop:
            assert typical_share(scores, 0, rate_drop, sample) == typical / rate_drop
        want = min(rate_drop, int(rate_drop * (typical / rate_drop) / TYPICAL_EVEN)) \
            if rate_drop else 0
        assert dropped(scores, beta) == want <= dropped(scores, plain) == rate_drop
        assert (want == rate_drop) == (share >= 0.5 or rate_drop == 0)
        assert ("typical share" in why) == (rate_drop > 0)
        # a hard task and the rule without the sample ignore it
        assert auto_hard_prune(scores, n_keep, -1.0, sample) == auto_hard_prune(
            scores, n_keep, -1.0)
        assert resolve_hard_prune(scores, "auto", n_keep, 0.5, sample) == (beta, why)


def test_typical_share_counts_only_rows_beyond_the_outlier_mode():
    scores = noisy(900, 100, seed=5)  # a mode of 100 (the rate term at 90 %: 200 rows)
    order = np.argsort(-scores)
    mode = auto_hard_prune(scores, 500)[0]
    assert dropped(scores, mode) == 100  # the mode alone at 50 %
    flags = np.zeros(1000, dtype=bool)
    flags[order[:100]] = True  # the mode's rows typical, the rate term's beyond it not
    sample = Typical(np.arange(1000), flags)
    assert dropped(scores, auto_hard_prune(scores, 100, 0.5, sample)[0]) == 100
    flags[order[100:125]] = True  # a quarter of the 100 beyond: half of them dropped
    assert dropped(scores, auto_hard_prune(scores, 100, 0.5, sample)[0]) == 150
    few = Typical(np.array([order[0], order[1]]), np.array([True, True]))
    assert auto_hard_prune(scores, 100, 0.5, few) == auto_hard_prune(scores, 100, 0.5)


def test_hard_task_floor_grows_as_the_atypicality_falls():
    assert [hard_task_floor(a) for a in (None, 0.5, ATYPICAL_MIN, 0.15, 0.1, 0.0, -0.3)] == \
        [0.0, 0.0, 0.0, pytest.approx(0.125), 0.25, 0.5, 0.5]
    assert hard_task_drop(1000, 700, 0.1) == 250 and hard_task_drop(1000, 100, 0.1) == 450
    assert hard_task_drop(1000, 900, -1.0) == 500  # not capped here: auto_hard_prune caps
    scores = np.arange(1000, dtype=float)  # no outlier mode: the rate term alone
    for atypicality, n_keep, drop in ((0.1, 700, 250), (0.1, 300, 350), (0.05, 500, 375),
                                      (0.0, 700, 300), (0.0, 300, 500), (-1.0, 100, 500)):
        beta, why = auto_hard_prune(scores, n_keep, atypicality)
        assert dropped(scores, beta) == drop == min(1000 - n_keep, hard_task_drop(
            1000, n_keep, atypicality))
        assert f"drops at least {hard_task_floor(atypicality):.3f} of the rows" in why
    # at atypicality <= 0 and rates up to 1/2 the floor takes the whole drop budget
    assert dropped(scores, auto_hard_prune(scores, 600, -0.05)[0]) == 400


def test_hard_task_keeps_a_larger_outlier_mode():
    scores = noisy()  # a mode of about 200 of 2000 rows
    mode = dropped(scores, auto_hard_prune(scores, 1800)[0])  # rate 0.1: the mode alone
    assert 150 <= mode <= 250
    beta, why = auto_hard_prune(scores, 1800, 0.0)  # the hard task drops 100 < the mode
    assert dropped(scores, beta) == mode and "hard task" in why


def test_hardness_atypicality_is_spearman_of_score_and_mean_edge_length():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(400, 3)) * rng.lognormal(0.0, 0.5, (400, 1))
    g = d2fast.knn_graph(emb, 5)
    degree = np.diff(g.indptr)
    far = np.add.reduceat(g.distances, g.indptr[:-1]) / degree
    assert hardness_atypicality(g, far) == pytest.approx(1.0)
    assert hardness_atypicality(g, -far) == pytest.approx(-1.0)
    ties = np.round(rng.random(400) * 3)  # heavy ties: average ranks, as scipy's
    assert hardness_atypicality(g, ties) == pytest.approx(spearmanr(ties, far)[0], abs=1e-12)
    assert hardness_atypicality(g, np.ones(400)) is None  # constant scores: no signal
    tiny = d2fast.knn_graph(emb[:2], 1)
    assert hardness_atypicality(tiny, np.array([0.0, 1.0])) is None  # fewer than 3 rows
    assert sample_atypicality(emb[:2], np.array([0.0, 1.0]), 5, "euclidean") == (None, None)
    value, graph = sample_atypicality(emb, far, 5, "euclidean")
    assert value == pytest.approx(1.0) and graph.meta["knn"] == "exact"
    np.testing.assert_array_equal(graph.indices, g.indices)  # the exact union 5-NN graph
    assert sample_atypicality(emb[:3], np.arange(3.0), 5, "euclidean")[1].meta["k"] == 2
    rows = np.arange(0, 400, 3, dtype=np.int64)  # the rows of a sample, read in place
    part, graph = sample_atypicality(emb, far, 5, "euclidean", rows=rows)
    whole, copied = sample_atypicality(emb[rows], far[rows], 5, "euclidean")
    assert part == whole and np.array_equal(graph.indices, copied.indices)


def test_hardness_atypicality_leaves_out_rows_without_neighbours():
    # 5 rows in a chain 0-1-2-3 plus an isolated row 4 (a Graph with an empty row)
    g = d2fast.Graph(np.array([0, 1, 3, 5, 6, 6]), np.array([1, 0, 2, 1, 3, 2]),
                     np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0], dtype=np.float32))
    scores = np.array([1.0, 1.5, 2.5, 3.0, -100.0])  # row 4's score would break the order
    assert hardness_atypicality(g, scores) == pytest.approx(1.0)


def test_atypicality_rows_are_a_fixed_sample():
    np.testing.assert_array_equal(atypicality_rows(10), np.arange(10))
    np.testing.assert_array_equal(atypicality_rows(ATYPICAL_ROWS), np.arange(ATYPICAL_ROWS))
    n = ATYPICAL_ROWS + 5000
    rows = atypicality_rows(n)
    assert rows.dtype == np.int64 and rows.size == ATYPICAL_ROWS
    assert (np.diff(rows) > 0).all()  # sorted, distinct
    keys = tie_keys(np.arange(n))
    assert keys[rows].max() < np.delete(keys, rows).min()  # the lowest tie keys
    assert rows[-1] > ATYPICAL_ROWS  # spread over all rows, not the first ones


# -- hard_prune="auto" with labels: the label check ------------------------------------------

def test_hard_task_pool():
    scores = np.arange(100, dtype=float)  # row i scores i: the hardest rows are the last
    pool = np.arange(100)
    same, why = hard_task_pool(scores, pool, 30, AGREE_MIN)  # agreement at the bound
    assert same is pool and "agreement 0.500" in why and "hard task" not in why
    fewer, why = hard_task_pool(scores, pool, 30, 0.49)  # below: floor(70 / 2) = 35 go
    np.testing.assert_array_equal(fewer, np.arange(65))
    assert "hard task" in why and "drop 35 of 100" in why
    assert hard_task_drop(100, 30) == 35 and hard_task_drop(7, 0) == 3
    small = np.arange(50)  # a pool that drops more already (the outlier mode) stays
    np.testing.assert_array_equal(hard_task_pool(scores, small, 30, 0.1)[0], small)
    assert hard_task_pool(scores, pool, 100, 0.1)[0] is pool  # every row kept
    assert hard_task_pool(np.ones(100), pool, 30, 0.1)[0] is pool  # constant scores
    assert hard_task_pool(scores, pool, 0, 0.0)[0].size == 50  # half the drop budget
    # the floor of the hardness-atypicality: 0.1 -> a quarter of the rows (less than 35),
    # 0 -> half of them, -1 -> half, capped by the drop budget at a low rate
    for atypicality, n_keep, drop in ((0.1, 30, 35), (0.0, 30, 50), (-1.0, 70, 30),
                                      (None, 30, 35)):
        got, why = hard_task_pool(scores, pool, n_keep, 0.49, atypicality)
        np.testing.assert_array_equal(got, np.arange(100 - drop))
        assert f"drop {drop} of 100" in why
        assert ("hardness-atypicality" in why) == (atypicality is not None)
    assert "hardness-atypicality 0.000: at least 0.500" in hard_task_pool(
        scores, pool, 30, 0.49, 0.0)[1]
    tied = np.zeros(100)
    tied[::2] = 1.0  # 50 tied hardest rows, 35 of them dropped by tie key, not row id
    got = hard_task_pool(tied, pool, 30, 0.1)[0]
    gone = np.setdiff1d(pool, got)
    assert gone.size == 35 and (tied[gone] == 1).all() and not np.array_equal(
        gone, np.arange(0, 70, 2))


def auto_rows(scores, n_keep):
    """label_check_rows on the pool of hard_prune="auto"."""
    pool = hard_prune_pool(scores, auto_hard_prune(scores, n_keep)[0], n_keep)
    return label_check_rows(scores, pool, n_keep)


def test_label_check_rows_are_the_hard_pruned_rows_and_the_pool_hardest_first():
    scores = noisy()  # 2000 rows, a mode of 200
    order = np.lexsort((np.arange(2000), -scores))
    mode = dropped(scores, auto_hard_prune(scores, 1000)[0])  # rate 0.5: the mode alone
    assert 150 <= mode <= 250
    pruned, hardest = auto_rows(scores, 200)  # rate 0.9: the rate term drops 400
    assert pruned.dtype == hardest.dtype == np.int64
    np.testing.assert_array_equal(pruned, np.sort(order[:400]))
    np.testing.assert_array_equal(hardest, order[400:])
    pruned, hardest = auto_rows(scores, 1400)  # rate 0.3: the mode beats the rate term
    np.testing.assert_array_equal(pruned, np.sort(order[:mode]))
    np.testing.assert_array_equal(hardest, order[mode:])
    pruned, hardest = auto_rows(scores, 1900)  # the mode takes the whole budget
    np.testing.assert_array_equal(pruned, np.sort(order[:100]))
    np.testing.assert_array_equal(hardest, order[100:])
    pruned, hardest = auto_rows(np.random.default_rng(0).random(100), 80)  # no mode
    assert pruned.size == 0 and hardest.size == 100


@pytest.mark.parametrize("scores, n_keep", [
    (np.random.default_rng(0).random(1000), 1000),  # nothing to drop
    (np.full(1000, 2.0), 100),  # constant scores
    (np.empty(0), 0)])
def test_label_check_rows_empty(scores, n_keep):
    assert all(part.size == 0 for part in auto_rows(scores, n_keep))


def test_label_check_rows_ties_go_to_the_lower_tie_key_first():
    """Ties in tie-key order (d2fast._ties), not row order: rows sorted by class must not
    lose one class to a hard prune of tied scores."""
    scores = np.repeat([0.0, 1.0], 50)  # 50 ties at the top
    pruned, hardest = auto_rows(scores, 10)
    top = 50 + np.argsort(tie_keys(np.arange(50, 100)))  # the tied top rows, key order
    low = np.argsort(tie_keys(np.arange(50)))
    np.testing.assert_array_equal(pruned, np.sort(top[:20]))
    np.testing.assert_array_equal(hardest, np.r_[top[20:], low])
    assert not np.array_equal(pruned, np.arange(50, 70))  # not the lowest ids
    # any pool: its rows hardest first, the rest outside
    pruned, hardest = label_check_rows(scores, np.array([1, 3, 60, 61, 99]), 2)
    top, low = np.array([60, 61, 99]), np.array([1, 3])
    np.testing.assert_array_equal(hardest, np.r_[top[np.argsort(tie_keys(top))],
                                                 low[np.argsort(tie_keys(low))]])
    assert pruned.size == 95 and not np.isin([1, 3, 60, 61, 99], pruned).any()


def test_disputed_and_unanimous_labels():
    # row 0: 1 of 3 neighbours agree; row 1: 2 of 2; row 2: no neighbour; row 3: 0 of 1;
    # row 4: 1 of 2 (half: not disputed, not unanimous)
    g = d2fast.Graph([0, 3, 5, 5, 6, 8], [1, 2, 3, 3, 4, 2, 0, 1], np.ones(8))
    labels = np.array([0, 1, 0, 1, 1])
    np.testing.assert_array_equal(disputed_labels(g, labels), [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(unanimous_labels(g, labels), [0, 1, 1, 0, 0])


def test_among_easy_is_the_median_of_the_other_labels_neighbours():
    rng = np.random.default_rng(5)
    g = d2fast.knn_graph(rng.normal(size=(300, 3)), 6)
    labels = rng.integers(0, 3, 300)
    rows = np.arange(0, 300, 3)
    # continuous scores, and forgetting-like ones tied at their minimum (median = minimum)
    for scores in rng.random(300), rng.integers(0, 3, 300) * (rng.random(300) < 0.3):
        want = []
        for i in rows:  # one row at a time, as the rule reads
            near = g.indices[g.indptr[i]:g.indptr[i + 1]]
            other = near[labels[near] != labels[i]]
            want.append(other.size > 0 and np.median(scores[other]) <= np.median(scores))
        got = among_easy(g, labels, scores, rows)
        np.testing.assert_array_equal(got, want)
        assert 0 < got.sum() < rows.size
    assert among_easy(g, labels, scores, np.empty(0, dtype=np.int64)).size == 0


def test_label_checked_pool_rescues_the_agreed_rows_at_the_median():
    scores = np.arange(10.0)  # row 9 hardest
    pool = np.arange(6)  # the hard prune dropped 6..9
    agreed = np.ones(10, dtype=bool)
    agreed[[8, 1]] = False  # row 8 dropped; row 1 is in the pool but not agreed
    given = scores.copy()
    new_pool, new_scores, rescued, reason = label_checked_pool(
        scores, pool, np.array([9, 8, 7, 6]), np.array([5]), agreed)
    np.testing.assert_array_equal(new_pool, [0, 1, 2, 3, 4, 6, 7, 9])  # row 5 dropped
    median = np.median([0, 2, 3, 4, 6, 7, 9.0])  # the pool's agreed rows: 4.0
    np.testing.assert_array_equal(new_scores, [0, 1, 2, 3, 4, 5, median, median, 8, median])
    np.testing.assert_array_equal(scores, given)  # the caller's array is not changed
    assert rescued == 3 and "3 of the 4 hard-pruned rows kept" in reason
    assert "1 rows dropped" in reason and "1 disputed rows of the pool dropped" in reason


def test_label_checked_pool_with_nothing_to_change_returns_its_inputs():
    scores, pool = np.arange(10.0), np.arange(6)
    out = label_checked_pool(scores, pool, np.array([9, 8, 7, 6]), np.empty(0, np.int64),
                             np.zeros(10, dtype=bool))
    assert out[0] is pool and out[1] is scores and out[2] == 0
    assert "0 of the 4 hard-pruned rows kept" in out[3]
