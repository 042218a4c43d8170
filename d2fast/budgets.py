"""Which rows a selection may keep, and how many per class: hard pruning, class budgets
and the balanced merge of per-class rankings (shared by ``prune`` and ``baselines``)."""
from __future__ import annotations

from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from d2fast._ties import tie_keys
from d2fast._validate import check_real
from d2fast.graph import graph_of_rows, row_edges
from d2fast.mixture import high_mode

BUDGETS = ("proportional", "uniform")
RATE_FREE = 0.5  # "auto": no rate term up to this pruning rate
RATE_SLOPE = 0.5  # "auto": rate term (rate - RATE_FREE) * RATE_SLOPE above it
AGREE_MIN = 0.5  # "auto" with labels: a hard task below this kNN label agreement
ATYPICAL_MIN = 0.2  # "auto" without labels: a hard task below this hardness-atypicality
ATYPICAL_ROWS = 10_000  # rows hardness_atypicality reads (all of them up to this many)
FLOOR_MAX = 0.5  # "auto": a hard task's floor drops at most this share of all rows
TYPICAL_EVEN = 0.5  # typical share of the hardest rows when hardness ignores typicality


class Typical(NamedTuple):
    """Which sampled rows are typical inputs (:func:`typical_flags`): ``rows``, int64 sorted
    ids of the rows :func:`hardness_atypicality` read; ``flags``, bool of the same shape."""
    rows: np.ndarray
    flags: np.ndarray


def resolve_hard_prune(scores: np.ndarray, hard_prune: Any, n_keep: int,
                       atypicality: float | None = None,
                       typical: Typical | None = None) -> tuple[float, str]:
    """The hard-prune fraction beta to use and why.

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    hard_prune : float in [0, 1), or ``"auto"``
        A float is used as given. ``"auto"`` is the rule of :func:`auto_hard_prune`.
    n_keep : int, rows the selection keeps
    atypicality : float, optional
        :func:`hardness_atypicality`, for ``"auto"`` without labels.
    typical : Typical, optional
        The typical inputs of the same sample, for ``"auto"`` without labels.

    Returns
    -------
    beta : float
    reason : str, one line for logs and sidecars
    """
    if isinstance(hard_prune, str):
        if hard_prune != "auto":
            raise ValueError(f"hard_prune must be a float in [0, 1) or 'auto', got {hard_prune!r}")
        return auto_hard_prune(scores, n_keep, atypicality, typical)
    beta = check_real(hard_prune, "hard_prune")
    if beta >= 1.0:
        raise ValueError(f"hard_prune == {beta}, must satisfy 0 <= hard_prune < 1")
    return beta, f"given: {beta:g}"


def auto_hard_prune(scores: np.ndarray, n_keep: int, atypicality: float | None = None,
                    typical: Typical | None = None) -> tuple[float, str]:
    """``hard_prune="auto"``: beta from the scores and the pruning rate.

    1. Outlier mode. Mislabelled rows form a separate mode of high difficulty: negative
       margins for AUM (Pleiss et al., NeurIPS 2020), never-learned rows for forgetting,
       EL2N near sqrt(2). :func:`d2fast.mixture.high_mode` looks for a valley in the
       density of the scores with a smaller mode above it; ``beta_mode`` is the fraction
       of rows above the valley (0 when there is none: clean scores are skewed, not
       bimodal).
    2. Rate term. With few rows kept, the hardest of the rest cost more than they teach,
       and noise the scores do not separate hides among them. CCS (Zheng et al., ICLR
       2023) grows its "mis-ratio" with the pruning rate (0 at low rates, up to 0.3 on
       CIFAR-10 at 90 %; the official D2 CIFAR-10 setting is 0.4 at 90 %):
       ``beta_rate = max(0, rate - RATE_FREE) * RATE_SLOPE``, ``rate = 1 - n_keep / n``:
       0 up to 50 %, 0.1 at 70 %, 0.2 at 90 %. (A slope of 1 cost up to 7 points on
       clean digits at 90 %; docs/quality-study.md.) In a hard task, where the hard rows
       are not the atypical ones (``atypicality < ATYPICAL_MIN``, see
       :func:`hardness_atypicality`), the rate term starts at rate 0 and has a floor
       that grows as the atypicality falls (:func:`hard_task_drop`): the larger of
       ``floor((n - n_keep) * RATE_SLOPE)`` rows and ``floor(n * (1 - atypicality /
       ATYPICAL_MIN) / 2)`` rows, half of all rows where hardness does not follow
       atypicality at all (atypicality <= 0). Outside a hard task, the rate term's rows
       beyond the outlier mode's are scaled by their typical share (``typical``, see
       :func:`typical_share`): a flipped label makes its input hard whatever the input
       looks like, so about half of the noise among them is typical
       (``TYPICAL_EVEN``), while a clean hard row is mostly a rare input, which D2's
       coverage keeps. Of those rows the hardest ``floor(r * min(1, share /
       TYPICAL_EVEN))`` of ``r`` are dropped: all of them at a share of one half (no
       sign that they are rare inputs), none where none is typical. Seed 0, AUM and
       EL2N, the network's embeddings, the 10-20 % hardest rows: 0.01-0.08 on clean
       digits, 0.20-0.37 with 10 % noise; 0.28-0.31 on clean Fashion-MNIST, 0.46-0.64
       with 20 % noise (docs/quality-study.md, stop 30).
    3. ``beta = max(beta_mode, beta_rate)`` (the mode already drops the hardest rows; the
       sum dropped too many), capped so that the ``n_keep`` rows still fit: at most
       ``n - n_keep`` rows are dropped. Constant scores drop nothing. Capping beta at a
       share (1/3, 1/2, 3/4) of the drop budget, so that D2 always chooses part of it,
       met no more acceptance cells and lost some (docs/quality-study.md, "The two open
       rule items").

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    n_keep : int, rows the selection keeps, ``0 <= n_keep <= n``
    atypicality : float, optional
        :func:`hardness_atypicality` of the rows (None: not known or no signal, the rate
        term starts at ``RATE_FREE``).
    typical : Typical, optional
        The typical inputs among the rows the atypicality read (None: the rate term is not
        scaled).

    Returns
    -------
    beta : float, ``floor(beta * n)`` (on beta's decimal value) is the number dropped
    reason : str, what was chosen and why
    """
    n = scores.size
    if n == 0 or n_keep >= n:
        return 0.0, "auto: 0 (every row is kept)"
    if not scores.max() > scores.min():
        return 0.0, "auto: 0 (constant scores: no row is harder than another)"
    mode = high_mode(scores)
    mode_drop = min(mode.count, n - n_keep)
    rate = 1.0 - n_keep / n
    hard = atypicality is not None and atypicality < ATYPICAL_MIN
    start = 0.0 if hard else RATE_FREE
    rate_drop = min(hard_task_drop(n, n_keep, atypicality) if hard else
                    rate_term_drop(n, n_keep), n - n_keep)
    share = None if hard or typical is None or rate_drop <= mode_drop else \
        typical_share(scores, mode_drop, rate_drop, typical)
    if share is not None:
        rate_drop = mode_drop + int((rate_drop - mode_drop) * min(1.0, share / TYPICAL_EVEN))
    beta_rate = max(0.0, rate - start) * RATE_SLOPE
    capped = mode.count > n - n_keep  # the rate term never exceeds n - n_keep
    drop = max(mode_drop, rate_drop)
    beta = beta_dropping(drop, n)
    parts = [f"outlier mode {mode.count / n:.3f}: {mode.why}" if mode.found else
             f"no outlier mode ({mode.why})",
             f"rate term {beta_rate:.3f} (max(0, rate {rate:.3f} - {start:g}) * "
             f"{RATE_SLOPE:g})"]
    if hard:
        parts.append(f"hard task (hardness-atypicality {atypicality:.3f} < {ATYPICAL_MIN:g}):"
                     f" the rate term starts at rate 0 and drops at least "
                     f"{hard_task_floor(atypicality):.3f} of the rows ((1 - atypicality / "
                     f"{ATYPICAL_MIN:g}) * {FLOOR_MAX:g}, at most {FLOOR_MAX:g})")
    elif atypicality is not None:
        parts.append(f"hardness-atypicality {atypicality:.3f}")
    if share is not None:
        parts.append(f"rate term scaled to {min(1.0, share / TYPICAL_EVEN):.3f} of its rows "
                     f"beyond the outlier mode (typical share {share:.3f} / {TYPICAL_EVEN:g}, "
                     f"at most 1)")
    if capped:
        parts.append(f"capped so that n_keep={n_keep} rows remain")
    return beta, f"auto: {beta:.4f} = drop {drop} of {n} rows; " + "; ".join(parts)


def atypicality_rows(n: int) -> np.ndarray:
    """The rows :func:`hardness_atypicality` reads, int64 sorted: all ``n`` up to
    ``ATYPICAL_ROWS``, else the ``ATYPICAL_ROWS`` with the lowest tie keys
    (:mod:`d2fast._ties`: a fixed sample that looks random, the same on every run, machine
    and shard layout)."""
    if n <= ATYPICAL_ROWS:
        return np.arange(n, dtype=np.int64)
    keys = tie_keys(np.arange(n))
    return np.sort(np.argpartition(keys, ATYPICAL_ROWS - 1)[:ATYPICAL_ROWS]).astype(np.int64)


def sample_atypicality(emb: np.ndarray, scores: np.ndarray, k: int, metric: str,
                       backend: str = "auto",
                       rows: np.ndarray | None = None) -> tuple[float | None, Any]:
    """``(hardness_atypicality, graph)``: :func:`hardness_atypicality` on the exact union
    kNN graph of the rows given, those of :func:`atypicality_rows` (float (m, d) checked
    embeddings, float64 (m,) scores; or the ``rows`` of them, sorted int64 ids, read
    straight into the search's float32 copy; k lowered to m - 1; ``metric`` as
    :func:`d2fast.knn_graph`'s), and that graph; ``(None, None)`` for m < 3."""
    if rows is not None:
        scores = scores[rows]
    m = scores.size
    if m < 3:
        return None, None
    g = graph_of_rows(emb, rows, min(k, m - 1), metric=metric, graph="union", knn="exact",
                      knn_params=None, progress=False, backend=backend)
    return hardness_atypicality(g, scores), g


def hardness_atypicality(graph: Any, scores: np.ndarray) -> float | None:
    """How far the hard rows are the atypical ones: Spearman's rank correlation between a
    row's score and its mean distance to its graph neighbours (rows without neighbours
    left out; None when fewer than 3 rows remain or either side is constant).

    Hard rows that lie far from the others are rare inputs: the network must memorise
    them and D2's coverage keeps them (Feldman, NeurIPS 2020). Where hardness does not
    follow atypicality, typical inputs are hard because of their labels (noise, classes the
    inputs do not separate), and such rows cost more than they teach (Sorscher et al.,
    NeurIPS 2022: with little data for the task, keep the easy examples). Study (stop 28,
    k = 5, 3-9 seeds; docs/quality-study.md): 0.11-0.70 on Fashion-MNIST, digits and
    MNIST-5k with 0-20 % label noise (below 0.2 only forgetting with 20 % noise on
    label-free embeddings), 0.01-0.30 with 40 % noise; -0.14-0.37 on the two text sets of
    about 40 overlapping classes (above 0.2 only WordNet without noise on the scoring
    network's embeddings, AUM and EL2N), and -0.07-0.48 on the held-out language-ID set.

    Parameters
    ----------
    graph : :class:`d2fast.Graph` of the rows (CSR ``indptr``, ``indices``, ``distances``)
    scores : float64 of shape (graph.n,), higher = harder
    """
    far, has = mean_distances(graph)
    return _spearman(scores[has], far[has])


def mean_distances(graph: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(far, has)``: float64 of shape (n,), each row's mean distance to its graph
    neighbours (0 without any); bool of shape (n,), whether it has any."""
    degree = np.diff(graph.indptr)
    row = np.repeat(np.arange(graph.n, dtype=np.int64), degree)
    far = np.bincount(row, weights=graph.distances, minlength=graph.n).astype(np.float64)
    has = degree > 0
    far[has] /= degree[has]
    return far, has


def typical_flags(graph: Any) -> np.ndarray:
    """bool of shape (n,): the typical inputs, rows whose mean distance to their graph
    neighbours is at or below the median over the rows with neighbours (a row without
    neighbours is not typical)."""
    far, has = mean_distances(graph)
    return has & (far <= np.median(far[has])) if has.any() else has


def typical_share(scores: np.ndarray, lo: int, hi: int, typical: Typical) -> float | None:
    """The share of typical inputs among the sampled rows (``typical``) at positions ``lo``
    to ``hi - 1`` of the hardest-first order of all n rows (highest score first; ties:
    lower tie key first, as :func:`hard_prune_pool`); None when no sampled row is there.
    ``scores``: float64 of shape (n,). O(n) time: no sort of all rows."""
    inside = among_hardest(scores, hi, typical.rows) & ~among_hardest(scores, lo, typical.rows)
    return float(typical.flags[inside].mean()) if inside.any() else None


def among_hardest(scores: np.ndarray, m: int, rows: np.ndarray) -> np.ndarray:
    """bool of ``rows``' shape: whether each row is among the ``m`` hardest of all n rows in
    :func:`hard_prune_pool`'s order (highest score first; ties: lower tie key first), from
    the m-th highest score and, among the rows tied at it, the tie keys (O(n) time).
    ``scores``: float64 of shape (n,); ``rows``: int64 ids."""
    n = scores.size
    if m <= 0 or m >= n:
        return np.full(rows.shape, m >= n and n > 0)
    t = np.partition(scores, n - m)[n - m]  # the m-th highest score
    need = m - int(np.count_nonzero(scores > t))  # rows scored t among the m: >= 1
    cut = np.partition(tie_keys(np.flatnonzero(scores == t)), need - 1)[need - 1]
    s = scores[rows]
    out = s > t
    tied = np.flatnonzero(s == t)
    out[tied] = tie_keys(rows[tied]) <= cut
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two float arrays of one shape (average ranks for
    ties); None when fewer than 3 values or either is constant."""
    if a.size < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    norm = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / norm) if norm > 0 else None


def _ranks(v: np.ndarray) -> np.ndarray:
    """float64 ranks 0..n-1 of v, tied values sharing the mean of their ranks."""
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    start = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    size = np.diff(np.r_[start, v.size])
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(start + (size - 1) / 2.0, size)
    return ranks


def label_check_rows(scores: np.ndarray, pool: np.ndarray,
                     n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`label_check` checks against the labels: ``(pruned, pool
    hardest first)``, int64 ids.

    - ``pruned``: the rows outside ``pool`` (sorted), i.e. the rows ``hard_prune="auto"``
      drops (its outlier mode's and rate term's), which the check may rescue;
    - the pool's rows, hardest first (ties: lower tie key first, :mod:`d2fast._ties`),
      which the check may drop, hardest first, up to the drop budget.

    Both empty when every row is kept or the scores are constant.

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    pool : int64 of shape (m,), sorted: the rows left by ``hard_prune="auto"``
    n_keep : int, rows the selection keeps, ``n_keep <= m``
    """
    empty = np.empty(0, dtype=np.int64)
    if nothing_to_check(scores, n_keep):
        return empty, empty
    outside = np.ones(scores.size, dtype=bool)
    outside[pool] = False
    hardest = np.lexsort((tie_keys(pool), -scores[pool]))
    return np.flatnonzero(outside).astype(np.int64), pool[hardest].astype(np.int64)


def nothing_to_check(scores: np.ndarray, n_keep: int) -> bool:
    """Whether the label check has no row to check: every row is kept, or the scores are
    constant (float64 ``scores`` of shape (n,))."""
    return n_keep >= scores.size or not scores.max() > scores.min()


def disputed_labels(graph: Any, labels: np.ndarray) -> np.ndarray:
    """bool of shape (n,): rows whose label fewer than half of their graph neighbours share
    (deep k-NN filtering, Bahri et al., ICML 2020). ``graph``: a :class:`d2fast.Graph` of
    all n rows (CSR ``indptr``, ``indices``); ``labels``: int class ids of shape (n,). A
    row without neighbours is not disputed."""
    return label_votes(graph, labels)[0]


def unanimous_labels(graph: Any, labels: np.ndarray) -> np.ndarray:
    """bool of shape (n,): rows whose label all their graph neighbours share (true for a
    row without neighbours). ``graph`` and ``labels`` as :func:`disputed_labels`."""
    return label_votes(graph, labels)[1]


def label_votes(graph: Any, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(disputed_labels, unanimous_labels)`` from one pass over the graph's edges
    (arguments as :func:`disputed_labels`)."""
    degree = np.diff(graph.indptr)
    row = np.repeat(np.arange(graph.n, dtype=np.int64), degree)
    same = np.bincount(row, weights=labels[graph.indices] == labels[row], minlength=graph.n)
    return 2 * same < degree, same == degree


def among_easy(graph: Any, labels: np.ndarray, scores: np.ndarray,
               rows: np.ndarray) -> np.ndarray:
    """bool of shape (rows.size,): whether the median score of each row's graph neighbours
    of another label is at or below the median score of all rows. A mislabelled row sits
    among easy rows of another class; a hard row between two confusable classes sits among
    hard ones (README, "The label check and class budgets"). "At or below": on scores tied
    at their minimum (forgetting counts, mostly 0) no row is below the median. False for a
    row with no neighbour of another label. ``rows``: int64 ids; O(edges of ``rows``) time
    and memory."""
    has, mid = other_label_medians(graph, labels, scores, rows)
    out = np.zeros(rows.size, dtype=bool)
    out[has] = mid <= np.median(scores)
    return out


def other_label_medians(graph: Any, labels: np.ndarray, scores: np.ndarray,
                        rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(has, median)``: bool of shape (rows.size,), whether a row of ``rows`` has a graph
    neighbour of another label; float64 of shape (has.sum(),), the median score of those
    neighbours, per such row. Arguments as :func:`among_easy`."""
    owner, edges = row_edges(graph.indptr, rows)
    nb = graph.indices[edges]
    other = labels[nb] != labels[rows[owner]]
    owner, value = owner[other], scores[nb[other]]
    value = value[np.lexsort((value, owner))]
    count = np.bincount(owner, minlength=rows.size)
    start = np.cumsum(count) - count
    has = count > 0
    return has, (value[(start + (count - 1) // 2)[has]] + value[(start + count // 2)[has]]) / 2


def label_check(graph: Any, labels: np.ndarray, scores: np.ndarray, pool: np.ndarray,
                n_keep: int) -> tuple[np.ndarray, np.ndarray, int, str]:
    """``hard_prune="auto"`` with labels: the pool after checking it and the hard-pruned
    rows against the labels on ``graph``, the kNN graph of all n rows.

    0. Hard task (:func:`hard_task_pool`): where the embedding separates the classes
       poorly, the rate term starts at rate 0, with :func:`hard_task_floor` of the scores'
       hardness-atypicality on ``graph``.
    1. Rescue: of the hard-pruned rows (the outlier mode's and the rate term's), those whose
       label all their neighbours share (:func:`unanimous_labels`) return to the pool (with
       the median score, :func:`label_checked_pool`). The hard prune read the scores only;
       overturning it takes unanimous neighbours, since a majority is weak evidence when
       the embeddings come from the network that memorised the labels (held-out MNIST-5k:
       15 % of the flipped rows had a majority of neighbours of their flipped label).
    2. Drop: the pool's disputed rows (:func:`disputed_labels`) whose neighbours of other
       labels are easy (:func:`among_easy`), hardest first, as many as the drop budget
       ``pool.size + rescued - n_keep`` allows.

    Parameters
    ----------
    graph : :class:`d2fast.Graph` of all n rows
    labels : int class ids of shape (n,)
    scores : float64 of shape (n,), higher = harder
    pool : int64 of shape (m,), sorted: the rows left by ``hard_prune="auto"``
    n_keep : int, rows the selection keeps, ``n_keep <= m``

    Returns
    -------
    As :func:`label_checked_pool`, the reason led by :func:`hard_task_pool`'s.
    """
    disputed, agreed = label_votes(graph, labels)
    agreement = 1.0 - float(disputed.mean())
    pool, task = hard_task_pool(scores, pool, n_keep, agreement, None if
                                agreement >= AGREE_MIN else hardness_atypicality(graph, scores))
    pruned, hardest = label_check_rows(scores, pool, n_keep)
    room = pool.size + int(agreed[pruned].sum()) - n_keep
    hardest = hardest[disputed[hardest]]
    dropped = np.sort(hardest[among_easy(graph, labels, scores, hardest)][:room])
    pool, scores, rescued, why = label_checked_pool(scores, pool, pruned, dropped, agreed)
    return pool, scores, rescued, task + why


def hard_task_pool(scores: np.ndarray, pool: np.ndarray, n_keep: int, agreement: float,
                   atypicality: float | None = None) -> tuple[np.ndarray, str]:
    """``hard_prune="auto"`` with labels, before the label check: ``(pool, reason)``.

    ``agreement`` is the share of rows whose label at least half of their graph neighbours
    share (``1 - disputed_labels(...).mean()``): 0.82-0.99 on the study's clean image sets,
    0.13-0.57 on its two text sets of about 40 overlapping classes, and lower with label
    noise (0.31-0.59 on the image sets with 40 % flipped; docs/quality-study.md, stop 27).
    Below ``AGREE_MIN`` the embedding separates the classes poorly: the task is hard for
    the data at hand, the hardest rows are mostly label noise or confusion that the label
    check cannot tell apart, and keeping easy rows pays (Sorscher et al., NeurIPS 2022:
    with little data for the task, keep the easy examples). Then the rate term starts at
    rate 0: ``floor((n - n_keep) * RATE_SLOPE)`` of the hardest rows are dropped, or
    :func:`hard_task_floor`'s share of all rows (from the hardness-atypicality on the
    label check's graph) or the pool's own drop if larger, at most ``n - n_keep``. Else
    the pool is returned as it is.

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    pool : int64 of shape (m,), sorted: the rows left by ``hard_prune="auto"``
    n_keep : int, rows the selection keeps, ``n_keep <= m``
    agreement : float in [0, 1]
    atypicality : float, optional
        :func:`hardness_atypicality` (None: no floor).
    """
    n = scores.size
    if agreement >= AGREE_MIN or nothing_to_check(scores, n_keep):
        return pool, f"kNN label agreement {agreement:.3f}; "
    drop = min(n - n_keep, max(n - pool.size, hard_task_drop(n, n_keep, atypicality)))
    floor = "" if atypicality is None else \
        f", hardness-atypicality {atypicality:.3f}: at least {hard_task_floor(atypicality):.3f}"
    return hard_prune_pool(scores, beta_dropping(drop, n), n_keep), (
        f"hard task (kNN label agreement {agreement:.3f} < {AGREE_MIN:g}): the rate term "
        f"starts at rate 0{floor}, drop {drop} of {n} rows; ")


def label_checked_pool(scores: np.ndarray, pool: np.ndarray, pruned: np.ndarray,
                       dropped: np.ndarray,
                       agreed: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, str]:
    """The pool after the label check (:func:`label_check`).

    The hard-pruned rows ``pruned`` whose label their neighbours all share (``agreed``) are
    rescued: they return to the pool with the median score of the pool's agreed rows. The
    kNN check says a row is probably not a label error, not that it deserves priority, so a
    rescued row is kept where it covers a region, not first. The rows ``dropped`` leave the
    pool. README, "The label check and class budgets".

    Parameters
    ----------
    scores : float64 of shape (n,), higher = harder
    pool : int64 of shape (m,), sorted: the rows left by ``hard_prune="auto"``
    pruned : int64, the rows the hard prune drops
    dropped : int64, rows of the pool to drop
    agreed : bool of shape (n,), :func:`unanimous_labels`

    Returns
    -------
    pool : int64, sorted: ``pool`` plus the rescued rows, minus ``dropped``
    scores : float64 of shape (n,): ``scores``, or a copy with the rescued rows' scores set
        to the median
    rescued : int, rows rescued
    reason : str, one line for logs and sidecars
    """
    rescued = pruned[agreed[pruned]]
    why = (f"label check: {rescued.size} of the {pruned.size} hard-pruned rows kept (their "
           f"label shared by all their graph neighbours)" if pruned.size else
           "label check: no row hard-pruned")
    extra = (f"{dropped.size} disputed rows of the pool dropped, hardest first (their "
             f"neighbours of other labels mostly easy)")
    if rescued.size == dropped.size == 0:
        return pool, scores, 0, f"{why}; {extra}"
    keep = np.zeros(scores.size, dtype=bool)
    keep[pool] = True
    keep[rescued] = True
    keep[dropped] = False
    pool = np.flatnonzero(keep)
    if rescued.size:
        median = float(np.median(scores[pool[agreed[pool]]]))
        scores = scores.copy()
        scores[rescued] = median
        why += f" with score {median:.4g} (the median of the pool's agreed rows)"
    if pruned.size:
        why += f", {pruned.size - rescued.size} rows dropped"
    return pool, scores, int(rescued.size), f"{why}; {extra}"


def rate_term_drop(n: int, n_keep: int) -> int:
    """Rows the rate term of :func:`auto_hard_prune` drops:
    ``floor(max(0, (n - n_keep) - RATE_FREE * n) * RATE_SLOPE)``."""
    return int(max(0.0, (n - n_keep) - RATE_FREE * n) * RATE_SLOPE)


def hard_task_drop(n: int, n_keep: int, atypicality: float | None = None) -> int:
    """Rows the rate term drops in a hard task (:func:`hard_task_pool`,
    :func:`auto_hard_prune`): ``floor((n - n_keep) * RATE_SLOPE)``, or
    ``floor(n * hard_task_floor(atypicality))`` if larger (not capped at ``n - n_keep``)."""
    return max(int((n - n_keep) * RATE_SLOPE), int(n * hard_task_floor(atypicality)))


def hard_task_floor(atypicality: float | None) -> float:
    """The least share of all rows a hard task drops: ``(1 - atypicality / ATYPICAL_MIN) *
    FLOOR_MAX``, from 0 at the bound to 1/2 at atypicality <= 0 (0 for None or at or above
    the bound).

    The lower the atypicality, the more of the hard rows are typical inputs with a hard
    label, mostly noise: with 40 % of the labels flipped the study's sets fall from
    0.23-0.70 clean to 0.01-0.30 (images) and from -0.11-0.48 to -0.14-0.13 (text); below
    0.1, easiest-first often led D2 with the rate term alone by 2-6 points at pruning
    rates of 30-70 %. At most half the rows are read as such, so that at 90 % D2 still
    chooses from half of them (docs/quality-study.md, stop 29)."""
    if atypicality is None or atypicality >= ATYPICAL_MIN:
        return 0.0
    return FLOOR_MAX * min(1.0, 1.0 - atypicality / ATYPICAL_MIN)


def beta_dropping(drop: int, n: int) -> float:
    """The smallest float beta >= drop / n with which :func:`hard_prune_pool` drops exactly
    ``drop`` of ``n`` rows (it floors ``beta * n`` on beta's decimal value)."""
    beta = drop / n
    while int(Fraction(repr(beta)) * n) < drop:
        beta = float(np.nextafter(beta, 1.0))
    return beta


def hard_prune_pool(scores: np.ndarray, beta: float, n_keep: int) -> np.ndarray:
    """Row ids (int64, sorted) left after dropping the floor(beta * n) hardest rows
    (highest score; ties: lower tie key dropped first, :mod:`d2fast._ties`, so row order
    does not decide; SPEC 5 leaves the order open); floor on the decimal value of beta.
    O(n) time (:func:`among_hardest`)."""
    n = scores.size
    drop = int(Fraction(repr(float(beta))) * n)
    if n - drop < n_keep:
        raise ValueError(f"hard_prune == {beta} drops {drop} of {n} rows, fewer than "
                         f"n_keep={n_keep} remain")
    return np.flatnonzero(~among_hardest(scores, drop, np.arange(n)))


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
