"""The ``d2fast`` command line: ``graph``, ``prune``, ``extrapolate``, ``report``, ``demo``.

A thin layer: each subcommand reads its inputs with :mod:`d2fast.io`, calls the public
Python API and writes its output atomically, with a JSON sidecar ``<output>.json`` that
records the command, parameters, inputs (path, sha256, shape, dtype), versions, the
backend and per-stage timings. Exit codes: 0 ok, 2 bad input or usage (one line on
stderr; ``--verbose`` adds the traceback), 1 a missing optional dependency, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import sys
import time
import traceback
import warnings
from typing import Any, Iterator, Sequence

import numpy as np

import d2fast
from d2fast import _backends, io
from d2fast._validate import resolve_n_keep
from d2fast.graph import GRAPHS, METRICS, check_prebuilt
from d2fast.knn import KNN
from d2fast.passing import MODES, REVERSE
from d2fast.budgets import BUDGETS

log = logging.getLogger("d2fast")
_BAD_INPUT = (ValueError, TypeError, OSError, MemoryError, FloatingPointError)
METHODS = ("d2", "random", "topk", "ccs", "moderate", "kcenter")
FIGURES = (".png", ".pdf", ".svg")


class _Run:
    """Inputs, timings and results of one command, written to the sidecar at the end."""

    def __init__(self, args: argparse.Namespace, argv: Sequence[str]) -> None:
        self.args = args
        self.record: dict[str, Any] = {
            "command": ["d2fast", *argv], "subcommand": args.command,
            "parameters": {k: v for k, v in vars(args).items() if k not in ("run", "command")},
            "inputs": {}, "timings_s": {}, "versions": io.versions()}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.record["timings_s"][name] = round(seconds, 6)
        log.info("%s: %.3f s", name, seconds)

    def load(self, name: str, path: str | None, key: str | None, ndim: int | None):
        """Read an input (None when ``path`` is None) and record its file and shape."""
        if path is None:
            return None
        with self.stage(f"load {name}"):
            arr = io.load_array(path, key, name=name, ndim=ndim)
        with self.stage(f"hash {name}"):
            self.record["inputs"][name] = {**io.file_info(path), **io.array_info(arr), "key": key}
        return arr

    def load_graph(self, path: str) -> d2fast.Graph:
        """Read a saved graph (memory-mapped) and record its file."""
        with self.stage("load graph"):
            graph = io.load_graph(path)
        self.record["inputs"]["graph"] = {**io.file_info(path), "n": graph.n, "nnz": graph.nnz}
        return graph

    def finish(self, output: str, **result: Any) -> None:
        self.record["output"] = {**io.file_info(output), **result}
        sidecar = io.write_sidecar(output, self.record)
        log.info("wrote %s and %s", output, sidecar)


def _input(parser: argparse.ArgumentParser, name: str, help: str, optional: bool = False):
    """A file argument with its own ``--NAME-key`` (npz member, .pt entry, parquet column)."""
    flag = name.replace("_", "-")
    if optional:
        parser.add_argument(f"--{flag}", dest=name, metavar=name.upper(), help=help)
    else:
        parser.add_argument(name, metavar=name.upper(), help=help)
    parser.add_argument(f"--{flag}-key", dest=f"{name}_key", metavar="KEY",
                        help=f"member/entry/column of {name.upper()} (default: --key)")


def _common(parser: argparse.ArgumentParser, output: str | None, inputs: bool = True) -> None:
    if output is not None:
        parser.add_argument("-o", "--output", required=output == "", default=output or None,
                            help="output file" + (f" (default {output})" if output else ""))
        parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    if inputs:
        parser.add_argument("--key", help="default member/entry/column for every input")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log stages and timings; tracebacks on errors")


def _graph_options(parser: argparse.ArgumentParser, k: int | None) -> None:
    parser.add_argument("-k", "--k", type=int, default=k, help=f"neighbours per row ({k or 5})")
    parser.add_argument("--metric", choices=METRICS,
                        help="distance (default euclidean)")
    parser.add_argument("--graph-kind", choices=GRAPHS,
                        help="union (default) or directed kNN graph")
    parser.add_argument("--knn", choices=KNN,
                        help="kNN search: exact up to 100k rows, IVF above (default auto)")
    parser.add_argument("--knn-param", action="append", default=[], metavar="NAME=VALUE",
                        help="HNSW M/ef_construction/ef_search, IVF nlist/nprobe/pca/recall, "
                             "candidates (repeatable, e.g. nprobe=16 pca=0, nprobe=auto "
                             "recall=0.95)")
    parser.add_argument("--backend", default="auto",
                        help="kernel backend: auto, cpp, numba, cuda, numpy (default auto)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``d2fast`` command."""
    parser = argparse.ArgumentParser(
        prog="d2fast", description="Fast exact D2 Pruning: coreset selection by message "
        "passing over a kNN graph. Inputs: .npy, .npz, .pt, .parquet, .txt, .csv.")
    parser.add_argument("--version", action="version", version=f"d2fast {d2fast.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("graph", help="build the kNN graph of EMB and save it (.npz)")
    _input(p, "emb", "embeddings (n, d)")
    _graph_options(p, 5)
    _common(p, "")
    p.set_defaults(run=run_graph)

    p = sub.add_parser("prune", help="select a coreset (row ids, most important first)",
                       description="D2 Pruning (or a baseline) of EMB with SCORES "
                       "(higher = harder). Writes the kept row ids in selection order.")
    _input(p, "emb", "embeddings (n, d); with --graph only its row count is used")
    _input(p, "scores", "difficulty scores (n,), higher = harder")
    _input(p, "labels", "training labels (n,): d2: hard_prune auto's label check, and "
           "class-balanced selection with --class-budget; baselines: per class", optional=True)
    _graph_options(p, None)
    p.add_argument("--rate", type=float, default=0.5, help="fraction removed (default 0.5)")
    p.add_argument("--n-keep", type=int, help="rows kept (instead of --rate)")
    # d2's options default to None so that one given to a method that ignores it is an error
    p.add_argument("--gamma-f", type=float, help="forward decay (default 1.0)")
    p.add_argument("--gamma-r", type=_auto_or_float, metavar="GAMMA|auto",
                   help="reverse decay (default auto: the reverse weights of a row's edges "
                   "sum to n / n_keep - 1 on average, -v logs its choice)")
    p.add_argument("--mode", choices=MODES, help="forward aggregation (default sum)")
    p.add_argument("--reverse", choices=REVERSE, help="reverse update (default weighted)")
    p.add_argument("--class-budget", choices=(*BUDGETS, "none"),
                   help="with --labels: class-balanced selection, one graph per class with "
                   "these budgets (default none: one graph, the labels serve hard_prune "
                   "auto's label check only)")
    p.add_argument("--hard-prune", type=_auto_or_float, metavar="BETA|auto",
                   help="drop this fraction of hardest rows first (d2: auto = a separate mode "
                   "of high scores or max(0, rate - 0.5) / 2; in a hard task, where the "
                   "hard rows are not the atypical ones (a < 0.2), rate / 2 and at least "
                   "(1 - a / 0.2) / 2 of the rows; else the rate term's rows beyond the "
                   "mode scaled by their typical share over 0.5; with --labels checked "
                   "against them, "
                   "README 'The label check'; -v logs its choice; also with "
                   "--graph, as in Python; 0 = pure D2; ccs: 0.1)")
    p.add_argument("--graph", dest="graph_file", metavar="GRAPH.npz",
                   help="reuse a graph saved by 'd2fast graph' (with --labels / --hard-prune: "
                   "its induced subgraphs); -k, --metric, --graph-kind, --knn, --knn-param "
                   "must agree with it")
    p.add_argument("--dedup", type=float, metavar="EPS",
                   help="d2: keep one row (the lowest id) of each group of rows joined by "
                   "graph edges of distance <= EPS (0: exact duplicates)")
    p.add_argument("--method", choices=METHODS, default="d2",
                   help="d2 (default) or a baseline of d2fast.baselines")
    p.add_argument("--seed", type=int,
                   help="seed of random, ccs and kcenter (default 0; d2 is deterministic)")
    _distributed_options(p)
    _common(p, "")
    p.set_defaults(run=run_prune)

    p = sub.add_parser("extrapolate", help="predict scores of all rows from a known subset")
    _input(p, "emb", "embeddings (n, d)")
    _input(p, "known_idx", "row ids whose scores are known (m,)")
    _input(p, "known_scores", "their scores (m,)")
    _input(p, "labels", "gnn: integer classes (n,), added as one-hot features", optional=True)
    p.add_argument("--method", choices=("knn", "gnn"), default="knn",
                   help="mean of the nearest known rows (default) or a graph network")
    p.add_argument("-k", "--k", type=int, help="neighbours (default 10; with --graph, the graph's)")
    p.add_argument("--metric", choices=METRICS, help="distance (default euclidean)")
    p.add_argument("--weights", choices=("distance", "uniform"), default="distance",
                   help="knn: exp(-(d - d_min) / temperature) weights (default) or a plain mean")
    p.add_argument("--temperature", type=float, help="knn: default the median distance")
    p.add_argument("--knn", choices=KNN, default="auto")
    p.add_argument("--knn-param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--epochs", type=int, default=500, help="gnn: at most this many steps")
    p.add_argument("--graph", dest="graph_file", metavar="GRAPH.npz",
                   help="gnn: reuse a graph saved by 'd2fast graph' instead of building one")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split and GNN")
    _common(p, "")
    p.set_defaults(run=run_extrapolate)

    p = sub.add_parser("report", help="figure: scores, classes and a 2-D map, kept vs pruned")
    _input(p, "emb", "embeddings (n, d)")
    _input(p, "scores", "scores (n,)")
    _input(p, "keep", "kept row ids (output of prune)")
    _input(p, "labels", "integer classes (n,): kept fraction per class", optional=True)
    p.add_argument("--max-points", type=int, default=20_000,
                   help="rows sampled for the 2-D projection (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample")
    _common(p, "")
    p.set_defaults(run=run_report)

    p = sub.add_parser("demo", help="D2 vs the baselines on Fashion-MNIST: retrain, compare")
    p.add_argument("--data", metavar="DIR",
                   help="Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--quick", action="store_true", help="fewer rows and epochs (~1 minute)")
    p.add_argument("--rates", default="0.3,0.5,0.7,0.9", help="pruning rates, comma-separated")
    p.add_argument("--seeds", default="0,1,2",
                   help="one run per seed, comma-separated; the table shows mean ± std")
    p.add_argument("--label-noise", type=float, default=0.0,
                   help="fraction of training labels flipped to another class (default 0)")
    _common(p, "d2fast-demo.png", inputs=False)
    p.set_defaults(run=run_demo)
    return parser


def _key(args: argparse.Namespace, name: str) -> str | None:
    own = getattr(args, f"{name}_key")
    return own if own is not None else args.key


def _knn_params(items: list) -> dict | None:
    """``NAME=VALUE`` items as knn_params: integers as int, other numbers as float,
    anything else as str; ``knn_graph`` checks names and values."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        value = value.strip()
        if not sep or not value:
            raise ValueError(f"--knn-param {item!r}, expected NAME=VALUE (e.g. nprobe=32)")
        params[name.strip()] = int(value) if value.lstrip("-").isdigit() else _number(value)
    return params or None


def _number(value: str) -> float | str:
    """``value`` as a float if it is a finite number (``recall=0.95``), else as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    return number if np.isfinite(number) else value


def _graph_kwargs(args: argparse.Namespace) -> dict:
    return dict(metric=args.metric or "euclidean", graph=args.graph_kind or "union",
                knn=args.knn or "auto", knn_params=_knn_params(args.knn_param),
                backend=args.backend)


def _check_rows(n: int, ref: str, **arrays: np.ndarray | None) -> None:
    """Every given array has n rows, like ``ref`` (checked before any expensive work)."""
    for name, arr in arrays.items():
        if arr is not None and arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but {ref} has {n}")


def _backend_name(backend: str) -> str:
    return _backends.get(backend).NAME


def run_graph(args: argparse.Namespace, run: _Run) -> None:
    io.check_output(args.output, args.force, (".npz",))
    emb = run.load("emb", args.emb, _key(args, "emb"), 2)
    with run.stage("knn_graph"):
        graph = d2fast.knn_graph(emb, args.k, progress=not args.quiet, **_graph_kwargs(args))
    with run.stage("write"), io.atomic_write(args.output) as tmp:
        graph.save(tmp)
    run.finish(args.output, n=graph.n, nnz=graph.nnz, meta=graph.meta,
               backend=_backend_name(args.backend))


def _distributed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed (d2fast.distributed; EMB/SCORES may then be a glob "
                             "or a directory of .npy/.npz/.parquet shards)")
    g.add_argument("--engine", choices=("local", "ray"),
                   help="run D2 shard by shard: in Ray actors or in this process "
                   "(default: ray when EMB is a glob or a directory)")
    g.add_argument("--address", help="address of a running Ray cluster (default: start one)")
    g.add_argument("--workdir", help="folder of the stages' files; rerun to resume")
    g.add_argument("--shards", type=int, help="number of shards (default: one a file)")


def _is_sharded(spec: str) -> bool:
    return os.path.isdir(spec) or any(c in spec for c in "*?[")


def run_prune_distributed(args: argparse.Namespace, run: _Run) -> None:
    """``d2fast prune`` over shard files with :func:`d2fast.distributed.prune`."""
    from d2fast import distributed

    io.check_output(args.output, args.force, io.ARRAY_OUTPUTS)
    for flag, value in (("--method", args.method != "d2"), ("--labels", args.labels),
                        ("--graph", args.graph_file), ("--class-budget", args.class_budget),
                        ("--dedup", args.dedup is not None), ("--key", args.key),
                        ("--emb-key", args.emb_key), ("--scores-key", args.scores_key)):
        if value:
            raise ValueError(f"{flag} is not supported with shard inputs / --engine")
    if args.k is not None and args.k < 1:
        raise ValueError(f"--k {args.k}, must be >= 1")
    with run.stage("distributed prune"):
        keep, info = distributed.prune(
            args.emb, args.scores, args.k or 5, args.rate, n_keep=args.n_keep,
            gamma_f=1.0 if args.gamma_f is None else args.gamma_f,
            gamma_r="auto" if args.gamma_r is None else args.gamma_r, mode=args.mode or "sum",
            hard_prune="auto" if args.hard_prune is None else args.hard_prune,
            reverse=args.reverse or "weighted", progress=not args.quiet,
            shards=args.shards, workdir=args.workdir, engine=args.engine or "ray",
            address=args.address, return_info=True, **_graph_kwargs(args))
    log.info("hard_prune %s", info["hard_prune_reason"])
    log.info("gamma_r %s", info["gamma_r_reason"])
    run.record["inputs"] = {"emb": args.emb, "scores": args.scores}
    with run.stage("write"):
        io.save_array(args.output, keep)
    run.finish(args.output, **io.array_info(keep), n_keep=int(keep.size), method="d2",
               distributed=info)


def run_prune(args: argparse.Namespace, run: _Run) -> None:
    if args.engine or _is_sharded(args.emb) or _is_sharded(args.scores):
        return run_prune_distributed(args, run)
    if args.address or args.workdir or args.shards:
        raise ValueError("--address, --workdir and --shards need --engine (or shard inputs)")
    io.check_output(args.output, args.force, io.ARRAY_OUTPUTS)
    emb = run.load("emb", args.emb, _key(args, "emb"), 2)
    scores = run.load("scores", args.scores, _key(args, "scores"), 1)
    labels = run.load("labels", args.labels, _key(args, "labels"), 1)
    n = emb.shape[0]
    _check_rows(n, "emb", scores=scores, labels=labels)
    n_keep = resolve_n_keep(n, args.rate, args.n_keep)
    if n_keep == 0:
        given = f"--n-keep {args.n_keep}" if args.n_keep is not None else f"--rate {args.rate}"
        raise ValueError(f"{given} keeps 0 of {n} rows: nothing to write")
    _check_applicable(args)
    if args.method != "d2":
        keep = _baseline(args, run, emb, scores, labels, n_keep)
    else:
        keep = _d2(args, run, emb, scores, labels, n_keep)
    with run.stage("write"):
        io.save_array(args.output, keep)
    run.finish(args.output, **io.array_info(keep), n=n, n_keep=int(keep.size),
               method=args.method, backend=_backend_name(args.backend))


def _auto_or_float(text: str) -> float | str:
    """--hard-prune, --gamma-r: 'auto' or a float (range checked by prune)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a float or 'auto', got {text!r}") from None


def _d2(args: argparse.Namespace, run: _Run, emb, scores, labels, n_keep: int) -> np.ndarray:
    """D2 through :func:`d2fast.prune` (on the --graph file when given); the resolved
    choices go to the sidecar's ``resolved`` and its stage times to ``timings_s``."""
    knn_params = _knn_params(args.knn_param)
    graph = args.graph_kind or "union"
    if args.graph_file:
        graph = run.load_graph(args.graph_file)
        if graph.n != emb.shape[0]:
            raise ValueError(f"graph: {args.graph_file} has {graph.n} nodes but emb has "
                             f"{emb.shape[0]} rows")
        try:
            check_prebuilt(graph, graph.n, k=args.k, metric=args.metric, graph=args.graph_kind,
                           knn=args.knn, knn_params=knn_params)
        except ValueError as exc:
            raise ValueError(f"--graph {args.graph_file}: {exc}") from None
    hard_prune = args.hard_prune
    optional = {} if hard_prune is None else {"hard_prune": hard_prune}  # else prune's
    with run.stage("prune"):
        keep, info = d2fast.prune(
            emb, scores, args.k, n_keep=n_keep, gamma_f=args.gamma_f, gamma_r=args.gamma_r,
            metric=args.metric, graph=graph, mode=args.mode, reverse=args.reverse,
            labels=labels, class_budget=None if args.class_budget == "none" else
            args.class_budget, knn=args.knn or "auto", knn_params=knn_params,
            dedup=args.dedup, backend=args.backend,
            progress=not args.quiet, return_info=True, **optional)
    stages = {"knn": "knn_graph", "dedup": "dedup", "forward": "forward", "select": "select"}
    for name, stage in stages.items():
        run.record["timings_s"][stage] = round(info["timings_s"][name], 6)
    run.record["resolved"] = {k: v for k, v in info.items()
                              if k not in ("dedup_groups", "timings_s")}
    for c in info["classes"]:
        if c["label"] is not None:
            log.info("class %r: %d rows, keeps %d, k=%s", c["label"], c["rows"], c["n_keep"],
                     c["k"])
    log.info("hard_prune %s", info["hard_prune_reason"])
    log.info("gamma_r %s", info["gamma_r_reason"])
    log.info("graph: %s %s, metric %s, k=%s, knn %s %s; backend %s", info["graph_source"],
             info["graph"], info["metric"], info["k"], info["knn"], info["knn_params"],
             info["backend"])
    if info["knn_auto"]:
        _log_knn_auto(info["knn_auto"])
    return keep


def _log_knn_auto(a: dict) -> None:
    """Log what nlist / nprobe 'auto' chose (``Graph.meta['knn_auto']``)."""
    if "nlist_auto" in a:
        log.info("nlist auto: %d of %s lists (estimated distance computations a row: %s)",
                 a["nlist"], a["nlist_auto"]["choices"], a["nlist_auto"]["work"])
    log.info("nprobe auto: %d lists among %s centroids: recall@k %.4f on %d sampled "
             "queries (target %.4g, with 2 standard errors to spare)", a["nprobe"],
             a["pool"] or f"8 x {a['nprobe']}", a["recall_sampled"], a["queries_sampled"],
             a["recall_target"])


# the prune options each method reads (the rest are errors when given); labels: see below
_USES = {"d2": {"k", "metric", "graph_kind", "knn", "knn_param", "gamma_f", "gamma_r", "mode",
                "reverse", "class_budget", "hard_prune", "graph_file", "dedup"},
         "random": {"seed"}, "topk": set(), "ccs": {"seed", "hard_prune"}, "moderate": set(),
         "kcenter": {"seed", "metric"}}
_DEFAULTS = {"gamma_f": 1.0, "gamma_r": "auto", "mode": "sum", "reverse": "weighted",
             "class_budget": "none", "seed": 0}


def _check_applicable(args: argparse.Namespace) -> None:
    """An option that --method ignores is an error that says so; then fill the defaults."""
    for attr in sorted(set().union(*_USES.values()) - _USES[args.method]):
        if getattr(args, attr) not in (None, []):
            flag = "--graph" if attr == "graph_file" else "--" + attr.replace("_", "-")
            why = " (d2 is deterministic)" if attr == "seed" else ""
            raise ValueError(f"{flag} does not apply to --method {args.method}{why}")
    if args.class_budget is not None and args.labels is None:
        raise ValueError("--class-budget applies only with --labels")
    for attr, value in _DEFAULTS.items():
        if getattr(args, attr) is None:
            setattr(args, attr, value)


def _baseline(args: argparse.Namespace, run: _Run, emb, scores, labels, n_keep: int):
    """A baseline of :mod:`d2fast.baselines`, with the options that apply to it."""
    extra = {"random": {"seed": args.seed}, "topk": {},
             "ccs": {"seed": args.seed, **({} if args.hard_prune is None
                                           else {"hard_prune": args.hard_prune})},
             "moderate": {"labels": labels},
             "kcenter": {"seed": args.seed, "metric": args.metric or "euclidean"}}[args.method]
    if labels is not None and args.method != "moderate":
        raise ValueError(f"--labels is not used by --method {args.method}")
    select = getattr(d2fast.baselines, args.method)
    defaults = {name: p.default for name, p in inspect.signature(select).parameters.items()
                if p.kind is p.KEYWORD_ONLY and name not in ("n_keep", "labels", "progress")}
    run.record["resolved"] = {**defaults, **{k: v for k, v in extra.items() if k != "labels"}}
    with run.stage(args.method):
        return select(emb, scores, n_keep=n_keep, **extra)


def run_extrapolate(args: argparse.Namespace, run: _Run) -> None:
    io.check_output(args.output, args.force, io.ARRAY_OUTPUTS)
    emb = run.load("emb", args.emb, _key(args, "emb"), 2)
    known_idx = run.load("known_idx", args.known_idx, _key(args, "known_idx"), 1)
    known_scores = run.load("known_scores", args.known_scores, _key(args, "known_scores"), 1)
    labels = run.load("labels", args.labels, _key(args, "labels"), 1)
    _check_rows(len(known_idx), "known_idx", known_scores=known_scores)
    _check_rows(emb.shape[0], "emb", labels=labels)
    graph = run.load_graph(args.graph_file) if args.graph_file else "union"
    with run.stage("extrapolate"):
        scores, info = d2fast.extrapolate(
            emb, known_idx, known_scores, method=args.method, k=args.k, metric=args.metric,
            weights=args.weights, temperature=args.temperature, knn=args.knn,
            knn_params=_knn_params(args.knn_param), graph=graph, labels=labels,
            epochs=args.epochs, seed=args.seed, return_info=True, progress=not args.quiet)
    with run.stage("write"):
        io.save_array(args.output, scores)
    run.finish(args.output, **io.array_info(scores),
               info={k: v for k, v in info.items() if np.ndim(v) == 0})


def run_report(args: argparse.Namespace, run: _Run) -> None:
    from d2fast import report

    io.check_output(args.output, args.force, FIGURES)
    emb = run.load("emb", args.emb, _key(args, "emb"), 2)
    scores = run.load("scores", args.scores, _key(args, "scores"), 1)
    keep = run.load("keep", args.keep, _key(args, "keep"), 1)
    labels = run.load("labels", args.labels, _key(args, "labels"), 1)
    _check_rows(emb.shape[0], "emb", scores=scores, labels=labels)
    with run.stage("report"), io.atomic_write(args.output) as tmp:
        summary = report.report(emb, scores, keep, labels, path=tmp,
                                max_points=args.max_points, seed=args.seed)
    run.finish(args.output, summary=summary)


def run_demo(args: argparse.Namespace, run: _Run) -> None:
    from d2fast import demo

    io.check_output(args.output, args.force, FIGURES)
    try:
        rates = tuple(float(r) for r in args.rates.split(","))
    except ValueError:
        raise ValueError(f"--rates {args.rates!r}, expected numbers like 0.3,0.5") from None
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise ValueError(f"--seeds {args.seeds!r}, expected integers like 0,1,2") from None
    with run.stage("demo"):
        result = demo.run_demo(data_dir=args.data, quick=args.quick, rates=rates, seeds=seeds,
                               label_noise=args.label_noise, out=None,
                               progress=not args.quiet)
    with run.stage("plot"), io.atomic_write(args.output) as tmp:
        demo.plot(result, tmp)
    run.finish(args.output, **result)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning("warning: %s", " ".join(str(message).split()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``d2fast`` command; returns the exit code (0 ok, 2 bad input, 130 Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("d2fast: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    warnings.showwarning = _show_warning
    prefix = f"d2fast {args.command}"
    try:
        args.run(args, _Run(args, argv))
        return 0
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except (*_BAD_INPUT, ImportError) as exc:
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return 1 if isinstance(exc, ImportError) else 2


if __name__ == "__main__":
    sys.exit(main())
