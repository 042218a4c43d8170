"""The driver: runs the stages on an engine, checkpoints them, routes the rounds.

Each stage runs only if the manifest does not name it finished; its files are written
before the manifest names it. The selection rounds end with the stop test of SPEC 4 from
two reductions over the shards (the best queued key, the picks made); the driver keeps
the picks (global id, pick-time score). If fewer than ``n_keep`` were picked with
non-negative scores, the unselected subgraph is gathered here and finished by the lazy
heap (:func:`d2fast.select`, ``algorithm='heap'``), exactly as on one machine.

What the driver holds (n rows, d dims, P shards; nothing else grows with n):

- the partition: the k-means sample (``40 nlist`` rows, float32: with ``nlist =
  2 sqrt(n)`` O(sqrt(n) d); ``nlist='auto'`` above 1M rows trains that one and one of
  ``n / 500`` lists, at most 65536, so up to 2.6M rows), the centroids and the lists' row
  counts (O(nlist d)); for ``nlist='auto'`` also the 256 sampled queries and their
  ``k + 9`` nearest rows from every worker; the node <-> global row id mapping stays in
  the workers' files (:mod:`d2fast.distributed.partition`);
- the selection: the picks' (global id, pick-time score), 16 B a pick, up to ``n_keep``
  plus one round: the ranking the API returns is O(n_keep), and the stop test needs the
  ``n_keep``-th best pick. Each round's picks are written to ``rounds/picks-<r>.npz``
  (the ranking in pieces); the final sort by pick-time key is O(n_keep);
- ``gamma_r='auto'``: the graph's edge count and the distances of the edges
  :func:`d2fast.passing.auto_gamma_r` reads (at most 2^20 float32, 4 MiB), read by the
  workers from the graph files; the value is kept in the manifest with the graph stage;
- the negative phase, only when fewer than ``n_keep`` rows were picked with non-negative
  scores: the unselected subgraph (all unselected rows and the edges among them, O(n)
  in the worst case), because the lazy heap that finishes it exactly is sequential. It
  is checked against the available memory first (a MemoryError names what to change).
- ``hard_prune`` other than 0.0: the scores of all n rows while it is resolved (before
  the stages; about 64 B a row at the peak, checked first), see
  :mod:`d2fast.distributed.subset`;
- scores or embeddings passed as arrays are the caller's (written to ``workdir`` in
  blocks); pass files to keep them off the driver.
"""
from __future__ import annotations

import os
import time

import numpy as np

from d2fast._validate import check_memory
from d2fast.distributed.checkpoint import Manifest
from d2fast.distributed.layout import load_npz, save_npz
from d2fast.distributed.partition import plan, train_centroids
from d2fast.distributed.subset import tie_keys_of
from d2fast.graph import Graph
from d2fast.io import atomic_write
from d2fast.passing import _SELECT_LIMIT, gamma_r_from_sample, select


class Stats:
    """Per-stage seconds, rounds and bytes sent between shards, in all and per stage (the
    run's info); ``stage`` names the stage running."""

    def __init__(self, shards: int, engine: str) -> None:
        self.info = {"shards": shards, "engine": engine, "timings_s": {}, "rounds": 0,
                     "bytes_sent": 0, "bytes_by_stage": {}, "resumed": []}
        self.stage = ""

    def add(self, stage: str, seconds: float) -> None:
        t = self.info["timings_s"]
        t[stage] = round(t.get(stage, 0.0) + seconds, 6)

    def sent(self, nbytes: int) -> None:
        self.info["bytes_sent"] += nbytes
        by = self.info["bytes_by_stage"]
        by[self.stage] = by.get(self.stage, 0) + nbytes


def run(engine, manifest: Manifest, emb, cfg: dict, n_keep: int, stats: Stats,
        bar) -> np.ndarray:
    """All stages on ``engine``; the int64 ranking of global row ids."""
    workdir = cfg["workdir"]
    P = engine.shards

    def stage(name: str, body) -> None:
        if manifest.done(name):
            stats.info["resumed"].append(name)
        else:
            bar.set_description(f"distributed: {name}")
            stats.stage = name
            start = time.perf_counter()
            body()
            manifest.finish(name)
            stats.add(name, time.perf_counter() - start)
        bar.update(1)

    def step(name, inboxes=None, args=None):
        inboxes, values, sent = engine.step(name, inboxes, args)
        stats.sent(sent)
        return inboxes, values

    def do_partition():
        cuts = np.linspace(0, emb.n, P + 1).astype(np.int64)
        if cfg["nlist_auto"]:
            centroids, manifest.record["nlist_auto"] = _choose_nlist(step, emb, cfg, cuts)
        else:
            centroids = train_centroids(emb, cfg["nlist"], cfg["metric"])
        inboxes, _ = step("assign", args=[dict(start=int(cuts[p]), stop=int(cuts[p + 1]),
                                               centroids=centroids) for p in range(P)])
        inboxes, totals = step("count", inboxes)
        save_npz(os.path.join(workdir, "partition.npz"), centroids=centroids, cuts=cuts,
                 **plan(np.concatenate(totals), P))
        inboxes, _ = step("number", inboxes)
        step("write_order", inboxes)

    def do_graph():
        chosen = {"nprobe": cfg["nprobe"], "pool": cfg["pool"]}
        if cfg["knn"] == "ivf" and cfg["nprobe"] == "auto":
            _, values = step("choose_nprobe", args=[{"estimate": p == 0} for p in range(P)])
            chosen = manifest.record["knn_auto"] = values[0]  # read back on resume
        inboxes, _ = step("search", args={"nprobe": chosen["nprobe"], "pool": chosen["pool"]})
        _, values = step("write_graph", inboxes)
        manifest.record["nnz"] = int(sum(v["nnz"] for v in values))  # read back on resume
        manifest.record["gamma_r"] = _gamma_r(step, cfg["gamma_r"], emb.n, n_keep,
                                              manifest.record["nnz"])

    def do_forward():
        inboxes, _ = step("forward_send")
        _, values = step("forward_run", inboxes)
        if not all(finite for finite, _ in values):
            raise ValueError("scores too large: the forward pass overflowed to inf/NaN; "
                             "rescale the scores")
        manifest.record["forward_max"] = max(peak for _, peak in values)

    stage("partition", do_partition)
    stage("rows", lambda: step("write_rows"))
    stage("graph", do_graph)
    gamma_r, reason = manifest.record["gamma_r"]
    stats.info.update(nnz=manifest.record["nnz"], gamma_r=gamma_r, gamma_r_reason=reason)
    if manifest.record.get("knn_auto"):
        stats.info["knn_auto"] = chosen = manifest.record["knn_auto"]
        stats.info["knn_params"].update(nprobe=chosen["nprobe"], pool=chosen["pool"])
    if manifest.record.get("nlist_auto"):  # read back on resume
        nlist_auto = dict(manifest.record["nlist_auto"])
        stats.info["knn_params"]["nlist"] = nlist_auto["nlist"]
        stats.info["knn_auto"] = {**(stats.info["knn_auto"] or {}),
                                  "nlist": nlist_auto.pop("nlist"), "nlist_auto": nlist_auto}
    cfg = dict(cfg, gamma_r=gamma_r)
    stage("forward", do_forward)
    result_path = os.path.join(workdir, "result.npy")
    if manifest.done("select"):
        stats.info["resumed"].append("select")
        bar.update(1)
        return np.load(result_path)
    peak = manifest.record["forward_max"]
    if peak * (n_keep + 1) > _SELECT_LIMIT:
        raise ValueError(f"scores too large: max |scores| = {peak:.3g} with n_keep={n_keep} "
                         "could overflow float64 in the updates; rescale the scores")
    bar.set_description("distributed: select")
    stats.stage = "select"
    start = time.perf_counter()
    picks = _rounds(step, manifest, cfg, n_keep, stats, emb)
    if picks.size < n_keep:
        picks = np.concatenate([picks, _negative_phase(step, cfg, n_keep - picks.size, emb)])
    with atomic_write(result_path) as tmp:
        np.save(tmp, picks)
    manifest.finish("select")
    stats.add("select", time.perf_counter() - start)
    bar.update(1)
    return picks


def _choose_nlist(step, emb, cfg: dict, cuts: np.ndarray) -> tuple[np.ndarray, dict]:
    """``nlist='auto'`` as one machine chooses it (:func:`d2fast._nlist.choose_nlist`): the
    sampled queries' exact neighbours from every range (step ``nearest_to_sample``, merged
    and re-ranked here: O(sample x (k + 9)) rows), both partitions trained as
    :func:`train_centroids` trains them. Returns the chosen centroids and
    ``{"nlist", "choices", "work"}``."""
    from d2fast._nlist import merge_nearest, weigh
    from d2fast._nprobe import sample
    from d2fast.knn import _MARGIN, float32_rows, rerank

    n, cosine, backend = emb.n, cfg["metric"] == "cosine", cfg["backend"]
    q = sample(n).astype(np.int64)
    c, Q = min(n, cfg["k"] + 1 + _MARGIN), float32_rows(emb.take(q), cosine)
    _, tops = step("nearest_to_sample", args=[dict(
        start=int(cuts[p]), stop=int(cuts[p + 1]), queries=Q, c=c)
        for p in range(cuts.size - 1)])
    cand = merge_nearest(tops, c, q.size, backend)[1]
    used = np.unique(np.concatenate([q, cand[cand >= 0]]))
    rows = float32_rows(emb.take(used), cosine)
    local = rerank(rows, np.searchsorted(used, q), np.where(
        cand >= 0, np.searchsorted(used, cand), -1), cfg["k"], cosine, backend)[0]
    truth = np.where(local >= 0, used[np.maximum(local, 0)], -1)
    x = rows[np.searchsorted(used, np.concatenate([q, truth[truth >= 0]]))]
    return weigh(n, truth, x, lambda nlist: train_centroids(emb, nlist, cfg["metric"]),
                 cfg["recall"])


def _gamma_r(step, gamma_r, n: int, n_keep: int, nnz: int) -> list:
    """[gamma_r, reason]: as given, or ``'auto'``: :func:`d2fast.passing.auto_gamma_r` of
    the graph, from the edge sample the shards read (:mod:`d2fast.distributed.gamma`)."""
    if not isinstance(gamma_r, str):
        return [gamma_r, f"given: {gamma_r:g}"]
    _, degrees = step("gamma_degrees")
    base = np.cumsum(degrees) - np.asarray(degrees)
    _, parts = step("gamma_edges", args=[{"base": int(b), "nnz": nnz} for b in base])
    return list(gamma_r_from_sample(n, nnz, n_keep, np.concatenate(parts)))


def _bar_key(scores: np.ndarray, keys: np.ndarray, n_keep: int):
    """The n_keep-th best (score, tie key) of the picks (larger score first, then lower
    tie key, :func:`d2fast.distributed.subset.tie_keys_of`)."""
    s = -np.partition(-scores, n_keep - 1)[n_keep - 1]
    above = int((scores > s).sum())
    tied = np.sort(keys[scores == s])
    return float(s), int(tied[n_keep - 1 - above])


def _better(a: tuple, b: tuple) -> bool:
    """Key a before key b: larger score, ties to the lower tie key."""
    return a[0] > b[0] or (a[0] == b[0] and a[1] < b[1])


def _picks_path(workdir: str, r: int) -> str:
    """The picks of round r (each round's own: the ranking is written in pieces)."""
    os.makedirs(os.path.join(workdir, "rounds"), exist_ok=True)
    return os.path.join(workdir, "rounds", f"picks-{r:06d}.npz")


def _rounds(step, manifest: Manifest, cfg: dict, n_keep: int, stats: Stats,
            emb) -> np.ndarray:
    """The selection rounds; the picks (global ids) sorted by pick-time key."""
    from tqdm.auto import tqdm

    workdir = cfg["workdir"]
    done = manifest.round
    pieces = [load_npz(_picks_path(workdir, r)) for r in range(done + 1)]
    gids = np.concatenate([np.empty(0, dtype=np.int64)] + [f["gids"] for f in pieces])
    scores = np.concatenate([np.empty(0)] + [f["scores"] for f in pieces])
    del pieces
    keys = tie_keys_of(emb, gids)
    if done >= 0:
        stats.info["resumed"].append(f"round {done}")
    inboxes, _ = step("select_open", args={"resume_round": done, "gamma_r": cfg["gamma_r"]})
    with tqdm(total=n_keep, initial=min(n_keep, gids.size), desc="distributed: rounds",
              unit="pick", disable=not cfg["progress"], leave=False) as bar:
        r = done + 1
        while True:
            inboxes, values = step("pick", inboxes)
            tops = [v[0] for v in values if v[0] is not None]
            if not tops:
                break
            top = max(tops, key=lambda t: (t[0], -t[1]))
            if gids.size >= n_keep and _better(_bar_key(scores, keys, n_keep), top):
                break
            new_gids = np.concatenate([v[1] for v in values])
            new_scores = np.concatenate([v[2] for v in values])
            gids, scores = np.concatenate([gids, new_gids]), np.concatenate([scores, new_scores])
            keys = np.concatenate([keys, tie_keys_of(emb, new_gids)])
            inboxes, _ = step("update", inboxes, {"round": r})
            save_npz(_picks_path(workdir, r), gids=new_gids, scores=new_scores)
            manifest.finish_round(r)
            stats.info["rounds"] = r + 1
            bar.update(min(n_keep, gids.size) - bar.n)
            r += 1
    order = np.lexsort((keys, -scores))
    return gids[order][:n_keep]


def _negative_phase(step, cfg: dict, more: int, emb) -> np.ndarray:
    """The last ``more`` picks: the unselected subgraph (every score < 0 there) gathered
    here and finished by the lazy heap, node ids in tie-key order so ties match prune."""
    _, sizes = step("rest_size")
    nodes = sum(s[0] for s in sizes)
    edges = sum(s[1] for s in sizes)
    check_memory(2 * (24.0 * nodes + 28.0 * edges) + 41.0 * nodes,
                 f"the negative phase (the unselected {nodes} nodes and {edges} edges, "
                 "gathered on the driver)",
                 "give the driver more memory, or keep fewer rows (a higher rate)")
    _, parts = step("gather")
    gid = np.concatenate([p[0] for p in parts])
    cur = np.concatenate([p[1] for p in parts])
    src = np.concatenate([p[2] for p in parts])
    dst = np.concatenate([p[3] for p in parts])
    dist = np.concatenate([p[4] for p in parts])
    order = np.argsort(tie_keys_of(emb, gid))
    gid, cur = gid[order], cur[order]
    by_gid = np.argsort(gid)
    src = by_gid[np.searchsorted(gid[by_gid], src)]
    dst = by_gid[np.searchsorted(gid[by_gid], dst)]
    by_row = np.lexsort((dst, src))
    indptr = np.zeros(gid.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=gid.size), out=indptr[1:])
    g = Graph(indptr, dst[by_row], dist[by_row])
    picks = select(g, cur, more, gamma_r=cfg["gamma_r"], reverse=cfg["reverse"],
                   algorithm="heap", backend=cfg["backend"])
    return gid[picks]
