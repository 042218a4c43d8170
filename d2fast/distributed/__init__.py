"""D2 Pruning beyond one machine: sharded inputs, a partitioned kNN graph and bulk-synchronous
message passing over shard actors on Ray (``engine="ray"``) or in one process
(``engine="local"``). See SPEC section 8."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from d2fast import _backends
from d2fast._validate import (check_choice, check_emb, check_int, check_k, check_memory,
                              check_real, check_scores, resolve_n_keep)
from d2fast.budgets import (BUDGETS, Typical, atypicality_rows, hard_prune_pool,
                            nothing_to_check, resolve_hard_prune, sample_atypicality,
                            typical_flags)
from d2fast.distributed.checkpoint import STAGES, Manifest
from d2fast.distributed.engines import LocalEngine, RayEngine, dead_actor_errors
from d2fast.distributed.partition import check_rows
from d2fast.distributed.run import Stats, run
from d2fast.distributed.shards import ShardFiles, check_matching, open_shards
from d2fast.distributed.subset import Subset, write_pool
from d2fast.graph import GRAPHS, METRICS
from d2fast._nprobe import RECALL
from d2fast.knn import _MARGIN, EXACT_MAX_ROWS, _check_params, _nlist, _nlist_auto
from d2fast.io import atomic_write
from d2fast.passing import MODES, REVERSE

ENGINES = ("local", "ray")
KNN = ("auto", "exact", "ivf")
_IVF_PARAMS = {"nlist": None, "nprobe": "auto", "pool": None, "recall": None,
               "candidates": None, "pca": 0}
_RESTARTS = 3  # times a run is resumed after a Ray actor died
_HASH_BLOCK = 1 << 16  # rows hashed at a time


def prune(emb: Any, scores: Any, k: int | None = None, rate: float = 0.5, *,
          n_keep: int | None = None, gamma_f: float = 1.0, gamma_r: Any = "auto",
          metric: str | None = None, graph: str = "union", mode: str = "sum",
          reverse: str = "weighted", labels: Any = None, class_budget: str | None = None,
          hard_prune: Any = "auto", knn: str = "auto", knn_params: dict | None = None,
          dedup: float | None = None, backend: str = "auto", progress: bool = False,
          return_info: bool = False, shards: int | None = None, workdir: str | None = None,
          engine: str = "ray", address: str | None = None,
          num_cpus: int | None = None) -> np.ndarray | tuple[np.ndarray, dict]:
    """D2 Pruning over sharded embeddings, on Ray or in one process (SPEC 8).

    The stages: an IVF partition (k-means on a sample; each shard gets whole lists), the
    rows and scores in shard order, the kNN graph (each shard's rows search the lists
    they probe, wherever they live), forward message passing with ghost copies of the
    neighbours' scores, and the selection in bulk-synchronous rounds over the shards;
    the negative-score tail is finished on the driver by the lazy heap. Given the same
    graph the picks and their order equal ``d2fast.select(..., algorithm='heap')``; with
    ``knn='exact'`` the call equals ``d2fast.prune(..., knn='exact')`` (the same
    ``gamma_r`` and ``hard_prune``, their 'auto' defaults too).

    Parameters
    ----------
    emb : array-like of shape (n, d), or shard files
        Embeddings: an array (ndarray, memmap, torch tensor), or ``.npy`` / ``.npz`` /
        parquet shards given as a list of paths, a glob or a directory. The global row id
        of a row is its position in the concatenation of the files in sorted path order.
        A parquet shard holds the embeddings as a list column (named ``emb``, or its only
        list column). Files are read by row ranges, never whole.
    scores : array-like of shape (n,), or shard files
        One array, or shards matching the embedding shards file by file (a parquet shard:
        a column named ``scores``, or its only numeric column).
    k, rate, n_keep, gamma_f, gamma_r, metric, mode, reverse, backend :
        As in :func:`d2fast.prune` (k defaults to 5, metric to 'euclidean'). ``gamma_r``
        'auto' (the default) is :func:`d2fast.passing.auto_gamma_r` of the whole graph:
        after the graph stage the workers read the same edge sample from the shards'
        graph files (:mod:`d2fast.distributed.gamma`), so the value equals one machine's
        on the same graph; it is kept with the graph stage's checkpoint.
    graph : {'union', 'directed'}, default='union'
        The kind of graph built (a prebuilt ``Graph`` is not supported here).
    labels, class_budget : None
        Labels (the label check, class-balanced selection) are not supported here: run
        one call per class, or :func:`d2fast.prune`.
    hard_prune : float in [0, 1) or 'auto', default='auto'
        As in :func:`d2fast.prune` (:func:`d2fast.budgets.resolve_hard_prune`): the
        hardest rows are dropped before the partition and the graph, which are then
        those of the rows left (:mod:`d2fast.distributed.subset`). Other than 0.0 the
        driver reads the scores of all n rows (about 64 B a row at the peak, checked
        first); 0.0 (pure D2) keeps them off the driver.
    dedup : None
        Not supported here.
    knn : {'auto', 'exact', 'ivf'}, default='auto'
        'exact': every row is a candidate (the exact kNN graph; O(n^2 d), for tests and
        small data). 'ivf': the search of :func:`d2fast.ivf_knn` over the partition (the
        lists each row probes are read wherever they live), so the graph is
        ``knn_graph(knn='ivf', knn_params={'partition': ..., 'pca': 0})`` with the same
        partition (``d2fast.distributed.partition.load(workdir)`` gives it as a
        ``d2fast.Partition``). The centroids are trained as one machine trains them (same
        sample, same seed), ``nprobe='auto'`` is chosen from the same sampled queries
        (on one shard, reading the lists near them from every shard's rows), and above 1M
        rows ``nlist='auto'`` weighs 2 sqrt(n) lists against lists of 500 rows as one
        machine does (:mod:`d2fast._nlist`; the sampled queries' exact neighbours are
        searched by every worker in its range of rows, merged on the driver), so the call
        equals ``d2fast.prune(..., knn='ivf')``.
        'auto': exact up to ``d2fast.knn.EXACT_MAX_ROWS`` rows, IVF above.
    knn_params : dict, optional
        IVF: ``nlist`` ('auto', the default: as ``d2fast.knn_graph``'s; or an int),
        ``nprobe`` ('auto' or an
        int), ``pool``, ``recall``, ``candidates`` (as in ``d2fast.knn_graph``); ``pca``
        only 0 (no PCA scan here). ``nlist`` also sets the partition with ``knn='exact'``
        (``shards`` lists must hold rows).
    progress : bool, default=False
        A tqdm bar over the stages and one over the picks of the rounds.
    shards : int, optional
        Number of shards P (one worker each); default: the number of embedding files, or
        the CPU count for an array.
    workdir : str, optional
        Folder of the stages' files and checkpoints (on storage every Ray node can read).
        Running again with the same workdir and inputs resumes from the last finished
        stage or round. Default: a temporary folder, removed at the end.
    engine : {'ray', 'local'}, default='ray'
        'ray': one Ray actor per shard; 'local': the same steps in this process.
    address : str, optional
        Address of a running Ray cluster. Without it, ``engine='ray'`` uses the Ray this
        process already started, or starts a local one (``num_cpus``) and shuts it down
        at the end.
    num_cpus : int, optional
        CPUs of a local Ray started here (default: all).
    return_info : bool, default=False
        Also return a dict about the run (see Returns).

    Returns
    -------
    keep : ndarray of int64, shape (n_keep,)
        Kept global row ids in selection order, most important first.
    info : dict, only with ``return_info=True``
        ``n``, ``n_keep``, ``k``, ``metric``, ``graph``, ``knn`` (as resolved) and
        ``knn_params`` (nlist, nprobe, pool, candidates; what nprobe 'auto' chose),
        ``knn_auto`` (its estimate, as in ``d2fast.prune``; else None), ``shards``,
        ``engine``, ``timings_s``
        per stage, ``rounds``, ``bytes_sent`` between shards (and ``bytes_by_stage``),
        ``nnz`` (edges), ``gamma_r`` (the value used; None when nothing is kept) and
        ``gamma_r_reason``, ``hard_prune`` (the fraction used), ``hard_prune_reason`` and
        ``hard_pruned`` (rows dropped; all as in ``d2fast.prune``), the stages ``resumed``
        from workdir, ``restarts`` after a dead Ray actor, and with Ray the actors' peak
        resident memory (bytes, one a worker): ``worker_peak_rss_bytes`` over the run,
        ``worker_peak_rss_by_stage`` per stage.

    Raises
    ------
    ValueError
        Bad arguments, a shard whose width, dtype or row count disagrees (naming the
        file), an unsupported parameter, or a workdir holding another run.
    MemoryError
        When the unselected subgraph of the negative phase, or the scores for
        ``hard_prune``, do not fit the driver.
    """
    if labels is not None:
        raise ValueError("labels is not supported by d2fast.distributed.prune "
                         "(class-balanced selection): run one call per class")
    if class_budget is not None:
        check_choice(class_budget, "class_budget", BUDGETS)
    if dedup is not None:
        raise ValueError("dedup is not supported by d2fast.distributed.prune; pass dedup=None")
    if not isinstance(graph, str):
        raise ValueError("graph must be 'union' or 'directed': a prebuilt Graph is not "
                         "supported by d2fast.distributed.prune (it builds the graph by shard)")
    k = 5 if k is None else k
    metric = "euclidean" if metric is None else metric
    if isinstance(hard_prune, str):
        if hard_prune != "auto":
            raise ValueError(f"hard_prune must be a float in [0, 1) or 'auto', got "
                             f"{hard_prune!r}")
    elif check_real(hard_prune, "hard_prune") >= 1.0:
        raise ValueError(f"hard_prune == {hard_prune}, must satisfy 0 <= hard_prune < 1")
    engine = check_choice(engine, "engine", ENGINES)
    if knn == "hnsw":
        raise ValueError("knn='hnsw' is not supported by d2fast.distributed.prune "
                         "(use 'ivf' or 'exact')")
    knn = check_choice(knn, "knn", KNN)
    for value, name, options in ((metric, "metric", METRICS), (graph, "graph", GRAPHS),
                                 (mode, "mode", MODES), (reverse, "reverse", REVERSE)):
        check_choice(value, name, options)
    if isinstance(gamma_r, str):
        if gamma_r != "auto":
            raise ValueError(f"gamma_r must be a float >= 0 or 'auto', got {gamma_r!r}")
    else:
        gamma_r = check_real(gamma_r, "gamma_r")
    gamma_f = check_real(gamma_f, "gamma_f")
    _backends.get(backend)
    own_workdir = workdir is None
    workdir = tempfile.mkdtemp(prefix="d2fast-") if own_workdir else os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    try:
        emb_files, scores_files, fingerprint = _inputs(emb, scores, workdir)
        n = emb_files.n
        check_k(k, n)
        n_keep = resolve_n_keep(n, rate, n_keep)
        beta, why, atypical, pool = _hard_prune(scores_files, emb_files, hard_prune, n_keep,
                                                k, metric, backend)
        m = n if pool is None else pool.size  # the rows D2 runs on, as in d2fast.prune
        P = len(emb_files.paths) if shards is None and _is_files(emb) else \
            (os.cpu_count() or 1) if shards is None else check_int(
                shards, "shards", 1, m, f"n={n}" if m == n else f"{m} rows after hard_prune")
        params = _ivf_params(knn_params, m)
        if knn == "auto":
            knn = "exact" if m <= EXACT_MAX_ROWS else "ivf"
        params["nlist_auto"] = params["nlist_auto"] and knn == "ivf"
        cfg = dict(k=int(min(k, m - 1)), metric=metric, graph=graph, mode=mode,
                   reverse=reverse, gamma_f=gamma_f, gamma_r=gamma_r, knn=knn, backend=backend,
                   **params)
        stats = Stats(P, engine)
        stats.info.update(n=n, n_keep=n_keep, k=int(k), metric=metric, graph=graph, knn=knn,
                          knn_params={"nlist": params["nlist"], "nprobe": params["nprobe"],
                                      "pool": params["pool"],  # candidates as prune reports
                                      "candidates": params["candidates"]
                                      or cfg["k"] + 1 + _MARGIN},
                          knn_auto=None, hard_prune=beta, hard_prune_reason=why,
                          hard_prune_atypicality=atypical, hard_pruned=n - m)
        if n_keep == 0 or m < 2:  # no graph (one row left: kept); reported as prune does
            given = not isinstance(gamma_r, str)
            stats.info.update(gamma_r=gamma_r if given else None,
                              gamma_r_reason=f"given: {gamma_r:g}" if given else
                              "auto: no graph (nothing selected by D2)")
            picks = np.empty(0, dtype=np.int64) if n_keep == 0 else \
                pool[:n_keep].astype(np.int64)
            return (picks, stats.info) if return_info else picks
        if pool is not None:  # the stages run on the pool's rows; the picks are mapped back
            path = write_pool(workdir, pool)
            emb_files, scores_files = Subset(emb_files, path, m), Subset(scores_files, path, m)
            del pool
        manifest = Manifest(workdir, {**fingerprint, **cfg, "shards": P, "n_keep": n_keep,
                                      "hard_prune": beta})
        setup = {"cfg": cfg, "workdir": workdir, "emb": emb_files, "scores": scores_files}
        picks = _run(engine, address, num_cpus, P, setup, manifest, emb_files,
                     dict(cfg, workdir=workdir, progress=progress), n_keep, stats, progress)
        if m < n:
            picks = np.array(np.load(emb_files.path, mmap_mode="r")[picks], dtype=np.int64)
        return (picks, stats.info) if return_info else picks
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(engine_name, address, num_cpus, P, setup, manifest, emb_files, cfg, n_keep, stats,
         progress) -> np.ndarray:
    """Run (and after a dead Ray actor, resume) the stages; closes the engine."""
    from tqdm.auto import tqdm

    eng = RayEngine(P, setup, address, num_cpus) if engine_name == "ray" else \
        LocalEngine(P, setup)
    try:
        for attempt in range(_RESTARTS + 1):
            try:
                with tqdm(total=len(STAGES), desc="distributed", unit="stage",
                          disable=not progress) as bar:
                    return run(eng, manifest, emb_files, cfg, n_keep, stats, bar)
            except dead_actor_errors():
                if attempt == _RESTARTS:
                    raise
                stats.info["restarts"] = attempt + 1
                eng.restart()
    finally:
        eng.close()
        if engine_name == "ray":
            stats.info["worker_peak_rss_bytes"] = eng.peak_rss
            stats.info["worker_peak_rss_by_stage"] = eng.peak_rss_by_stage


def _hard_prune(scores: ShardFiles, emb: ShardFiles, hard_prune: Any, n_keep: int, k: int,
                metric: str, backend: str) -> tuple[float, str, float | None, np.ndarray | None]:
    """``hard_prune`` as :func:`d2fast.prune` resolves it: the fraction, its reason, the
    hardness-atypicality (``'auto'``: from the embeddings of the same sample of at most
    10,000 rows; else None) and the rows left (sorted global ids; None when no row is
    dropped). Other than 0.0 it reads the scores of all n rows on the driver (about 64 B
    a row at the peak, checked first)."""
    if not isinstance(hard_prune, str) and hard_prune == 0.0:
        return (*resolve_hard_prune(np.empty(0), hard_prune, n_keep), None, None)
    n = scores.n
    check_memory(64.0 * n, f"hard_prune={hard_prune!r} (the scores of all {n} rows, sorted "
                 "on the driver)", "give the driver more memory, or pass hard_prune=0.0 "
                 "(drop the hardest rows from the shards first)")
    s = scores.read(0, n).astype(np.float64)
    check_rows(s, scores, np.arange(n))
    atypical, typical = None, None
    if isinstance(hard_prune, str) and not nothing_to_check(s, n_keep):
        rows = atypicality_rows(n)
        x = emb.take(rows)
        check_rows(x, emb, rows)
        atypical, g = sample_atypicality(x, s[rows], k, metric, backend)
        typical = None if g is None else Typical(rows, typical_flags(g))
    beta, why = resolve_hard_prune(s, hard_prune, n_keep, atypical, typical)
    pool = hard_prune_pool(s, beta, n_keep)
    return beta, why, atypical, None if pool.size == n else pool


def _is_files(spec: Any) -> bool:
    return isinstance(spec, (str, os.PathLike)) or (
        isinstance(spec, (list, tuple)) and bool(spec) and
        all(isinstance(p, (str, os.PathLike)) for p in spec))


def _inputs(emb: Any, scores: Any, workdir: str) -> tuple[ShardFiles, ShardFiles, dict]:
    """Shard files of the embeddings and scores (arrays are written to workdir/inputs
    once) and a fingerprint of the inputs for the manifest."""
    if _is_files(emb):
        emb_files = open_shards(emb, "emb", 2)
    else:
        emb_files = _array_shard(check_emb(emb), "emb", workdir)
    if _is_files(scores):
        scores_files = open_shards(scores, "scores", 1)
        if len(scores_files.paths) > 1:  # shards matching the embedding shards
            check_matching(scores_files, emb_files)
        elif scores_files.n != emb_files.n:  # one array
            raise ValueError(f"scores: {scores_files.paths[0]} has {scores_files.n} rows, "
                             f"emb has {emb_files.n}")
    else:
        scores_files = _array_shard(check_scores(scores, emb_files.n), "scores", workdir)
    fingerprint = {"emb": _fingerprint(emb_files), "scores": _fingerprint(scores_files)}
    return emb_files, scores_files, fingerprint


def _array_shard(arr: np.ndarray, name: str, workdir: str) -> ShardFiles:
    """An array written as ``workdir/inputs/<name>-<sha256>.npy`` (kept when present)."""
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    for start in range(0, arr.shape[0], _HASH_BLOCK):
        digest.update(np.ascontiguousarray(arr[start:start + _HASH_BLOCK]).tobytes())
    folder = os.path.join(workdir, "inputs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}-{digest.hexdigest()[:16]}.npy")
    if not os.path.exists(path):
        with atomic_write(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=arr.dtype, shape=arr.shape)
            for start in range(0, arr.shape[0], _HASH_BLOCK):
                out[start:start + _HASH_BLOCK] = arr[start:start + _HASH_BLOCK]
            out.flush()
            del out
    return open_shards([path], name, arr.ndim)


def _fingerprint(files: ShardFiles) -> list:
    """Path, size and modification time of every file."""
    return [[os.path.abspath(p), os.path.getsize(p), os.path.getmtime(p)] for p in files.paths]


def _ivf_params(knn_params: dict | None, n: int) -> dict:
    params = dict(knn_params or {})
    unknown = set(params) - set(_IVF_PARAMS)
    if unknown:
        raise ValueError(f"knn_params has {sorted(unknown)}, not supported by "
                         f"d2fast.distributed.prune (it takes {sorted(_IVF_PARAMS)})")
    if params.get("pca"):
        raise ValueError(f"knn_params['pca'] == {params['pca']!r} is not supported by "
                         "d2fast.distributed.prune (it scans the lists in the full space): "
                         "pass pca=0 or leave it out")
    params.pop("pca", None)
    params = _check_params("ivf", params)  # one machine's checks of nprobe, pool, recall
    nprobe = "auto" if isinstance(params["nprobe"], str) else int(params["nprobe"])
    # nlist_auto: whether nlist='auto' is weighed (d is only read for PCA, refused here)
    return {"nlist": _nlist(n, params), "nlist_auto": _nlist_auto(n, 1, params),
            "nprobe": nprobe,
            "pool": None if params["pool"] is None else int(params["pool"]),
            "recall": float(params["recall"] or RECALL) if nprobe == "auto" else None,
            "candidates": None if params["candidates"] is None else int(params["candidates"])}
