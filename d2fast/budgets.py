"""Which rows a selection may keep, and how many per class: hard pruning, class budgets
and the balanced merge of per-class rankings (shared by ``prune`` and ``baselines``)."""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from d2fast._validate import check_real
from d2fast.mixture import high_mode

BUDGETS = ("proportional", "uniform")


def resolve_hard_prune(scores: np.ndarray, hard_prune: Any, n_keep: int) -> tuple[float, str]:
    """The hard-prune fraction beta to use and why.

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    hard_prune : float in [0, 1), or ``"auto"``
        A float is used as given. ``"auto"`` is the rule of :func:`auto_hard_prune`.
    n_keep : int, rows the selection keeps

    Returns
    -------
    beta : float
    reason : str, one line for logs and sidecars
    """
    if isinstance(hard_prune, str):
        if hard_prune != "auto":
            raise ValueError(f"hard_prune must be a float in [0, 1) or 'auto', got {hard_prune!r}")
        return auto_hard_prune(scores, n_keep)
    beta = check_real(hard_prune, "hard_prune")
    if beta >= 1.0:
        raise ValueError(f"hard_prune == {beta}, must satisfy 0 <= hard_prune < 1")
    return beta, f"given: {beta:g}"


def auto_hard_prune(scores: np.ndarray, n_keep: int) -> tuple[float, str]:
    """``hard_prune="auto"``: drop a separate mode of the hardest rows, if there is one.

    Mislabelled rows form a separate mode of high difficulty: negative margins for AUM
    (Pleiss et al., NeurIPS 2020), never-learned rows for forgetting, EL2N near sqrt(2).
    :func:`d2fast.mixture.high_mode` looks for a valley in the density of the scores with
    a smaller mode above it; beta is the fraction of rows above the valley (0 when there is
    none: the scores of clean data are skewed, not bimodal), capped so that the ``n_keep``
    rows still fit (at most ``n - n_keep`` rows are dropped). The pruning rate enters
    through that cap only: a CCS-like term growing with the rate (CCS tunes its
    "mis-ratio" up to 0.3 on CIFAR-10 at 90 %, the official D2 setting is 0.4) cost 2-7
    points of accuracy at 70-90 % pruning in our study (README, "hard_prune='auto'").

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    n_keep : int, rows the selection keeps, ``0 <= n_keep <= n``

    Returns
    -------
    beta : float, ``floor(beta * n)`` (on beta's decimal value) is the number dropped
    reason : str, what was chosen and why
    """
    n = scores.size
    if n == 0 or n_keep >= n:
        return 0.0, "auto: 0 (every row is kept)"
    mode = high_mode(scores)
    if not mode.found:
        return 0.0, f"auto: 0, no outlier mode ({mode.why})"
    drop = min(mode.count, n - n_keep)
    beta = drop / n
    while int(Fraction(repr(beta)) * n) < drop:  # the pool drops exactly `drop` rows
        beta = float(np.nextafter(beta, 1.0))
    capped = f"; capped at {drop} so that n_keep={n_keep} rows remain" \
        if drop < mode.count else ""
    return beta, f"auto: {beta:.4f} = drop {drop} of {n} rows, outlier mode: {mode.why}{capped}"


def hard_prune_pool(scores: np.ndarray, beta: float, n_keep: int) -> np.ndarray:
    """Row ids (int64, sorted) left after dropping the floor(beta * n) hardest rows
    (highest score, ties: lower index dropped first); floor on the decimal value of beta."""
    n = scores.size
    drop = int(Fraction(repr(float(beta))) * n)
    if n - drop < n_keep:
        raise ValueError(f"hard_prune == {beta} drops {drop} of {n} rows, fewer than "
                         f"n_keep={n_keep} remain")
    hardest = np.lexsort((np.arange(n), -scores))[:drop]
    keep = np.ones(n, dtype=bool)
    keep[hardest] = False
    return np.flatnonzero(keep)


def by_class(labels: np.ndarray, pool: np.ndarray) -> list:
    """The pool's rows grouped by class (classes in increasing order), each sorted."""
    pool_labels = labels[pool]
    return [pool[pool_labels == c] for c in np.unique(pool_labels)]


def class_budgets(sizes: list, n_keep: int, how: str) -> list:
    """Per-class budgets summing to n_keep, each at most its class size.

    ``'proportional'``: each class its share, largest remainder (ties: lower class first).
    ``'uniform'``: equal shares, capped at the class size, the rest water-filled over the
    classes with room; when fewer rows are left than such classes, one each to the lowest
    class ids.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if how == "proportional":
        exact = [(s * n_keep, int(sizes.sum())) for s in sizes]
        budgets = np.array([a // b for a, b in exact], dtype=np.int64)
        remainders = np.array([a % b for a, b in exact], dtype=np.int64)
        extra = n_keep - int(budgets.sum())
        budgets[np.lexsort((np.arange(sizes.size), -remainders))[:extra]] += 1
        return budgets.tolist()
    budgets = np.zeros(sizes.size, dtype=np.int64)
    left = n_keep
    while left > 0:
        room = np.flatnonzero(budgets < sizes)
        share = left // room.size
        if share == 0:
            budgets[room[:left]] += 1
            break
        add = np.minimum(sizes[room] - budgets[room], share)
        budgets[room] += add
        left -= int(add.sum())
    return budgets.tolist()


def merge_balanced(picks: list) -> np.ndarray:
    """One ranking from per-class rankings such that every prefix stays balanced: the t-th
    pick of a class with budget b sits at (t + 0.5) / b, ties in class order. int64."""
    if len(picks) == 1:
        return picks[0].astype(np.int64)
    position = np.concatenate([(np.arange(p.size) + 0.5) / max(p.size, 1) for p in picks])
    return np.concatenate(picks)[np.argsort(position, kind="stable")].astype(np.int64)
