"""Stages 4 and 5: forward message passing and the selection rounds, shard by shard.

A shard works on its own nodes (local ids ``0:m``) and ghost copies of the other shards'
nodes its edges reach (ids ``m:m + g``, by node id): together the *extended* ids. A node
is sent to the shards that hold it as a ghost (its subscribers: the owners of its in- and
out-neighbours) whenever its score or selection changes. Steps (``step(state, inbox,
**args) -> (state, (to_shards, to_driver))``):

- ``forward_send`` / ``forward_run``: ghost scores, then :func:`d2fast.forward`'s kernel
  on the shard's CSR (the same kernel, neighbours in the same global order, so the same
  sums);
- ``select_open``, then per round ``pick`` and ``update`` (SPEC 4, "Parallel exact
  selection", as ``csrc/select_rounds.h`` runs it on one machine): ``pick`` takes every
  queued non-negative strict local maximum by (score, -tie key of the global id,
  :mod:`d2fast._ties`, the order ``prune`` breaks ties in) over in- and
  out-neighbours and reports the best queued key for the stop test; ``update`` pulls the
  round's picks' updates, summed per node in the picks' key order (the heap's order);
  each round's state is saved (two alternating slots);
- ``rest_size`` / ``gather``: the unselected subgraph for the driver's heap (negative phase).
"""
from __future__ import annotations

import numpy as np

from d2fast import _backends
from d2fast.distributed.checkpoint import round_slot
from d2fast.distributed.graph import _partition, owned
from d2fast.distributed.layout import load_npz, npz_layout, save_npz, shard_path
from d2fast.distributed.shards import npy_rows
from d2fast.distributed.subset import tie_keys_of
from d2fast.io import atomic_write

_NODE_BLOCK = 1 << 16  # candidates whose neighbourhoods are compared at a time


def _segments(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges of CSR ``rows``: (index into ``rows`` of each edge's row, edge position)."""
    lens = indptr[rows + 1] - indptr[rows]
    first = np.cumsum(lens) - lens
    owner = np.repeat(np.arange(rows.size), lens)
    return owner, np.arange(int(lens.sum())) - first[owner] + indptr[rows][owner]


def _transpose(indptr: np.ndarray, idx: np.ndarray, size: int):
    """For every extended id x, the local rows whose CSR row holds x, in row order:
    (tptr int64 (size + 1,), trow of ``idx``'s dtype). Built a range of x at a time (about
    ``_EDGE_BLOCK`` edges), so the temporaries stay small."""
    counts = np.bincount(idx, minlength=size)
    tptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(counts, out=tptr[1:])
    trow = np.empty(idx.size, dtype=idx.dtype)
    cuts = np.searchsorted(tptr, np.arange(0, int(tptr[-1]) + _EDGE_BLOCK, _EDGE_BLOCK))
    cuts = np.unique(np.r_[0, np.minimum(cuts, size), size])
    for a, b in zip(cuts[:-1], cuts[1:]):
        pos = np.flatnonzero((idx >= a) & (idx < b))
        pos = pos[np.argsort(idx[pos], kind="stable")]
        trow[tptr[a]:tptr[b]] = np.searchsorted(indptr, pos, "right") - 1
    return tptr, trow


def _mark_rows(transpose: tuple, nodes: np.ndarray, out: np.ndarray) -> None:
    """``out[r] = True`` for every local row r whose CSR row holds one of ``nodes``
    (``transpose`` = (tptr, trow) of :func:`_transpose`), ``_NODE_BLOCK`` nodes at a time."""
    tptr, trow = transpose
    for a in range(0, nodes.size, _NODE_BLOCK):
        out[trow[_segments(tptr, nodes[a:a + _NODE_BLOCK])[1]]] = True


def _merge_rows(a_ptr, a_idx, b_ptr, b_idx):
    """Row-wise union of two CSRs over the same rows (sorted, no duplicates)."""
    m = a_ptr.size - 1
    rows = np.concatenate([np.repeat(np.arange(m), np.diff(a_ptr)),
                           np.repeat(np.arange(m), np.diff(b_ptr))])
    idx = np.concatenate([a_idx, b_idx])
    pairs = np.unique(rows * (idx.max(initial=0) + 1) + idx)
    rows, idx = np.divmod(pairs, idx.max(initial=0) + 1)
    ptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=m), out=ptr[1:])
    return ptr, idx.astype(a_idx.dtype)


_EDGE_BLOCK = 1 << 21  # edges read or transposed at a time


def open_graph(state: dict) -> dict:
    """The shard's graph in extended ids (cached in the state as ``state['g']``): int32
    ids where they fit, the out-edges' transpose, no per-edge copy beyond them. The
    graph file is read by ranges (no mapping stays)."""
    if "g" in state:
        return state["g"]
    lo, hi = owned(state)
    m = hi - lo
    path = shard_path(state["workdir"], "graph", state["p"])
    members = npz_layout(path)
    directed = "in_indptr" in members

    def read(name, a=0, b=None):
        rows = members[name][2][0]
        return npy_rows(path, a, rows if b is None else min(b, rows), members[name])

    def blocks(name):
        for a in range(0, members[name][2][0], _EDGE_BLOCK):
            yield a, read(name, a, a + _EDGE_BLOCK)

    far = [np.unique(x[(x < lo) | (x >= hi)]) for name in ("indices", "in_indices")
           if name in members for _, x in blocks(name)]
    ghosts = np.unique(np.concatenate([np.empty(0, dtype=np.int64)] + far))
    size = m + ghosts.size
    dtype = np.int32 if size < 2**31 else np.int64

    def ext(name):
        out = np.empty(members[name][2][0], dtype=dtype)
        for a, x in blocks(name):
            x -= lo
            far = (x < 0) | (x >= m)
            x[far] = m + np.searchsorted(ghosts, x[far] + lo)
            out[a:a + x.size] = x
        return out

    g = {"lo": lo, "m": m, "ghosts": ghosts, "size": size,
         "gid": np.concatenate([read("gid"), _partition(state)["order"][ghosts]]),
         "indptr": read("indptr"), "idx": ext("indices"), "dist": read("distances")}
    g["key"] = tie_keys_of(state["emb"], g["gid"])  # ties: the lower key, as in prune
    if directed:
        g["in_indptr"], g["in_idx"], g["in_dist"] = \
            read("in_indptr"), ext("in_indices"), read("in_distances")
        g["nb_indptr"], g["nb_idx"] = _merge_rows(g["indptr"], g["idx"], g["in_indptr"],
                                                  g["in_idx"])
        g["t_in"] = _transpose(g["in_indptr"], g["in_idx"], size)
    else:
        g["in_indptr"], g["in_idx"], g["in_dist"] = g["indptr"], g["idx"], g["dist"]
        g["nb_indptr"], g["nb_idx"] = g["indptr"], g["idx"]
    g["t_nb"] = _transpose(g["nb_indptr"], g["nb_idx"], size)
    if not directed:
        g["t_in"] = g["t_nb"]
    # subscribers: shard q needs local node u when a neighbour of u lives on q
    far = np.flatnonzero(g["nb_idx"] >= m)
    rows = np.searchsorted(g["nb_indptr"], far, "right") - 1
    owner = np.searchsorted(_partition(state)["bounds"], ghosts, "right") - 1
    pairs = np.unique(owner[g["nb_idx"][far] - m] * max(m, 1) + rows)
    g["subs"] = [pairs[(pairs // max(m, 1)) == q] % max(m, 1) for q in range(state["P"])]
    state["g"] = g
    return g


def _messages(state: dict, values: np.ndarray, mask: np.ndarray | None = None, *extra):
    """Per shard q: (node ids, values, *extra) of the local nodes q subscribes to (those
    in ``mask`` only, when given); None where nothing is sent."""
    g = open_graph(state)
    out = []
    for q, subs in enumerate(g["subs"]):
        if mask is not None:
            subs = subs[mask[subs]]
        out.append(None if q == state["p"] or subs.size == 0 else
                   (subs + g["lo"], values[subs], *(x[subs] for x in extra)))
    return out


def _ghost_positions(g: dict, nodes: np.ndarray) -> np.ndarray:
    return g["m"] + np.searchsorted(g["ghosts"], nodes)


def forward_send(state: dict, inbox: list):
    """Step: load the shard's scores and send them to the shards that hold them as ghosts."""
    g = open_graph(state)
    s = np.zeros(g["size"], dtype=np.float64)
    s[:g["m"]] = np.load(shard_path(state["workdir"], "scores", state["p"], ".npy"))
    state["s_ext"] = s
    return state, (_messages(state, s), float(np.abs(s[:g["m"]]).max(initial=0.0)))


def _padded(g: dict, indptr: np.ndarray) -> np.ndarray:
    """indptr over all extended ids (ghost rows empty), as the kernels want one score a row."""
    return np.concatenate([indptr, np.full(g["size"] - g["m"], indptr[-1], dtype=np.int64)])


def forward_run(state: dict, inbox: list):
    """Step: the forward pass of the shard's nodes (saved as ``forward/shard-<p>.npy``)."""
    g, cfg = open_graph(state), state["cfg"]
    s = state.pop("s_ext")
    for nodes, values in filter(None, inbox):
        s[_ghost_positions(g, nodes)] = values
    with np.errstate(over="ignore", invalid="ignore"):
        out = _backends.get(cfg["backend"]).forward(
            _padded(g, g["indptr"]), g["idx"].astype(np.int32, copy=False), g["dist"], s,
            cfg["gamma_f"],
            cfg["mode"] == "product")[:g["m"]]
    finite = bool(np.isfinite(out).all())
    if finite:
        with atomic_write(shard_path(state["workdir"], "forward", state["p"], ".npy")) as tmp:
            np.save(tmp, out)
    return state, (None, (finite, float(np.abs(out).max(initial=0.0)) if finite else 0.0))


def _weights(backend: str, distances: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(-gamma * d)`` of each edge, computed by the forward kernel of ``backend``
    (a one-edge row per weight, score 1, product mode) so the weights are bit-equal to
    those of its select kernels (the C library's exp, not NumPy's SIMD exp)."""
    nnz = distances.size
    if nnz == 0:
        return np.empty(0, dtype=np.float64)
    return _backends.get(backend).forward(np.arange(nnz + 1, dtype=np.int64),
                                          np.zeros(nnz, dtype=np.int32), distances,
                                          np.ones(nnz, dtype=np.float64), gamma, True)


def select_open(state: dict, inbox: list, *, resume_round: int, gamma_r: float):
    """Step: the selection state of round ``resume_round`` (-1: the forward scores), and
    every subscribed node's value, selection and change flag for the ghosts; ``gamma_r``:
    the reverse decay (resolved by the driver)."""
    g, cfg = open_graph(state), state["cfg"]
    if resume_round < 0:
        cur = np.zeros(g["size"], dtype=np.float64)
        cur[:g["m"]] = np.load(shard_path(state["workdir"], "forward", state["p"], ".npy"))
        sel = np.zeros(g["size"], dtype=bool)
        changed = np.zeros(g["size"], dtype=bool)
    else:
        saved = load_npz(shard_path(state["workdir"], "rounds", state["p"],
                                    round_slot(resume_round)))
        if int(saved["round"]) != resume_round:
            raise RuntimeError(f"shard {state['p']}: the checkpoint of round {resume_round} "
                               f"holds round {int(saved['round'])}; the workdir is damaged")
        cur, sel, changed = saved["cur"].copy(), saved["sel"].copy(), saved["changed"].copy()
    state.update(cur=cur, sel=sel, changed=changed, queue_all=resume_round < 0,
                 gamma_r=gamma_r)
    return state, (_messages(state, cur, None, sel, changed), None)


def _apply(state: dict, inbox: list) -> np.ndarray:
    """Ghost values, selections and change flags from the inbox; their positions."""
    g = open_graph(state)
    seen = []
    for nodes, cur, sel, changed in filter(None, inbox):
        at = _ghost_positions(g, nodes)
        state["cur"][at] = cur
        state["sel"][at] |= sel
        state["changed"][at] |= changed
        seen.append(at)
    return np.concatenate(seen) if seen else np.empty(0, dtype=np.int64)


def pick(state: dict, inbox: list):
    """Step: the round's picks (queued non-negative strict local maxima) and the best
    queued key; the picks are sent to their subscribers."""
    g = open_graph(state)
    _apply(state, inbox)
    cur, sel, changed, gid, m = state["cur"], state["sel"], state["changed"], g["gid"], g["m"]
    key = g["key"]  # ties: the lower key
    if state["queue_all"]:
        queued = np.ones(m, dtype=bool)
        state["queue_all"] = False
    else:
        queued = changed[:m].copy()
        _mark_rows(g["t_nb"], np.flatnonzero(changed), queued)
    changed[:] = False
    cand = np.flatnonzero(queued & ~sel[:m] & (cur[:m] >= 0.0))
    top = None
    if cand.size:
        best = cand[np.lexsort((key[cand], -cur[cand]))[0]]
        top = (float(cur[best]), int(key[best]))
    now = []
    for a in range(0, cand.size, _NODE_BLOCK):  # blocks of nodes: bounded temporaries
        block = cand[a:a + _NODE_BLOCK]
        owner, pos = _segments(g["nb_indptr"], block)
        u, c = g["nb_idx"][pos], block[owner]
        bad = ~sel[u] & ((cur[u] > cur[c]) | ((cur[u] == cur[c]) & (key[u] < key[c])))
        now.append(np.setdiff1d(block, c[bad]))
    now = np.concatenate(now) if now else cand
    sel[now] = True
    changed[now] = True
    state["now"] = now
    mask = np.zeros(m, dtype=bool)
    mask[now] = True
    ones = np.ones(m, dtype=bool)
    return state, (_messages(state, cur, mask, ones, ones),
                   (top, gid[now].copy(), cur[now].copy()))


def update(state: dict, inbox: list, *, round: int):
    """Step: apply the round's picks' updates to the shard's unselected nodes; save the
    round's state; send the changed nodes to their subscribers."""
    g, cfg = open_graph(state), state["cfg"]
    ghost_picks = _apply(state, inbox)
    cur, sel, changed, key, m = state["cur"], state["sel"], state["changed"], g["key"], g["m"]
    now = np.concatenate([state.pop("now"), ghost_picks])
    picked = np.zeros(g["size"], dtype=bool)
    picked[now] = True
    touched = np.zeros(m, dtype=bool)
    _mark_rows(g["t_in"], now, touched)
    touched = np.flatnonzero(touched & ~sel[:m])
    for a in range(0, touched.size, _NODE_BLOCK):  # each node's updates in one block
        owner, pos = _segments(g["in_indptr"], touched[a:a + _NODE_BLOCK])
        v = g["in_idx"][pos]
        hit = picked[v]
        j, v, pos = touched[a:a + _NODE_BLOCK][owner[hit]], v[hit], pos[hit]
        delta = cur[v] if cfg["reverse"] == "absolute" else \
            _weights(cfg["backend"], g["in_dist"][pos], state["gamma_r"]) * cur[v]
        order = np.lexsort((key[v], -cur[v], j))  # per node, in the picks' key order
        j, delta = j[order], delta[order]
        start = np.flatnonzero(np.r_[True, j[1:] != j[:-1]]) if j.size else j
        rank = np.arange(j.size) - np.repeat(start, np.diff(np.r_[start, j.size]))
        for t in range(int(rank.max(initial=-1)) + 1):
            at = rank == t
            cur[j[at]] -= delta[at]
    changed[touched] = True
    save_npz(shard_path(state["workdir"], "rounds", state["p"], round_slot(round)),
             cur=cur, sel=sel, changed=changed, round=np.int64(round))
    mask = np.zeros(m, dtype=bool)
    mask[touched] = True
    zeros, ones = np.zeros(m, dtype=bool), np.ones(m, dtype=bool)
    return state, (_messages(state, cur, mask, zeros, ones), None)


def _rest(state: dict):
    g = open_graph(state)
    free = np.flatnonzero(~state["sel"][:g["m"]])
    owner, pos = _segments(g["indptr"], free)
    keep = ~state["sel"][g["idx"][pos]]
    return g, free, owner[keep], pos[keep]


def rest_size(state: dict, inbox: list):
    """Step: unselected nodes and their out-edges to unselected nodes (counts)."""
    _, free, _, pos = _rest(state)
    return state, (None, (int(free.size), int(pos.size)))


def gather(state: dict, inbox: list):
    """Step: the unselected subgraph of the shard: (gid, score) of its unselected nodes
    and their out-edges to unselected nodes as (source gid, target gid, distance)."""
    g, free, owner, pos = _rest(state)
    gid = g["gid"]
    return state, (None, (gid[free], state["cur"][free].copy(), gid[free][owner],
                          gid[g["idx"][pos]], np.asarray(g["dist"])[pos]))
