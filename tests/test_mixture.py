"""mixture.high_mode: a separate mode of high scores, or none."""
import numpy as np
import pytest

from d2fast.mixture import MIN_ROWS, high_mode


def test_finds_a_separate_high_mode_and_its_rows():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 4000), rng.normal(7, 1, 1000)])
    mode = high_mode(scores)
    assert mode.found and abs(mode.count - 1000) <= 20 and 2 < mode.threshold < 5
    assert mode.count == np.count_nonzero(scores > mode.threshold)


def test_a_majority_high_mode_is_not_an_outlier_mode():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 1000), rng.normal(7, 1, 4000)])
    assert not high_mode(scores).found


def test_a_low_spike_with_a_long_tail_is_not_bimodal():
    """EL2N of a clean, well-fit set: many rows near 0, a decreasing tail."""
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.exponential(0.01, 3000), rng.exponential(0.4, 7000)])
    assert not high_mode(scores).found


@pytest.mark.parametrize("n", [0, 1, MIN_ROWS - 1])
def test_too_few_rows(n):
    mode = high_mode(np.arange(n, dtype=np.float64))
    assert not mode.found and mode.count == 0 and "fewer than" in mode.why


def test_constant_and_two_valued_scores():
    assert high_mode(np.ones(100)).why == "constant scores"
    # the bandwidth is at least the gap between values: two values form no valley
    assert not high_mode(np.repeat([0.0, 1.0], [90, 10])).found


def test_large_input_is_deterministic():
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(0, 1, 180_000), rng.normal(8, 1, 20_000)])
    a, b = high_mode(scores), high_mode(scores.copy())
    assert a == b and abs(a.count - 20_000) <= 200
