"""numba kernels: the three kernels of ``reference.py``, compiled lazily on first call.

Same names, signatures, dtypes and results as the NumPy reference: no ``fastmath``,
sums run in CSR order in float64, and the edge weights ``exp(-gamma * float64(d))`` come
from the C library's exp (``math.exp``), like the reference and the C++ backend.
``forward`` and the row passes of ``build_csr`` run in parallel over rows, each row
writing only its own output, so results do not depend on the thread count.
``select_heap`` is the exact lazy max-heap of SPEC 4.
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
def _select_heap(indptr, indices, weights, scores, capacity, picks):
    """Greedy reverse message passing with a lazy max-heap; fills ``picks`` in order.

    A pick v lowers each unselected neighbour j by ``weights[p] * s_v`` (float64 of
    shape (nnz,), p the position of j in row v). The heap arrays hold ``capacity`` entries.

    Every unselected node j has a heap entry with key >= its current score ``cur[j]``:
    a rise (pick with a negative score) pushes a fresh entry, a fall leaves the old,
    larger one. The top is picked only when its key equals the node's current score,
    re-keyed in place when it is larger, and dropped when it is smaller (a fresher entry
    exists), when its node is already picked, or when the current score is NaN.
    Returns the number of picks made (``< picks.size`` only if scores became NaN).
    """
    n = scores.size
    cur = scores.copy()
    selected = np.zeros(n, dtype=np.bool_)
    keys = np.empty(capacity, dtype=np.float64)
    ids = np.empty(capacity, dtype=np.int64)
    keys[:n] = cur
    ids[:n] = np.arange(n)
    size = n
    for pos in range(n // 2 - 1, -1, -1):
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
    # n initial entries, plus at most one push per neighbour of each pick
    # (re-keying happens in place): n + min(nnz, n_keep * max_degree).
    max_degree = int(np.max(np.diff(indptr)))
    capacity = n + min(indices.size, n_keep * max_degree)
    if absolute:  # weight 1: 1.0 * s_v == s_v exactly
        weights = np.ones(indices.size, dtype=np.float64)
    else:
        weights = _weights(distances, gamma_r)
    made = _select_heap(indptr, indices, weights, scores, capacity, picks)
    if made < n_keep:
        raise FloatingPointError(
            f"select: scores became NaN during selection after {made} of {n_keep} picks "
            "(overflow to inf in the score updates); rescale the scores")
    return picks
