"""numba kernels: the kernels of ``reference.py`` and ``select_rounds``, compiled lazily.

Same names, signatures, dtypes and results as the NumPy reference: no ``fastmath``,
sums run in CSR order in float64, and the edge weights ``exp(-gamma * float64(d))`` come
from the C library's exp (``math.exp``), like the reference and the C++ backend.
``forward``, the row passes of ``build_csr`` and the rounds of ``select_rounds`` run in
parallel, each task writing only its own output, so results do not depend on the
thread count.
``select_heap`` is the exact lazy max-heap of SPEC 4, ``select_rounds`` its parallel
exact variant (SPEC 4, "Parallel exact selection").
"""
from __future__ import annotations

import math

import numpy as np

NAME = "numba"
from numba import njit, prange  # ImportError without numba: the backend is missing

_LOW32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- pair_keys
@njit(parallel=True)
def _pair_keys(X, rows, cand, cosine, keys):
    """Fill ``keys`` (float64 of shape (m, c)); see ``pair_keys``."""
    m, c = cand.shape
    d = X.shape[1]
    for r in prange(m):
        i = rows[r]
        for t in range(c):
            j = cand[r, t]
            acc = 0.0
            if j >= 0:
                for q in range(d):
                    if cosine:
                        acc += np.float64(X[i, q]) * np.float64(X[j, q])
                    else:
                        diff = np.float64(X[j, q]) - np.float64(X[i, q])
                        acc += diff * diff
                if cosine:
                    acc = 1.0 - acc
            keys[r, t] = acc


def pair_keys(X, rows, cand, cosine: bool) -> np.ndarray:
    """See :func:`d2fast._backends.reference.pair_keys`."""
    keys = np.empty(cand.shape, dtype=np.float64)
    _pair_keys(X, rows, cand, bool(cosine), keys)
    return keys


# --------------------------------------------------------------------------- topk_merge
@njit(cache=True)
def _cand_less(da, ia, db, ib):
    return da < db or (da == db and ia < ib)


@njit(cache=True)
def _cand_sift(hd, hi, c):
    """Restore the max-heap (by ``_cand_less``) of the first c entries below the root."""
    d, i, p = hd[0], hi[0], 0
    while True:
        ch = 2 * p + 1
        if ch >= c:
            break
        if ch + 1 < c and _cand_less(hd[ch], hi[ch], hd[ch + 1], hi[ch + 1]):
            ch += 1
        if not _cand_less(d, i, hd[ch], hi[ch]):
            break
        hd[p], hi[p] = hd[ch], hi[ch]
        p = ch
    hd[p], hi[p] = d, i


@njit(cache=True)
def _topk_merge(D, ids, dest, outD, outI, bound):
    """See ``topk_merge``; ``ids`` 2-D (1, L) for one id a column, else (m, L); ``bound``
    empty for none."""
    m, L = D.shape
    c = outD.shape[1]
    for r in range(m):
        row = r if ids.shape[0] > 1 else 0
        hd = outD[dest[r]][::-1].copy()  # ascending reversed: a max-heap
        hi = outI[dest[r]][::-1].copy()
        for j in range(L):
            idj = ids[row, j]
            if bound.size and D[r, j] > bound[r]:
                continue
            if _cand_less(D[r, j], idj, hd[0], hi[0]):
                hd[0], hi[0] = D[r, j], idj
                _cand_sift(hd, hi, c)
        for e in range(c - 1, 0, -1):
            hd[0], hd[e] = hd[e], hd[0]
            hi[0], hi[e] = hi[e], hi[0]
            _cand_sift(hd, hi, e)
        outD[dest[r]] = hd
        outI[dest[r]] = hi


def topk_merge(D, ids, dest, outD, outI, bound=None) -> None:
    """See :func:`d2fast._backends.reference.topk_merge`."""
    if outD.shape[1] and D.shape[0]:
        _topk_merge(D, ids.reshape(-1, D.shape[1]), dest, outD, outI,
                    np.empty(0, np.float32) if bound is None else bound)


# --------------------------------------------------------------------------- build_csr
@njit(cache=True)
def _bucket_rows(knn_idx, dist_bits, symmetric):
    """Bucket the valid kNN entries by row (counting sort).

    Parameters
    ----------
    knn_idx : int64 of shape (n, c), neighbour ids in ``[-1, n)``
    dist_bits : uint32 of shape (n, c), bits of the non-negative float32 distances
    symmetric : bool, also file each entry (i, j) under row j

    Returns
    -------
    row_start : int64 of shape (n + 1,), row i owns ``keys[row_start[i]:row_start[i + 1]]``
    keys : int64 of shape (row_start[n],), ``neighbour << 32 | dist_bits``; sorting keys
        sorts by neighbour, then distance (non-negative floats order as their bits)
    """
    n, c = knn_idx.shape
    row_start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for t in range(c):
            j = knn_idx[i, t]
            if j >= 0 and j != i:
                row_start[i + 1] += 1
                if symmetric:
                    row_start[j + 1] += 1
    for i in range(n):
        row_start[i + 1] += row_start[i]
    fill = row_start[:n].copy()
    keys = np.empty(row_start[n], dtype=np.int64)
    for i in range(n):
        for t in range(c):
            j = knn_idx[i, t]
            if j >= 0 and j != i:
                bits = np.int64(dist_bits[i, t])
                keys[fill[i]] = (j << 32) | bits
                fill[i] += 1
                if symmetric:
                    keys[fill[j]] = (np.int64(i) << 32) | bits
                    fill[j] += 1
    return row_start, keys


@njit(cache=True)
def _sort_dedupe(row):
    """Sort one row's keys in place and keep the first (smallest distance) key per neighbour.

    The unique keys go to the front of ``row``; returns their count.
    """
    row.sort()
    m = 0
    for p in range(row.size):
        if m == 0 or (row[p] >> 32) != (row[m - 1] >> 32):
            row[m] = row[p]
            m += 1
    return m


@njit(parallel=True)
def _sort_dedupe_rows(row_start, keys, row_nnz):
    """Apply ``_sort_dedupe`` to every row; the counts go to ``row_nnz`` (int64 of shape (n,))."""
    for i in prange(row_start.size - 1):
        row_nnz[i] = _sort_dedupe(keys[row_start[i]:row_start[i + 1]])


@njit(parallel=True)
def _unpack_rows(row_start, keys, indptr, indices, dist_bits):
    """Split each row's unique keys into ``indices`` (int32) and ``dist_bits`` (uint32)."""
    n = indptr.size - 1
    for i in prange(n):
        src = row_start[i]
        for p in range(indptr[i], indptr[i + 1]):
            key = keys[src]
            indices[p] = key >> 32
            dist_bits[p] = key & _LOW32
            src += 1


def build_csr(knn_idx: np.ndarray, knn_dist: np.ndarray, symmetric: bool):
    """See :func:`d2fast._backends.reference.build_csr`."""
    n = knn_idx.shape[0]
    dist_bits = (np.ascontiguousarray(knn_dist) + np.float32(0.0)).view(np.uint32)  # -0.0 -> +0.0
    row_start, keys = _bucket_rows(knn_idx, dist_bits, bool(symmetric))
    row_nnz = np.empty(n, dtype=np.int64)
    _sort_dedupe_rows(row_start, keys, row_nnz)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_nnz, out=indptr[1:])
    indices = np.empty(indptr[n], dtype=np.int32)
    distances = np.empty(indptr[n], dtype=np.uint32)
    _unpack_rows(row_start, keys, indptr, indices, distances)
    return indptr, indices, distances.view(np.float32)


# --------------------------------------------------------------------------- renumber
@njit(parallel=True)
def _kept_degrees(indptr, indices, new_id, kept):
    """``kept[new_id[r]]``: the neighbours of each kept node r that ``new_id`` keeps (>= 0).
    Both kernels walk the old rows in order (sequential reads)."""
    for r in prange(new_id.size):
        if new_id[r] >= 0:
            count = 0
            for p in range(indptr[r], indptr[r + 1]):
                if new_id[indices[p]] >= 0:
                    count += 1
            kept[new_id[r]] = count


@njit(parallel=True)
def _renumber_rows(indptr, indices, dist_bits, new_id, out_indptr, out_indices, out_bits):
    """Fill new row ``new_id[r]`` of each kept node r: its edges to kept nodes as keys
    ``new id << 32 | dist_bits``, sorted, unpacked into ``out_indices`` / ``out_bits``."""
    for r in prange(new_id.size):
        t = new_id[r]
        if t < 0:
            continue
        keys = np.empty(out_indptr[t + 1] - out_indptr[t], dtype=np.int64)
        q = 0
        for p in range(indptr[r], indptr[r + 1]):
            j = new_id[indices[p]]
            if j >= 0:
                keys[q] = (j << 32) | np.int64(dist_bits[p])
                q += 1
        keys.sort()
        for q in range(keys.size):
            out_indices[out_indptr[t] + q] = keys[q] >> 32
            out_bits[out_indptr[t] + q] = keys[q] & _LOW32


def renumber(indptr, indices, distances, rows):
    """See :func:`d2fast._backends.reference.renumber`."""
    new_id = np.full(indptr.size - 1, -1, dtype=np.int64)
    new_id[rows] = np.arange(rows.size)
    kept = np.empty(rows.size, dtype=np.int64)
    _kept_degrees(indptr, indices, new_id, kept)
    out_indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(kept, out=out_indptr[1:])
    out_indices = np.empty(out_indptr[-1], dtype=np.int32)
    out_bits = np.empty(out_indptr[-1], dtype=np.uint32)
    bits = (np.ascontiguousarray(distances) + np.float32(0.0)).view(np.uint32)  # -0.0 -> +0.0
    _renumber_rows(indptr, indices, bits, new_id, out_indptr, out_indices, out_bits)
    return out_indptr, out_indices, out_bits.view(np.float32)


# --------------------------------------------------------------------------- forward
@njit(parallel=True)
def _weights(distances, gamma):
    """Edge weights ``exp(-gamma * d)`` by the C library's exp, float64 of shape (nnz,)."""
    out = np.empty(distances.size, dtype=np.float64)
    for p in prange(distances.size):
        out[p] = math.exp(-gamma * np.float64(distances[p]))
    return out


@njit(parallel=True)
def _forward_rows(indptr, indices, weights, scores, product, out):
    """Fill ``out`` (float64 of shape (n,)) with the forward-passed scores, one row per task."""
    n = indptr.size - 1
    for i in prange(n):
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            acc += weights[p] * scores[indices[p]]
        out[i] = scores[i] * acc if product else scores[i] + acc


def forward(indptr, indices, distances, scores, gamma_f: float, product: bool) -> np.ndarray:
    """Forward message passing (SPEC 3).

    Parameters
    ----------
    indptr : int64 of shape (n + 1,)
    indices : int32 of shape (nnz,)
    distances : float32 of shape (nnz,)
    scores : float64 of shape (n,)
    gamma_f : float
    product : bool, True for ``s_i * acc_i``, False for ``s_i + acc_i``

    Returns
    -------
    float64 of shape (n,), with ``acc_i = sum_j exp(-gamma_f * d(i, j)) * s_j`` over row i
    in CSR order.
    """
    out = np.empty(indptr.size - 1, dtype=np.float64)
    _forward_rows(indptr, indices, _weights(distances, gamma_f), scores, bool(product), out)
    return out


# --------------------------------------------------------------------------- select_heap
# A max-heap is a pair of arrays (keys float64, ids int64) plus a size; entry a sits above
# entry b when (key_a, -id_a) > (key_b, -id_b), so equal keys pop lowest id first.
@njit(cache=True)
def _above(key_a, id_a, key_b, id_b):
    """Whether heap entry a orders before entry b."""
    return key_a > key_b or (key_a == key_b and id_a < id_b)


@njit(cache=True)
def _sift_down(keys, ids, size, pos):
    """Move the entry at ``pos`` down until both children are below it."""
    key, node = keys[pos], ids[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _above(keys[child + 1], ids[child + 1], keys[child], ids[child]):
            child += 1
        if not _above(keys[child], ids[child], key, node):
            break
        keys[pos], ids[pos] = keys[child], ids[child]
        pos = child
    keys[pos], ids[pos] = key, node


@njit(cache=True)
def _heap_push(keys, ids, size, key, node):
    """Add entry (key, node) to a heap of ``size`` entries; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) // 2
        if not _above(key, node, keys[parent], ids[parent]):
            break
        keys[pos], ids[pos] = keys[parent], ids[parent]
        pos = parent
    keys[pos], ids[pos] = key, node
    return size + 1


@njit(cache=True)
def _heap_pop(keys, ids, size):
    """Drop the top entry of a heap of ``size`` entries; returns the new size."""
    size -= 1
    keys[0], ids[0] = keys[size], ids[size]
    _sift_down(keys, ids, size, 0)
    return size


@njit(cache=True)
def _select_heap(indptr, indices, weights, cur, selected, capacity, picks):
    """Greedy reverse message passing with a lazy max-heap; fills ``picks`` in order.

    Continues the greedy from a state: the current scores ``cur`` (float64 of shape (n,))
    and the flags ``selected`` (bool of shape (n,)) of the nodes picked already, both
    updated in place. A pick v lowers each unselected neighbour j by ``weights[p] * s_v``
    (float64 of shape (nnz,), p the position of j in row v). The heap arrays hold
    ``capacity`` entries.

    Every unselected node j has a heap entry with key >= its current score ``cur[j]``:
    a rise (pick with a negative score) pushes a fresh entry, a fall leaves the old,
    larger one. The top is picked only when its key equals the node's current score,
    re-keyed in place when it is larger, and dropped when it is smaller (a fresher entry
    exists), when its node is already picked, or when the current score is NaN.
    Returns the number of picks made (``< picks.size`` only if scores became NaN).
    """
    n = cur.size
    keys = np.empty(capacity, dtype=np.float64)
    ids = np.empty(capacity, dtype=np.int64)
    size = 0
    for i in range(n):
        if not selected[i]:
            keys[size], ids[size] = cur[i], i
            size += 1
    for pos in range(size // 2 - 1, -1, -1):
        _sift_down(keys, ids, size, pos)
    t = 0
    while t < picks.size and size > 0:
        key, v = keys[0], ids[0]
        s_v = cur[v]
        if selected[v] or not key >= s_v:
            size = _heap_pop(keys, ids, size)
        elif key > s_v:
            keys[0] = s_v
            _sift_down(keys, ids, size, 0)
        else:
            size = _heap_pop(keys, ids, size)
            selected[v] = True
            picks[t] = v
            t += 1
            for p in range(indptr[v], indptr[v + 1]):
                j = indices[p]
                if selected[j]:
                    continue
                new = cur[j] - weights[p] * s_v
                if new > cur[j]:
                    size = _heap_push(keys, ids, size, new, j)
                cur[j] = new
    return t


def _reverse_weights(distances, gamma_r: float, absolute: bool) -> np.ndarray:
    """Reverse weights per edge: ``exp(-gamma_r * d)``, or 1 when ``absolute``."""
    if absolute:  # weight 1: 1.0 * s_v == s_v exactly
        return np.ones(distances.size, dtype=np.float64)
    return _weights(distances, gamma_r)


def _heap_select(indptr, indices, weights, cur, selected, picks) -> int:
    """Run ``_select_heap`` from the state (cur, selected); returns the picks made."""
    # the unselected entries, plus at most one push per neighbour of each pick
    # (re-keying happens in place): n + min(nnz, picks.size * max_degree).
    max_degree = int(np.max(np.diff(indptr)))
    capacity = cur.size + min(indices.size, picks.size * max_degree)
    return _select_heap(indptr, indices, weights, cur, selected, capacity, picks)


def _nan_error(made: int, n_keep: int) -> FloatingPointError:
    return FloatingPointError(
        f"select: scores became NaN during selection after {made} of {n_keep} picks "
        "(overflow to inf in the score updates); rescale the scores")


def select_heap(indptr, indices, distances, scores, n_keep: int, gamma_r: float,
                absolute: bool) -> np.ndarray:
    """Greedy reverse message passing (SPEC 4), exact for negative scores.

    Each step picks the unselected node with the largest current score (ties: lowest
    index), then lowers every unselected neighbour j of the pick v by
    ``exp(-gamma_r * d(v, j)) * s_v`` (weighted) or ``s_v`` (absolute).

    Parameters
    ----------
    indptr : int64 of shape (n + 1,)
    indices : int32 of shape (nnz,)
    distances : float32 of shape (nnz,)
    scores : float64 of shape (n,), not modified
    n_keep : int in ``[0, n]``
    gamma_r : float
    absolute : bool

    Returns
    -------
    int64 of shape (n_keep,), the picks in selection order.

    Raises
    ------
    FloatingPointError
        If scores became NaN (e.g. ``inf - inf``) before ``n_keep`` picks were made.
    """
    n = scores.size
    n_keep = int(n_keep)
    picks = np.empty(n_keep, dtype=np.int64)
    if n_keep == 0:
        return picks
    cur = np.array(scores, dtype=np.float64)
    selected = np.zeros(n, dtype=np.bool_)
    made = _heap_select(indptr, indices, _reverse_weights(distances, gamma_r, absolute), cur,
                        selected, picks)
    if made < n_keep:
        raise _nan_error(made, n_keep)
    return picks


# --------------------------------------------------------------------------- select_rounds
@njit(cache=True)
def _transpose(indptr, indices):
    """The reversed graph: row j lists the sources i of the edges i -> j, by increasing i.

    Returns
    -------
    tptr : int64 of shape (n + 1,)
    tidx : shape (nnz,), dtype of ``indices``
    perm : int64 of shape (nnz,), the position in the graph of each reversed edge
    """
    n = indptr.size - 1
    tptr = np.zeros(n + 1, dtype=np.int64)
    for p in range(indices.size):
        tptr[indices[p] + 1] += 1
    for j in range(n):
        tptr[j + 1] += tptr[j]
    fill = tptr[:n].copy()
    tidx = np.empty_like(indices)
    perm = np.empty(indices.size, dtype=np.int64)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            q = fill[indices[p]]
            fill[indices[p]] += 1
            tidx[q] = i
            perm[q] = p
    return tptr, tidx, perm


@njit(parallel=True)
def _local_maxima(cand, indptr, indices, tptr, tidx, symmetric, cur, selected):
    """Which of ``cand`` beat every unselected out- (and, if not symmetric, in-) neighbour.

    Keys compare as in the heap: (score, -id). Returns bool of shape (cand.size,).
    """
    out = np.empty(cand.size, dtype=np.bool_)
    for c in prange(cand.size):
        v = cand[c]
        ok = True
        for p in range(indptr[v], indptr[v + 1]):
            u = indices[p]
            if not selected[u] and not _above(cur[v], v, cur[u], u):
                ok = False
                break
        if ok and not symmetric:
            for p in range(tptr[v], tptr[v + 1]):
                u = tidx[p]
                if not selected[u] and not _above(cur[v], v, cur[u], u):
                    ok = False
                    break
        out[c] = ok
    return out


@njit(parallel=True)
def _pull(touched, tptr, tidx, tweights, picked_in, rnd, cur):
    """Lower each ``touched`` node by the updates of round ``rnd``'s picks, in in-row order."""
    for t in prange(touched.size):
        j = touched[t]
        s = cur[j]
        for p in range(tptr[j], tptr[j + 1]):
            v = tidx[p]
            if picked_in[v] == rnd:
                s -= tweights[p] * cur[v]
        cur[j] = s


@njit(cache=True)
def _mark_rows(rows, ptr, idx, stamp, value):
    """Set ``stamp[u] = value`` for every u listed in the rows ``rows`` of (ptr, idx)."""
    for v in rows:
        for p in range(ptr[v], ptr[v + 1]):
            stamp[idx[p]] = value


@njit(cache=True)
def _filter_marked(stamp, value, selected, cur, nonneg, out):
    """Collect the unselected nodes u with ``stamp[u] == value`` into ``out``, by increasing id.

    With ``nonneg``, only those with ``cur[u] >= 0``. Returns their count.
    """
    m = 0
    for u in range(stamp.size):
        if stamp[u] == value and not selected[u] and (not nonneg or cur[u] >= 0.0):
            out[m] = u
            m += 1
    return m


@njit
def _select_rounds(indptr, indices, tptr, tidx, tweights, symmetric, cur, selected, n_keep,
                   pick_node, pick_score):
    """The non-negative phase of the greedy, in rounds of simultaneous local-maximum picks.

    Each round picks every unselected node with score >= 0 that is a strict local maximum
    (``_local_maxima``) and applies their updates along out-edges (``_pull``, reading the
    reversed graph ``tptr, tidx, tweights``). Only nodes whose own score, a neighbour's
    score or a neighbour's selection changed are tested again. Stops when at least
    ``n_keep`` picks beat the best unpicked key, or when no unpicked score is >= 0.
    ``cur`` and ``selected`` are updated in place; the picks and their pick-time scores go
    to ``pick_node`` and ``pick_score`` (int64 and float64 of shape (n,)), round by round.
    Nodes are marked by plain stores and collected by a scan: unpredictable branches on
    scattered loads would stall the loop.

    Returns
    -------
    made : int, the number of picks
    finite : bool, False if a score became NaN (the rounds then stopped)
    """
    n = cur.size
    picked_in = np.full(n, -1, dtype=np.int32)  # round a node was picked in
    touched_in = np.full(n, -1, dtype=np.int32)  # round whose picks last updated a node
    queued_in = np.zeros(n, dtype=np.int32)  # last round a node was queued to be tested in
    touched = np.empty(n, dtype=np.int64)
    cand = np.empty(n, dtype=np.int64)
    n_cand = _filter_marked(queued_in, 0, selected, cur, True, cand)
    made = 0
    rnd = 0
    while n_cand > 0:
        if made >= n_keep:  # can an unpicked node still enter the first n_keep?
            top = cand[0]
            for c in range(1, n_cand):
                if _above(cur[cand[c]], cand[c], cur[top], top):
                    top = cand[c]
            better = 0
            for t in range(made):
                if _above(pick_score[t], pick_node[t], cur[top], top):
                    better += 1
            if better >= n_keep:
                break
        is_max = _local_maxima(cand[:n_cand], indptr, indices, tptr, tidx, symmetric, cur,
                               selected)
        first = made
        for c in range(n_cand):
            if is_max[c]:
                v = cand[c]
                selected[v] = True
                picked_in[v] = rnd
                pick_node[made] = v
                pick_score[made] = cur[v]
                made += 1
        now = pick_node[first:made]
        _mark_rows(now, indptr, indices, touched_in, rnd)
        n_touched = _filter_marked(touched_in, rnd, selected, cur, False, touched)
        _pull(touched[:n_touched], tptr, tidx, tweights, picked_in, rnd, cur)
        # next candidates: the touched nodes, their neighbours and the picks' in-neighbours
        for j in touched[:n_touched]:
            if np.isnan(cur[j]):
                return made, False
            queued_in[j] = rnd + 1
        _mark_rows(touched[:n_touched], indptr, indices, queued_in, rnd + 1)
        if not symmetric:
            _mark_rows(touched[:n_touched], tptr, tidx, queued_in, rnd + 1)
            _mark_rows(now, tptr, tidx, queued_in, rnd + 1)
        n_cand = _filter_marked(queued_in, rnd + 1, selected, cur, True, cand)
        rnd += 1
    return made, True


def select_rounds(indptr, indices, distances, scores, n_keep: int, gamma_r: float,
                  absolute: bool) -> np.ndarray:
    """Parallel exact selection in rounds (SPEC 4); the picks of :func:`select_heap`.

    While the picks have scores >= 0, every strict local maximum is picked at once, in
    rounds (in parallel); the sequential order is the picks sorted by their pick-time
    score (ties: lowest index). On a directed graph the local-maximum test looks at in-
    and out-neighbours. The negative phase then finishes on the lazy heap. The picks
    equal :func:`select_heap`'s up to the float summation order of the updates one node
    receives within a round.

    Parameters and result as :func:`select_heap`.

    Raises
    ------
    FloatingPointError
        If scores became NaN (e.g. ``inf - inf``) before ``n_keep`` picks were made.
    """
    n = scores.size
    n_keep = int(n_keep)
    picks = np.empty(n_keep, dtype=np.int64)
    if n_keep == 0:
        return picks
    weights = _reverse_weights(distances, gamma_r, absolute)
    tptr, tidx, perm = _transpose(indptr, indices)
    # symmetric (every edge (i, j, d) has its twin (j, i, d), as in union graphs): the
    # graph is its own transpose and the local-maximum test skips the in-neighbours
    symmetric = (np.array_equal(tptr, indptr) and np.array_equal(tidx, indices)
                 and np.array_equal(distances[perm], distances))
    if symmetric:
        tptr, tidx, tweights = indptr, indices, weights
    else:
        tweights = weights[perm]
    cur = np.array(scores, dtype=np.float64)
    selected = np.zeros(n, dtype=np.bool_)
    pick_node = np.empty(n, dtype=np.int64)
    pick_score = np.empty(n, dtype=np.float64)
    made, finite = _select_rounds(indptr, indices, tptr, tidx, tweights, symmetric, cur,
                                  selected, n_keep, pick_node, pick_score)
    if not finite:
        raise _nan_error(made, n_keep)
    order = np.lexsort((pick_node[:made], -pick_score[:made]))[:n_keep]
    done = order.size
    picks[:done] = pick_node[order]
    if done < n_keep:  # negative phase: every unpicked score is < 0
        done += _heap_select(indptr, indices, weights, cur, selected, picks[done:])
        if done < n_keep:
            raise _nan_error(done, n_keep)
    return picks
