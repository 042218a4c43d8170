"""``prune``: D2 Pruning from embeddings and scores in one call."""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from d2fast import _backends
from d2fast._ties import tie_order
from d2fast._validate import (check_choice, check_emb, check_k, check_labels, check_real,
                              check_scores, label_names, resolve_n_keep)
from d2fast.budgets import (BUDGETS, Typical, atypicality_rows, by_class, class_budgets,
                            hard_prune_pool, label_check, merge_balanced, nothing_to_check,
                            resolve_hard_prune, sample_atypicality, typical_flags)
from d2fast.graph import GRAPHS, METRICS, Graph, check_prebuilt, graph_of_rows
from d2fast.knn import KNN
from d2fast.passing import MODES, REVERSE, auto_gamma_r, forward_pass, select, underflow


def prune(emb: Any, scores: Any, k: int | None = None, rate: float = 0.5, *,
          n_keep: int | None = None, gamma_f: float = 1.0, gamma_r: Any = "auto",
          metric: str | None = None, graph: str | Graph = "union", mode: str = "sum",
          reverse: str = "weighted", labels: Any = None, class_budget: str | None = None,
          hard_prune: Any = "auto", knn: str = "auto", knn_params: dict | None = None,
          dedup: float | None = None, backend: str = "auto", progress: bool = False,
          return_info: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Select a coreset with D2 Pruning: kNN graph -> forward -> greedy reverse selection.

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings (ndarray, memmap or torch tensor).
    scores : array-like of shape (n,)
        Difficulty scores, higher = harder/more important (negative values are fine).
    k : int, optional
        Neighbours per node in the kNN graph, ``1 <= k < n``; default 5. With a prebuilt
        ``graph``, leave it unset (the graph fixes it) or give the graph's k.
    rate : float, default=0.5
        Fraction REMOVED, ``0 <= rate < 1``; keeps ``floor((1 - rate) * n)`` rows,
        computed on the decimal value of rate (rate=0.9, n=10 keeps 1).
    n_keep : int, optional
        Number of rows to keep; overrides ``rate`` when given.
    gamma_f : float, default=1.0
        Distance decay of the forward weights ``exp(-gamma_f * d)``.
    gamma_r : float or 'auto', default='auto'
        Distance decay of the reverse weights ``exp(-gamma_r * d)``, ``>= 0``. ``'auto'``:
        per graph (one per class with ``labels``), the decay at which the reverse weights
        of a row's edges sum, on average, to ``n / n_keep - 1`` (the rows each kept row
        stands for): :func:`d2fast.passing.auto_gamma_r`. It follows the scale of the
        distances and the budget: strong diversity at high pruning rates, difficulty
        first at low ones. (SPEC 4 gives 0.1 as the default; 0.1 is the official code's
        CIFAR-10 setting on unnormalised features, and on unit-length embeddings, with
        neighbour distances of 0.1-1, it lowers every neighbour by nearly the full score
        of each pick at every rate; README, "hard_prune='auto' and coreset quality".)
    metric : {'euclidean', 'sqeuclidean', 'cosine'}, optional
        Distance of the kNN graph; default 'euclidean'. With a prebuilt ``graph``, leave
        it unset or give the graph's metric.
    graph : {'union', 'directed'} or Graph, default='union'
        The kind of kNN graph to build (see :func:`d2fast.knn_graph`), or a prebuilt
        :class:`d2fast.Graph` of the n rows (e.g. from ``knn_graph`` or ``Graph.load``),
        reused as it is. Options that contradict its ``meta`` (``k``, ``metric``, ``knn``,
        ``knn_params``) are an error naming both values. With ``labels`` or
        ``hard_prune`` a prebuilt graph is cut into induced subgraphs (:meth:`Graph.subgraph`:
        a row keeps its edges to rows of its class / left after hard pruning), whereas a
        built graph is the kNN graph of each class's rows.
    mode : {'sum', 'product'}, default='sum'
    reverse : {'weighted', 'absolute'}, default='weighted'
    labels : array-like of shape (n,), optional
        Class of each row, the training labels (integers, or strings/objects: classes in
        sorted order). They serve ``hard_prune="auto"``'s label check (below) and, with
        ``class_budget``, class-balanced selection.
    class_budget : {'proportional', 'uniform'}, optional
        With ``labels``: class-balanced selection, one graph per class and per-class
        budgets that sum to ``n_keep``. Proportional: each class keeps its share of the
        rows (largest remainder). Uniform: equal budgets, capped at the class size, the
        rest redistributed. The classes' picks are merged so that every prefix of the
        ranking stays balanced (the t-th pick of a class with budget b sits at
        (t + 0.5) / b). Default None: one graph of all rows, the labels serve the label
        check only. (SPEC 5 makes ``labels`` mean class-balanced selection, with
        'proportional' the default; until stop 22 it was. Per-class D2 lost to one graph
        on Fashion-MNIST and digits with 0-40 % label noise, 3 seeds, 84 cells: README,
        "The label check and class budgets".)
    hard_prune : float or 'auto', default='auto'
        Drop the ``floor(hard_prune * n)`` hardest rows (highest score, ties: see Notes)
        before the graph is built (the CCS/D2 "mis-ratio"), ``0 <= hard_prune < 1``.
        ``'auto'``: the larger of the fraction of rows in a separate mode of high scores
        (mislabelled rows) and ``max(0, rate - 0.5) / 2``, capped so that ``n_keep``
        rows remain; see :func:`d2fast.budgets.auto_hard_prune`. Without ``labels``, in
        a hard task the rate term starts at rate 0 (``rate / 2``) and drops at least
        ``(1 - a / 0.2) / 2`` of all rows (half at ``a <= 0``): where the hard rows are
        not the atypical ones, i.e. Spearman's correlation ``a`` between a row's score and
        its mean distance to its k nearest neighbours is below 0.2
        (:func:`d2fast.budgets.hardness_atypicality`, on the exact kNN graph of at most
        10,000 rows, a fixed sample: one more small kNN search, whose graph serves the
        selection when it holds all rows and nothing is hard-pruned). Outside a hard task
        the rate term's rows beyond the mode's are dropped in proportion to their typical
        share over one half (rows with a mean neighbour distance at or below the median,
        read on the same sample; :func:`d2fast.budgets.typical_share`): where the hardest
        rows are rare inputs, fewer are dropped. With ``labels``, rows
        are checked against them on the graph of all rows (the prebuilt ``graph``, or one
        more kNN graph built as the selection's: k, metric, knn). Where fewer than half
        of the rows have a label that at least half of their neighbours share (a hard
        task: the embedding separates the classes poorly), the rate term starts at rate
        0: ``rate / 2``, or the same floor read on that graph if larger
        (:func:`d2fast.budgets.hard_task_pool`). Of the rows the rule
        drops (outlier mode and rate term), those whose label all their neighbours share
        are kept with the median score of the pool's agreed rows; then the pool's rows
        whose label fewer than half of their neighbours share and whose neighbours of
        other labels are mostly easy (median score at or below the median) are dropped,
        hardest first, while the drop budget lasts, at any rate
        (:func:`d2fast.budgets.label_check`). ``0.0`` is pure D2.
    knn : {'auto', 'exact', 'hnsw', 'ivf'}, default='auto'
        kNN search; see :func:`d2fast.knn_graph` (also for ``knn_params``).
    knn_params : dict, optional
    dedup : float, optional
        Remove near-duplicates before the forward pass: rows joined by graph edges of
        distance ``<= dedup`` (in the graph's metric) form groups (connected components;
        ``dedup=0`` joins exact duplicates only), and each group keeps only its lowest row
        id. Only graph edges are compared (a duplicate is found when it is among a row's
        k nearest, as exact duplicates are: distance ties go to the lower index); groups
        are chained, so a group can span more than ``dedup``; with per-class selection
        (``class_budget``), rows of different classes are never grouped. Budgets count the
        rows left; ``n_keep`` must not exceed them.
    backend : {'auto', 'cpp', 'numba', 'cuda', 'numpy'}, default='auto'
    progress : bool, default=False
        Show a progress bar: the kNN search's, or with per-class selection one bar over
        the classes.
    return_info : bool, default=False
        Also return a dict of the choices made and the time taken (see Returns).

    Returns
    -------
    keep : ndarray of int64, shape (n_keep,)
        Kept row ids in selection order, most important first.
    info : dict, only with ``return_info=True``
        The resolved choices: ``n``, ``n_keep``; the graph: ``graph_source`` ('built' or
        'given'), ``metric``, ``normalization`` ('l2': rows scaled to unit length, for
        cosine; 'none'), ``graph`` (kind), ``k``, ``knn`` (the method 'auto' became:
        'exact', 'ivf', 'hnsw'; 'mixed' when the classes' graphs differ), ``knn_params``
        (nlist, nprobe, candidates, pca, partition / M, ef_construction, ef_search,
        candidates; None when mixed), ``knn_auto`` (what ``nprobe='auto'`` chose: nprobe,
        recall_target, recall_sampled, queries_sampled; else None), ``faiss`` (version)
        -- None where a prebuilt graph's ``meta``
        does not say; ``classes``: one dict per class (one in all without labels) with
        ``label`` (name or id; None without per-class selection), ``rows`` (after hard
        pruning and dedup), ``n_keep``, ``k`` (lowered to rows - 1 in a small class; None for an
        induced subgraph), ``knn``, ``knn_params``; ``hard_prune`` (the fraction of
        hardest rows the rule takes), ``hard_prune_reason``,
        ``hard_prune_atypicality`` (``'auto'`` without labels: the hard rows' correlation
        with atypicality, see ``hard_prune``; else None), ``hard_pruned`` (rows
        dropped), ``hard_prune_rescued`` (rows of that fraction the label check kept; 0
        without it); ``gamma_r`` (the value
        used; None when ``'auto'`` chose one per class: each class's ``gamma_r`` and
        ``gamma_r_reason`` are in ``classes``, None for a class without a graph),
        ``gamma_r_reason``; ``zero_distance_rows``
        (rows with a neighbour at distance 0); ``dedup`` (eps or None),
        ``dedup_groups`` (int64 (n,): the kept row that represents each row -- itself
        unless it was removed as a duplicate; -1 for hard-pruned rows; None without
        dedup), ``dedup_removed``; ``backend`` (the one used); ``timings_s`` with ``knn``
        (search and CSR build, or cutting subgraphs of a given graph; with the label
        check, its graph of all rows too; without labels, ``'auto'``'s sample graph),
        ``dedup``,
        ``forward``, ``select``, ``total``.

    Warns
    -----
    UserWarning
        Once, at the caller's line: when k is not below the size of some classes (their
        graphs use a lower k, classes named); when the graph has zero-distance edges
        (duplicate rows; count given) and ``dedup`` is not set; when a class's forward
        weights underflow (class named).

    Notes
    -----
    Ties: where scores are equal (forgetting counts are 0 for most rows of a clean data
    set), row order does not decide which rows are kept. The hard prune, the label check
    and, when the forwarded scores tie, the selection break ties by a fixed hash of the
    row id (:mod:`d2fast._ties`) instead of taking the lower id as ``select`` does (SPEC
    4): on rows sorted by class (ImageFolder order) the lower ids kept the first classes
    only. The hash is the same on every run and machine, and ``d2fast.distributed.prune``
    breaks ties with it too.

    Duplicates and ``gamma_r``: a duplicate of a picked row v is a neighbour at distance
    0, so its reverse weight is ``exp(-gamma_r * 0) = 1`` for every ``gamma_r``: its score
    drops by the full score of v ('absolute' drops it by that too). While scores are
    positive this pushes duplicates down; once the remaining scores turn negative, a pick
    RAISES its neighbours' scores by the most at distance 0, so duplicates of kept rows
    win the next picks. With many duplicates and a high ``rate`` the coreset can then
    hold the same row several times over; ``dedup=0`` (or a small eps) prevents that.

    Examples
    --------
    >>> import numpy as np, d2fast
    >>> rng = np.random.default_rng(0)
    >>> emb, scores = rng.normal(size=(1000, 16)), rng.random(1000)
    >>> keep = d2fast.prune(emb, scores, k=5, rate=0.7)
    >>> keep.shape, keep.dtype
    ((300,), dtype('int64'))
    >>> g = d2fast.knn_graph(emb, 5)  # reused: the same picks as building it (no hard pruning)
    >>> a = d2fast.prune(emb, scores, rate=0.7, hard_prune=0.0)
    >>> b, info = d2fast.prune(emb, scores, rate=0.7, hard_prune=0.0, graph=g, return_info=True)
    >>> bool((a == b).all()), info["knn"], info["graph_source"]
    (True, 'exact', 'given')
    """
    start = time.perf_counter()
    X = check_emb(emb)
    n = X.shape[0]
    scores = check_scores(scores, n)
    given = not isinstance(graph, str)
    if given:
        check_prebuilt(graph, n, k=k, metric=metric, knn=knn, knn_params=knn_params)
    else:
        k = check_k(5 if k is None else k, n)
        metric = check_choice("euclidean" if metric is None else metric, "metric", METRICS)
        check_choice(graph, "graph", GRAPHS)
        check_choice(knn, "knn", KNN)
    n_keep = resolve_n_keep(n, rate, n_keep)
    if class_budget is not None:
        class_budget = check_choice(class_budget, "class_budget", BUDGETS)
    check_real(gamma_f, "gamma_f")
    if isinstance(gamma_r, str):
        if gamma_r != "auto":
            raise ValueError(f"gamma_r must be a float >= 0 or 'auto', got {gamma_r!r}")
    else:
        gamma_r = check_real(gamma_r, "gamma_r")
    product = check_choice(mode, "mode", MODES) == "product"
    check_choice(reverse, "reverse", REVERSE)
    eps = None if dedup is None else check_real(dedup, "dedup")
    backend_name = _backends.get(backend).NAME
    ids = None if labels is None else check_labels(labels, n)
    times = dict.fromkeys(("knn", "dedup", "forward", "select"), 0.0)
    atypical, sampled, typical = None, None, None
    if isinstance(hard_prune, str) and hard_prune == "auto" and ids is None and \
            not nothing_to_check(scores, n_keep):
        t = time.perf_counter()
        atypical, sampled, typical = _atypicality(X, scores, graph, k, metric, backend)
        times["knn"] += time.perf_counter() - t
    beta, reason = resolve_hard_prune(scores, hard_prune, n_keep, atypical, typical)
    pool = hard_prune_pool(scores, beta, n_keep)
    checked = ids is not None and isinstance(hard_prune, str)
    if ids is not None and class_budget is None and not checked:
        raise ValueError(f"labels without class_budget serve only hard_prune='auto' (its "
                         f"label check), but hard_prune={hard_prune!r}: pass class_budget="
                         f"'proportional' or 'uniform' (CLI: --class-budget) for "
                         f"class-balanced selection")
    rescued = 0
    if checked:
        t = time.perf_counter()
        pool, scores, rescued, why = _label_check(X, scores, pool, ids, n_keep, graph, k,
                                                  metric, knn, knn_params, progress, backend)
        reason += why
        times["knn"] += time.perf_counter() - t
    balanced = ids is not None and class_budget is not None
    names = label_names(labels) if balanced else None
    groups = by_class(ids, pool) if balanced else [pool]
    shown = [_label(ids[rows[0]], names) for rows in groups] if balanced else [None]
    if balanced:
        _warn_small_classes(shown, groups, class_budgets(
            [g.size for g in groups], n_keep, class_budget), k if not given else None)
    from tqdm.auto import tqdm

    # with labels, one bar for the run (a class a step, its label names the stage) instead
    # of one kNN bar per class
    per_class = len(groups) > 1
    bar = tqdm(total=len(groups), desc="prune", unit="class",
               disable=not (progress and per_class))

    # the atypicality's graph of all rows is the selection's when nothing is hard-pruned
    # and the selection would build that graph itself (exact union kNN, small n)
    reuse = sampled is not None and pool.size == n and graph == "union" and \
        knn in ("auto", "exact") and not knn_params

    def build(rows: np.ndarray, name: Any = None) -> Graph | None:
        if reuse:
            return sampled
        bar.set_description(f"prune: kNN graph of class {name}")
        t = time.perf_counter()
        g = _group_graph(X, rows, graph, k, metric, knn, knn_params,
                         progress and not per_class, backend)
        times["knn"] += time.perf_counter() - t
        return g

    rep, zero_rows = None, 0
    if eps is None:  # built one class at a time in the loop below, freed after its picks
        graphs = [None] * len(groups)
    else:  # all graphs first: the budgets count the rows left after dedup
        graphs = [build(rows, name) for rows, name in zip(groups, shown)]
        zero_rows = sum(_zero_rows(g) for g in graphs if g is not None)
        t = time.perf_counter()
        rep = np.full(n, -1, dtype=np.int64)
        for i, (rows, g) in enumerate(zip(groups, graphs)):
            groups[i], graphs[i] = _dedup(rows, g, eps, rep, backend)
        times["dedup"] = time.perf_counter() - t
        if sum(g.size for g in groups) < n_keep:
            raise ValueError(f"dedup={eps} leaves {sum(g.size for g in groups)} rows, fewer "
                             f"than n_keep={n_keep}")
    budgets = class_budgets([g.size for g in groups], n_keep, class_budget or "proportional")
    picks, weak, metas, gammas = [], [], [], []
    for rows, g, budget, name in zip(groups, graphs, budgets, shown):
        if eps is None:
            g = build(rows, name) if budget else None  # a class keeping nothing: no graph
            zero_rows += 0 if g is None else _zero_rows(g)
        metas.append(None if g is None else g.meta)
        if budget and g is not None and underflow(g, gamma_f) is not None:
            weak.append(_weak_class(rows, g, name, k if not given else None, gamma_f))
        bar.set_description(f"prune: select in class {name}")
        gammas.append(_gamma_r(gamma_r, g, budget))
        picks.append(_select(rows, g, scores, budget, gamma_f, product, gammas[-1][0],
                             reverse, backend, times))
        bar.update(1)
    bar.close()
    if zero_rows and eps is None:
        warnings.warn(f"{zero_rows} rows have a neighbour at distance 0 (duplicate rows): "
                      "once scores turn negative, duplicates of kept rows win picks (see "
                      "prune's Notes); pass dedup=0 to keep one row of each group",
                      UserWarning, stacklevel=2)
    if weak:
        listed = "; ".join(weak[:5]) + (f"; and {len(weak) - 5} more" if len(weak) > 5 else "")
        warnings.warn(f"forward weights underflow{listed}, so the forward pass barely changes "
                      "the scores; normalise the embeddings or lower gamma_f", UserWarning,
                      stacklevel=2)
    keep = merge_balanced(picks)
    if not return_info:
        return keep
    times["total"] = time.perf_counter() - start
    info = _info(n, keep.size, given, graph, metas, groups, budgets, shown, metric, k)
    for c, (value, why) in zip(info["classes"], gammas):
        c.update(gamma_r=value, gamma_r_reason=why)
    used = [c for c in info["classes"] if c["gamma_r"] is not None]
    if not isinstance(gamma_r, str):
        info.update(gamma_r=gamma_r, gamma_r_reason=f"given: {gamma_r:g}")
    elif len(used) == 1:
        info.update(gamma_r=used[0]["gamma_r"], gamma_r_reason=used[0]["gamma_r_reason"])
    elif not used:
        info.update(gamma_r=None, gamma_r_reason="auto: no graph (nothing selected by D2)")
    else:
        low, high = min(c["gamma_r"] for c in used), max(c["gamma_r"] for c in used)
        info.update(gamma_r=None, gamma_r_reason=f"auto per class: {low:.4g} to {high:.4g} "
                    f"over {len(used)} classes (each class's value and reason in 'classes')")
    info.update(hard_prune=beta, hard_prune_reason=reason, hard_prune_atypicality=atypical,
                hard_pruned=n - pool.size,
                hard_prune_rescued=rescued,
                zero_distance_rows=zero_rows, dedup=eps, dedup_groups=rep,
                dedup_removed=0 if rep is None else int((pool.size - sum(
                    g.size for g in groups))),
                backend=backend_name, timings_s=times)
    return keep, info


def _label(value: Any, names: np.ndarray | None) -> Any:
    """A class as users know it: its name for string labels, else its id (int)."""
    if names is None:
        return int(value)
    name = names[value]
    return name.item() if isinstance(name, np.generic) else name


def _group_graph(X: np.ndarray, rows: np.ndarray, graph: str | Graph, k: int | None,
                 metric: str | None, knn: str, knn_params: dict | None, progress: bool,
                 backend: str) -> Graph | None:
    """The graph of the rows ``rows`` (sorted) of X: built, or cut from a prebuilt one;
    None for fewer than 2 rows."""
    if rows.size < 2:
        return None
    if isinstance(graph, Graph):
        return graph if rows.size == graph.n else graph.subgraph(rows, backend=backend)
    return graph_of_rows(X, None if rows.size == X.shape[0] else rows, min(k, rows.size - 1),
                         metric=metric, graph=graph, knn=knn, knn_params=knn_params,
                         progress=progress, backend=backend)


def _atypicality(X: np.ndarray, scores: np.ndarray, graph: str | Graph, k: int | None,
                 metric: str | None,
                 backend: str) -> tuple[float | None, Graph | None, Typical | None]:
    """:func:`d2fast.budgets.sample_atypicality` of :func:`d2fast.budgets.atypicality_rows`
    (k, metric: the selection's, or a prebuilt graph's); its graph when it holds all rows
    (else None); the sample's typical inputs (None without a graph)."""
    if isinstance(graph, Graph):
        k, metric = graph.meta.get("k") or 5, graph.meta.get("metric") or "euclidean"
    rows = atypicality_rows(X.shape[0])
    every = rows.size == X.shape[0]
    value, g = sample_atypicality(X, scores, k, metric, backend, None if every else rows)
    typical = None if g is None else Typical(rows, typical_flags(g))
    return value, g if every else None, typical


def _label_check(X: np.ndarray, scores: np.ndarray, pool: np.ndarray, ids: np.ndarray,
                 n_keep: int, graph: str | Graph, k: int | None, metric: str | None, knn: str,
                 knn_params: dict | None, progress: bool,
                 backend: str) -> tuple[np.ndarray, np.ndarray, int, str]:
    """hard_prune="auto" with labels: (pool, scores, rows rescued, "; reason" or "") after
    :func:`d2fast.budgets.label_check` on the graph of all rows (``graph`` when prebuilt,
    else built)."""
    if nothing_to_check(scores, n_keep):
        return pool, scores, 0, ""
    g = _group_graph(X, np.arange(X.shape[0]), graph, k, metric, knn, knn_params, progress,
                     backend)
    pool, scores, rescued, why = label_check(g, ids, scores, pool, n_keep)
    return pool, scores, rescued, "; " + why


def _zero_rows(g: Graph) -> int:
    """Rows with at least one neighbour at distance 0."""
    edges = np.flatnonzero(g.distances == 0)
    return int(np.unique(np.searchsorted(g.indptr, edges, "right") - 1).size)


def _dedup(rows: np.ndarray, g: Graph | None, eps: float, rep: np.ndarray,
           backend: str) -> tuple[np.ndarray, Graph | None]:
    """The rows left after dropping near-duplicates (see prune's ``dedup``), their graph,
    and ``rep[rows]`` set to each row's representative (a row id of X)."""
    if g is None:
        rep[rows] = rows
        return rows, g
    group = _components(g, eps)
    rep[rows] = rows[group]
    kept = np.flatnonzero(group == np.arange(g.n))
    if kept.size == g.n:
        return rows, g
    return rows[kept], (g.subgraph(kept, backend=backend) if kept.size > 1 else None)


def _components(g: Graph, eps: float) -> np.ndarray:
    """The lowest node of each node's connected component over edges of length <= eps
    (int64 of shape (n,)): min-label propagation with pointer jumping."""
    close = np.flatnonzero(g.distances <= eps)
    src = np.searchsorted(g.indptr, close, "right") - 1
    dst = g.indices[close].astype(np.int64)
    label = np.arange(g.n, dtype=np.int64)
    while src.size:
        new = label.copy()
        np.minimum.at(new, src, label[dst])
        np.minimum.at(new, dst, label[src])
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    return label


def _weak_class(rows: np.ndarray, g: Graph, name: Any, k: int | None, gamma_f: float) -> str:
    """Where and why the forward weights of one class's graph underflow (for the warning)."""
    why = underflow(g, gamma_f)
    if name is None:
        return f": {why}"
    if k is not None and rows.size <= k:  # the real cause: the class is smaller than k
        return (f" in class {name!r} ({rows.size} rows, not more than k={k}: its graph uses "
                f"k={rows.size - 1}, so each row's neighbours are the class's other rows, "
                f"however far away they are; {why})")
    return f" in class {name!r} ({rows.size} rows; {why})"


def _gamma_r(gamma_r: Any, g: Graph | None, budget: int) -> tuple[float | None, str]:
    """The reverse decay of one class's selection and why (None without a graph)."""
    if not isinstance(gamma_r, str):
        return gamma_r, f"given: {gamma_r:g}"
    if g is None or budget == 0:
        return None, "auto: no graph (a class of one row, or nothing kept)"
    return auto_gamma_r(g, budget)


def _select(rows: np.ndarray, g: Graph | None, scores: np.ndarray, budget: int, gamma_f: float,
            product: bool, gamma_r: float | None, reverse: str, backend: str,
            times: dict) -> np.ndarray:
    """D2 (forward, select) on one class's graph; returns row ids of X. Where forwarded
    scores tie, the selection runs on the graph renumbered in tie-key order
    (:mod:`d2fast._ties`), so ties go to the lower key, not the lower row id."""
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    if g is None:
        return rows.copy()
    t = time.perf_counter()
    passed = forward_pass(g, scores[rows], gamma_f, product, backend)
    times["forward"] += time.perf_counter() - t
    t = time.perf_counter()
    order = None
    if np.unique(passed).size < passed.size:
        order = tie_order(rows)
        g, passed = g.permuted(order, backend=backend), passed[order]
    picked = select(g, passed, budget, gamma_r=gamma_r, reverse=reverse, backend=backend)
    times["select"] += time.perf_counter() - t
    return rows[picked if order is None else order[picked]]


def _info(n: int, n_keep: int, given: bool, graph: str | Graph, metas: list, groups: list,
          budgets: list, shown: list, metric: str | None, k: int | None) -> dict:
    """The graph part of prune's info (see its Returns); ``metas``: each class's
    ``Graph.meta`` (None for a class of one row)."""
    meta = graph.meta if given else next((m for m in metas if m is not None), {})
    classes = [{"label": name, "rows": int(rows.size), "n_keep": int(b),
                "k": None if given or m is None else m["k"],
                "knn": None if m is None else m.get("knn"),
                "knn_params": None if m is None else m.get("knn_params"),
                "knn_auto": None if m is None else m.get("knn_auto")}
               for rows, m, b, name in zip(groups, metas, budgets, shown)]
    methods = {(c["knn"], str(c["knn_params"])) for c in classes if c["knn"] is not None}
    mixed = len(methods) > 1
    return {"n": n, "n_keep": n_keep, "graph_source": "given" if given else "built",
            "metric": meta.get("metric", None if given else metric),
            "normalization": meta.get("normalization"),
            "graph": meta.get("graph", None if given else graph),
            "k": meta.get("k") if given else k,
            "knn": "mixed" if mixed else meta.get("knn"),
            "knn_params": None if mixed else meta.get("knn_params"),
            "knn_auto": None if mixed else meta.get("knn_auto"),
            "faiss": meta.get("faiss"), "classes": classes}


def _warn_small_classes(shown: list, groups: list, budgets: list, k: int | None) -> None:
    """One warning naming the classes whose graph gets fewer than k neighbours a row."""
    if k is None:
        return
    small = [name for rows, b, name in zip(groups, budgets, shown) if b and 1 < rows.size <= k]
    if not small:
        return
    listed = ", ".join(map(str, small[:10])) + (
        f" and {len(small) - 10} more" if len(small) > 10 else "")
    warnings.warn(f"k={k} is not below the size of class(es) {listed} (after hard pruning): "
                  "their graphs use k = class size - 1", stacklevel=3)
