"""Engines run the per-shard steps: in one process (``local``) or in Ray actors (``ray``).

A step is a plain function ``step(state, inbox, **args) -> (state, (to_shards,
to_driver))``: ``inbox`` lists the messages the other shards sent this shard in the
previous step (None where nothing was sent), ``to_shards[q]`` is this shard's message to
shard q, ``to_driver`` a small value for the driver. An engine calls one step on every
shard and routes the messages (bulk-synchronous). The local engine keeps the P states in
a list; the Ray engine keeps each in one actor, and messages go from actor to actor
through Ray's object store (the driver passes only their references on). Ray does all
the scheduling, transport and fault detection; nothing here opens a socket.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, Callable

import numpy as np

from d2fast.distributed import gamma, graph, partition, passing

STEPS: dict[str, Callable] = {
    "nearest_to_sample": partition.nearest_to_sample,
    "assign": partition.assign, "count": partition.count, "number": partition.number,
    "write_order": partition.write_order, "write_rows": graph.write_rows,
    "choose_nprobe": graph.choose_nprobe, "search": graph.search,
    "write_graph": graph.write_graph, "gamma_degrees": gamma.gamma_degrees,
    "gamma_edges": gamma.gamma_edges, "forward_send": passing.forward_send,
    "forward_run": passing.forward_run, "select_open": passing.select_open,
    "pick": passing.pick, "update": passing.update, "rest_size": passing.rest_size,
    "gather": passing.gather}
STAGE_OF = {"nearest_to_sample": "partition",
            "assign": "partition", "count": "partition", "number": "partition",
            "write_order": "partition", "write_rows": "rows", "choose_nprobe": "graph",
            "search": "graph",
            "write_graph": "graph", "gamma_degrees": "graph", "gamma_edges": "graph",
            "forward_send": "forward", "forward_run": "forward",
            "select_open": "select", "pick": "select", "update": "select",
            "rest_size": "select", "gather": "select"}


def _nbytes(message: Any) -> int:
    if message is None:
        return 0
    if isinstance(message, np.ndarray):
        return message.nbytes
    if isinstance(message, (tuple, list)):
        return sum(_nbytes(m) for m in message)
    return 8


def run_step(state: dict, name: str, inbox: list, args: dict):
    """Run step ``name`` on one shard: (state, to_shards, to_driver, bytes sent)."""
    state, (to_shards, to_driver) = STEPS[name](state, inbox, **args)
    to_shards = to_shards if to_shards is not None else [None] * state["P"]
    return state, to_shards, to_driver, sum(_nbytes(m) for m in to_shards)


def _args(args: dict | list | None, p: int) -> dict:
    if args is None:
        return {}
    return args[p] if isinstance(args, list) else args


class LocalEngine:
    """The shards' steps called in turn, in this process."""

    name = "local"

    def __init__(self, shards: int, setup: dict) -> None:
        self.shards, self.setup = shards, setup
        self.restart()

    def restart(self) -> None:
        self.states = [dict(self.setup, p=p, P=self.shards) for p in range(self.shards)]

    def step(self, name: str, inboxes: list | None = None, args: dict | list | None = None):
        """Run ``name`` on every shard: (next inboxes, driver values, bytes sent)."""
        P = self.shards
        outs, values, sent = [], [], 0
        for p in range(P):
            inbox = inboxes[p] if inboxes is not None else [None] * P
            self.states[p], to_shards, value, nbytes = run_step(self.states[p], name, inbox,
                                                                _args(args, p))
            outs.append(to_shards)
            values.append(value)
            sent += nbytes
        return [[outs[p][q] for p in range(P)] for q in range(P)], values, sent

    def close(self) -> None:
        self.states = []


def _rss_peak() -> int:
    """Peak resident memory of this process since its start or the last
    :func:`_reset_rss_peak`, in bytes (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_rss_peak() -> None:
    """Start a new peak from the current resident memory (Linux ``clear_refs`` 5; where
    that is not allowed the peak stays the process's, so later stages report at least
    the earlier ones' peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _trim_heap() -> None:
    """Give the heap memory freed by a step back to the system (glibc ``malloc_trim``;
    a no-op where there is none), so that it does not stay in the next stage's resident
    set."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ShardWorker:
    """One shard's state and steps (a Ray actor in the Ray engine); records the peak
    resident memory of each stage (:data:`STAGE_OF`)."""

    def __init__(self, p: int, shards: int, setup: dict) -> None:
        self.state = dict(setup, p=p, P=shards)
        self.peaks: dict = {}

    def run(self, name: str, args: dict, *inbox):
        self.state, to_shards, value, sent = run_step(self.state, name, list(inbox), args)
        stage = STAGE_OF[name]
        self.peaks[stage] = max(self.peaks.get(stage, 0), _rss_peak())
        _trim_heap()
        _reset_rss_peak()
        return (*to_shards, value, sent)

    def where(self) -> tuple[str, int]:
        """(Ray node id, process id) of this actor."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def peak_rss(self) -> dict:
        """Peak resident memory of this actor's process per stage, in bytes (a stage's
        peak includes what earlier stages left resident)."""
        return dict(self.peaks)


class RayEngine:
    """One Ray actor per shard, spread over the cluster's nodes.

    Connects to ``address`` (a running cluster), or uses the Ray this process already
    started, or starts a local one (``num_cpus``; shut down again by :meth:`close`).
    Each actor asks for ``min(1, CPUs / shards)`` CPUs, so any number of shards runs.
    """

    name = "ray"

    def __init__(self, shards: int, setup: dict, address: str | None = None,
                 num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ImportError("engine='ray' needs Ray: pip install 'd2fast[ray]' "
                              "(or use engine='local')") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address is None:
                # "local": a new Ray of this process, never another one running here
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                         log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
            self.started = True
        self.shards, self.setup = shards, setup
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.actor = ray.remote(ShardWorker).options(
            num_cpus=min(1.0, cpus / shards), scheduling_strategy="SPREAD")
        self.actors: list = []
        self.peak_rss: list = []
        self.peak_rss_by_stage: dict = {}
        self.restart()

    def restart(self) -> None:
        """Fresh actors for every shard (a dead one, and the others' partial step state:
        the driver then resumes from the last checkpoint)."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = [self.actor.remote(p, self.shards, self.setup) for p in range(self.shards)]

    def step(self, name: str, inboxes: list | None = None, args: dict | list | None = None):
        """Run ``name`` on every actor: (next inboxes as object refs, driver values,
        bytes sent). Raises Ray's ``RayActorError`` when an actor died."""
        P = self.shards
        refs = []
        for p, actor in enumerate(self.actors):
            inbox = inboxes[p] if inboxes is not None else [None] * P
            out = actor.run.options(num_returns=P + 2).remote(name, _args(args, p), *inbox)
            refs.append(out)
        values = self.ray.get([r[P] for r in refs])
        sent = sum(self.ray.get([r[P + 1] for r in refs]))
        return [[refs[p][q] for p in range(P)] for q in range(P)], values, sent

    def where(self) -> list:
        """(node id, pid) of each shard's actor."""
        return self.ray.get([a.where.remote() for a in self.actors])

    def close(self) -> None:
        """Record the actors' peak memory (bytes: ``peak_rss`` one a worker,
        ``peak_rss_by_stage`` a list of one a worker per stage), end them, and shut Ray
        down if this engine started it."""
        try:
            peaks = self.ray.get([a.peak_rss.remote() for a in self.actors])
        except dead_actor_errors():
            peaks = []
        self.peak_rss = [max(p.values(), default=0) for p in peaks]
        self.peak_rss_by_stage = {stage: [p.get(stage, 0) for p in peaks]
                                  for stage in dict.fromkeys(STAGE_OF.values())
                                  if any(stage in p for p in peaks)}
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started:
            self.ray.shutdown()


def dead_actor_errors() -> tuple:
    """The exceptions by which Ray reports a dead actor (empty without Ray)."""
    try:
        from ray.exceptions import RayActorError
    except ImportError:
        return ()
    return (RayActorError,)
