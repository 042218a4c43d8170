"""Message passing on a graph: ``forward`` (SPEC 3) and ``select`` (SPEC 4)."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from d2fast import _backends
from d2fast._validate import (check_choice, check_int, check_memory, check_real,
                              check_scores)
from d2fast.graph import Graph

MODES = ("sum", "product")
REVERSE = ("weighted", "absolute")
ALGORITHMS = ("auto", "heap", "rounds")
_UNDERFLOW = 1e-6  # median forward weight below which the forward pass is a no-op
# select: a score moves by at most max|scores| per pick, so every score stays within
# max|scores| * (n_keep + 1); below this limit no update can overflow float64 (SPEC 4)
_SELECT_LIMIT = float(np.finfo(np.float64).max) / 2


def _check_graph(graph: Any) -> Graph:
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a d2fast.Graph, got {type(graph).__name__} "
                        "(build one with d2fast.knn_graph or Graph.from_knn)")
    return graph


def forward(graph: Graph, scores: Any, *, gamma_f: float = 1.0, mode: str = "sum",
            backend: str = "auto") -> np.ndarray:
    """Forward message passing: every node gathers its neighbours' scores.

    ``acc_i = sum over neighbours j of exp(-gamma_f * d(i, j)) * s_j`` (float64, CSR order).

    Parameters
    ----------
    graph : Graph
        The kNN graph (n nodes).
    scores : array-like of shape (n,)
        Difficulty scores, higher = harder; negative values are fine.
    gamma_f : float, default=1.0
        Decay of the forward weights with distance, >= 0.
    mode : {'sum', 'product'}, default='sum'
        ``s_i + acc_i`` or ``s_i * acc_i``.
    backend : {'auto', 'cpp', 'numba', 'cuda', 'numpy'}, default='auto'

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    ValueError
        When the passed scores overflow float64 (inf or NaN): rescale the scores.

    Warns
    -----
    UserWarning
        When the median weight ``exp(-gamma_f * d)`` is below 1e-6: the pass then barely
        changes the scores; normalise the embeddings or lower ``gamma_f``.
    """
    graph = _check_graph(graph)
    scores = check_scores(scores, graph.n)
    gamma_f = check_real(gamma_f, "gamma_f")
    product = check_choice(mode, "mode", MODES) == "product"
    weak = underflow(graph, gamma_f)
    if weak is not None:
        warnings.warn(f"forward weights underflow: {weak}, so the forward pass barely changes "
                      "the scores; normalise the embeddings or lower gamma_f", UserWarning,
                      stacklevel=2)
    return forward_pass(graph, scores, gamma_f, product, backend)


def forward_pass(graph: Graph, scores: np.ndarray, gamma_f: float, product: bool,
                 backend: str) -> np.ndarray:
    """:func:`forward` on validated inputs, without the underflow check."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the ValueError below
        out = _backends.get(backend).forward(graph.indptr, graph.indices, graph.distances,
                                             scores, gamma_f, product)
    if not np.isfinite(out).all():
        raise ValueError(f"scores too large: the forward pass overflowed to inf/NaN "
                         f"(max |scores| = {np.abs(scores).max():.3g}, "
                         f"mode={'product' if product else 'sum'!r}); rescale the scores")
    return out


def underflow(graph: Graph, gamma_f: float) -> str | None:
    """Why the forward weights underflow (median ``exp(-gamma_f * d)`` below 1e-6, from a
    sample of at most about 100k edges), or None when they do not."""
    if graph.nnz == 0 or gamma_f == 0.0:
        return None
    sample = graph.distances[:: max(1, graph.nnz // 100_000)].astype(np.float64)
    median = float(np.median(sample))
    weight = np.exp(-gamma_f * median)
    if weight >= _UNDERFLOW:
        return None
    return (f"median exp(-gamma_f * d) = {weight:.2e} (gamma_f={gamma_f}, median "
            f"distance {median:.4g})")


def select(graph: Graph, scores: Any, n_keep: int, *, gamma_r: float = 0.1,
           reverse: str = "weighted", algorithm: str = "auto",
           backend: str = "auto") -> np.ndarray:
    """Greedy selection by reverse message passing.

    Repeatedly picks the unselected node with the largest score (ties: lowest index),
    then lowers each unselected neighbour j of the pick v by
    ``exp(-gamma_r * d(v, j)) * s_v`` (weighted) or ``s_v`` (absolute). When ``s_v < 0``
    the neighbours' scores rise; the lazy max-heap stays exact then.

    Parameters
    ----------
    graph : Graph
        The kNN graph (n nodes).
    scores : array-like of shape (n,)
        Scores after :func:`forward`.
    n_keep : int
        Number of picks, ``0 <= n_keep <= n``.
    gamma_r : float, default=0.1
        Decay of the reverse weights with distance, >= 0.
    reverse : {'weighted', 'absolute'}, default='weighted'
    algorithm : {'auto', 'heap', 'rounds'}, default='auto'
        'heap': the sequential lazy max-heap greedy. 'rounds': picks every non-negative
        strict local maximum at once, in parallel rounds, then finishes the negative phase
        on the heap; the same picks (up to the float summation order of the updates one
        node receives within a round). 'auto': heap, which is 4-7x faster than rounds
        on 2 CPU cores (radix-heap select; see the README's performance table).
    backend : {'auto', 'cpp', 'numba', 'cuda', 'numpy'}, default='auto'
        ``'numpy'`` is the O(n * n_keep) reference loop.

    Returns
    -------
    ndarray of int64, shape (n_keep,)
        Selected node ids in selection order, most important first.

    Raises
    ------
    ValueError
        When ``max|scores| * (n_keep + 1)`` exceeds half the float64 range: the updates
        could then overflow (a pick moves a score by at most ``max|scores|``); rescale.
    """
    graph = _check_graph(graph)
    scores = check_scores(scores, graph.n)
    n_keep = check_int(n_keep, "n_keep", 0, graph.n, f"n={graph.n}")
    peak = float(np.abs(scores).max())
    if peak * (n_keep + 1) > _SELECT_LIMIT:
        raise ValueError(f"scores too large: max |scores| = {peak:.3g} with n_keep={n_keep} "
                         f"could overflow float64 in the updates (max |scores| * (n_keep + 1) "
                         f"must be <= {_SELECT_LIMIT:.3g}); rescale the scores")
    gamma_r = check_real(gamma_r, "gamma_r")
    absolute = check_choice(reverse, "reverse", REVERSE) == "absolute"
    algorithm = check_choice(algorithm, "algorithm", ALGORITHMS)
    kern = _backends.get(backend)
    if algorithm == "rounds" and not hasattr(kern, "select_rounds"):
        raise ValueError(f"algorithm='rounds' is not implemented by the {kern.NAME!r} backend "
                         "(use algorithm='heap' or backend='cpp')")
    # scores, flags, queue entries (16 B, about two per node); rounds adds its stamps/picks
    check_memory((48.0 if algorithm == "rounds" else 41.0) * graph.n + 16.0 * n_keep,
                 f"select(n={graph.n})")
    run = kern.select_rounds if algorithm == "rounds" else kern.select_heap  # auto: heap
    return run(graph.indptr, graph.indices, graph.distances, scores, n_keep, gamma_r, absolute)


_GAMMA_EDGES = 1 << 20  # auto_gamma_r: at most this many edges (evenly spaced) are summed


def auto_gamma_r(graph: Graph, n_keep: int) -> tuple[float, str]:
    """``gamma_r="auto"``: the reverse decay at which each pick removes, in all, the score
    of the rows it stands for.

    Keeping ``n_keep`` of ``n`` rows, each kept row stands for ``m = n / n_keep - 1``
    dropped rows. A pick v lowers its neighbour j by ``exp(-gamma_r * d(v, j)) * s_v``,
    i.e. removes that fraction of a row's worth of score; ``gamma_r`` is chosen so that
    the reverse weights of a row's edges sum to ``m`` on average over the rows:
    ``mean_i sum_{j in N(i)} exp(-gamma_r * d(i, j)) = m`` (bisection; the sum is
    decreasing in ``gamma_r``). The rule depends only on the graph's distances (so on the
    data's scale) and the budget: at high pruning rates each pick suppresses its whole
    neighbourhood (diversity), at low rates hardly anything (difficulty).

    Parameters
    ----------
    graph : Graph
        The kNN graph the selection runs on (n nodes).
    n_keep : int
        Picks, ``0 <= n_keep <= n``.

    Returns
    -------
    gamma_r : float, >= 0, in the inverse unit of the graph's distances
    reason : str, one line for logs and sidecars

    Notes
    -----
    When ``m`` is at least the mean degree (the weights cannot sum to more than it),
    ``gamma_r = 0``: every pick lowers its neighbours by its full score. When ``m`` is at
    most the mean number of zero-distance edges a row has (duplicates, weight 1 for every
    ``gamma_r``), or nothing is picked or dropped, or the graph has no edge of positive
    length, ``gamma_r`` is the value at which a median-length edge has weight ``e^-30``
    (the reverse pass then touches duplicates only), or 0 when no edge has positive length.
    Graphs with more than 2^20 edges are estimated on 2^20 evenly spaced edges.
    ``m`` counts the rows of this graph, i.e. after hard pruning; counting the rows left
    after the rate term's hard prune only, or all rows, was tried and not adopted
    (docs/quality-study.md, "The two open rule items").
    """
    graph = _check_graph(graph)
    n_keep = check_int(n_keep, "n_keep", 0, graph.n, f"n={graph.n}")
    return gamma_r_from_sample(graph.n, graph.nnz, n_keep,
                               graph.distances[gamma_sample(graph.nnz)])


def gamma_sample(nnz: int) -> np.ndarray:
    """The edges :func:`auto_gamma_r` reads in a graph of ``nnz`` edges: their positions in
    CSR order (rows by id, each row's edges by neighbour id), int64 of shape (min(nnz,
    2^20),), increasing; all edges up to 2^20, else 2^20 evenly spaced ones."""
    if nnz <= _GAMMA_EDGES:
        return np.arange(nnz, dtype=np.int64)
    return np.linspace(0, nnz - 1, _GAMMA_EDGES).astype(np.int64)


def gamma_r_from_sample(n: int, nnz: int, n_keep: int, sample: np.ndarray) -> tuple[float, str]:
    """:func:`auto_gamma_r` of a graph given by its row count ``n``, its edge count ``nnz``
    and the distances of its edges at :func:`gamma_sample` ``(nnz)``, in that order
    (``sample``, shape (min(nnz, 2^20),)); ``0 <= n_keep <= n``, ``n >= 1``. The one
    implementation of the rule: ``d2fast.distributed`` gathers the sample from the
    shards' graph files and calls it too."""
    d = np.asarray(sample).astype(np.float64)
    # the weights of the sampled edges, scaled to all edges, per row
    per_row = nnz / max(d.size, 1) / max(n, 1)
    positive = d[d > 0]
    if positive.size == 0:
        return 0.0, "auto: 0 (no edge of positive length: every reverse weight is 1)"
    scale = float(np.median(positive))
    sharp = 30.0 / scale  # a median-length edge has weight e^-30
    if n_keep == 0 or n_keep == n:
        return sharp, f"auto: {sharp:.4g} (nothing to trade: n_keep={n_keep} of {n})"
    m = n / n_keep - 1.0
    degree = nnz / n
    duplicates = (d.size - positive.size) * per_row
    if m >= degree:
        return 0.0, (f"auto: 0 (each kept row stands for {m:.3g} rows, at least the mean "
                     f"degree {degree:.3g}: picks lower their whole neighbourhood)")
    if m <= duplicates:
        return sharp, (f"auto: {sharp:.4g} (each kept row stands for {m:.3g} rows, not more "
                       f"than its {duplicates:.3g} zero-distance neighbours on average)")

    def weight(gamma: float) -> float:  # mean over rows of the summed reverse weights
        return float(np.exp(-gamma * positive).sum()) * per_row + duplicates

    lo, hi = 0.0, sharp
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if weight(mid) > m:
            lo = mid
        else:
            hi = mid
    gamma = 0.5 * (lo + hi)
    return gamma, (f"auto: {gamma:.4g} (each kept row stands for m = n / n_keep - 1 = "
                   f"{m:.3g} rows; the reverse weights of a row's edges sum to m on average; "
                   f"median edge {scale:.3g}, weight there {np.exp(-gamma * scale):.3f})")
