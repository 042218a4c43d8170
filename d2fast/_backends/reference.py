"""Pure-NumPy reference kernels: the oracle every other backend is tested against.

Written for clarity, not speed. Every backend module exposes the same kernels
with the same signatures; inputs are already validated and of the stated dtypes
(see ``d2fast._validate``), so kernels never check them again.

Kernels
-------
pair_keys(X, rows, cand, cosine) -> float64 (m, c)
topk_merge(D, ids, dest, outD, outI, bound=None) -> None (outD, outI updated in place)
build_csr(knn_idx, knn_dist, symmetric) -> (indptr, indices, distances)
renumber(indptr, indices, distances, rows) -> (indptr, indices, distances)
forward(indptr, indices, distances, scores, gamma_f, product) -> float64 (n,)
select_heap(indptr, indices, distances, scores, n_keep, gamma_r, absolute) -> int64 (n_keep,)
"""
from __future__ import annotations

import math

import numpy as np

NAME = "numpy"


def libm_exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of each element by the C library, float64.

    The compiled backends call the C library's ``exp``; NumPy's SIMD ``np.exp`` differs
    from it in the last bit for a few percent of arguments, which the negative-score phase
    of the selection (rising scores) can amplify into different picks.
    """
    return np.array([math.exp(v) for v in np.asarray(x, dtype=np.float64).ravel()],
                    dtype=np.float64).reshape(np.shape(x))


def pair_keys(X: np.ndarray, rows: np.ndarray, cand: np.ndarray, cosine: bool) -> np.ndarray:
    """Exact distance keys of candidate pairs, for re-ranking a faiss search.

    Parameters
    ----------
    X : float32 of shape (n, d), unit rows when ``cosine``
    rows : int64 of shape (m,), query rows
    cand : int64 of shape (m, c), candidates in ``[-1, n)`` (-1: key 0, ignored by callers)
    cosine : bool

    Returns
    -------
    float64 of shape (m, c): squared L2 of the rows in float64, or ``1 - x_i . x_j``.
    """
    m, c = cand.shape
    keys = np.empty((m, c), dtype=np.float64)
    safe = np.where(cand >= 0, cand, 0)
    xi = X[rows].astype(np.float64)
    for t in range(c):
        xj = X[safe[:, t]].astype(np.float64)
        keys[:, t] = 1.0 - (xi * xj).sum(axis=1) if cosine else ((xj - xi) ** 2).sum(axis=1)
    keys[cand < 0] = 0.0
    return keys


def topk_merge(D: np.ndarray, ids: np.ndarray, dest: np.ndarray, outD: np.ndarray,
               outI: np.ndarray, bound: np.ndarray | None = None) -> None:
    """Merge candidates into running top-c lists, the list scan of the IVF search.

    Parameters
    ----------
    D : float32 of shape (m, L), distances of m queries to L candidates
    ids : int64 of shape (L,) (one id a column) or (m, L), the candidates' ids
    dest : int64 of shape (m,), distinct rows of ``outD``/``outI`` in ``[0, M)``
    outD : float32 of shape (M, c), updated in place
    outI : int64 of shape (M, c), updated in place
    bound : float32 of shape (m,), optional
        Distances above ``bound[r]`` are not taken from row r of D (an upper bound of the
        query's c-th distance known from elsewhere).

    Row ``dest[r]`` of (outD, outI) holds c (distance, id) pairs, ascending by distance
    then id, padded with (inf, -1); it becomes the c smallest of itself and row r of
    (D, ids) in that order. NaN distances are never taken.
    """
    c = outD.shape[1]
    if c == 0 or D.shape[0] == 0:
        return
    if bound is not None:
        D = np.where(D > bound[:, None], np.float32(np.nan), D)
    allD = np.concatenate([outD[dest], D], axis=1)
    allI = np.concatenate([outI[dest], np.broadcast_to(ids, D.shape)], axis=1)
    order = np.lexsort((allI, allD))[:, :c]  # NaN sorts after the c (inf, -1) pads
    outD[dest] = np.take_along_axis(allD, order, 1)
    outI[dest] = np.take_along_axis(allI, order, 1)


def build_csr(knn_idx: np.ndarray, knn_dist: np.ndarray, symmetric: bool):
    """CSR adjacency from kNN lists.

    Parameters
    ----------
    knn_idx : int64 of shape (n, c)
        Neighbour ids in ``[-1, n)``; ``-1`` marks a missing neighbour. Self entries are dropped.
    knn_dist : float32 of shape (n, c)
        Finite, non-negative distance of each entry (ignored where ``knn_idx == -1``).
    symmetric : bool
        True: union graph, edge {i, j} if j in kNN(i) or i in kNN(j).
        False: row i holds exactly the valid entries of kNN(i).

    Returns
    -------
    indptr : int64 of shape (n + 1,)
    indices : int32 of shape (nnz,), each row strictly increasing, no self loops
    distances : float32 of shape (nnz,); a pair listed twice keeps its smaller distance
    """
    n, c = knn_idx.shape
    src = np.repeat(np.arange(n, dtype=np.int64), c)
    dst = knn_idx.ravel()
    dist = knn_dist.ravel()
    keep = (dst >= 0) & (dst != src)
    src, dst, dist = src[keep], dst[keep], dist[keep]
    if symmetric:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        dist = np.concatenate([dist, dist])
    dist = dist + np.float32(0.0)  # -0.0 -> +0.0
    order = np.lexsort((dist, dst, src))  # by row, then neighbour, then distance
    src, dst, dist = src[order], dst[order], dist[order]
    first = np.ones(src.size, dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    src, dst, dist = src[first], dst[first], dist[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst.astype(np.int32), dist.astype(np.float32)


def renumber(indptr: np.ndarray, indices: np.ndarray, distances: np.ndarray,
             rows: np.ndarray):
    """The graph induced by ``rows``, renumbered: node t is node ``rows[t]``.

    Parameters
    ----------
    indptr, indices, distances : int64 (n + 1,), int32 (nnz,), float32 (nnz,)
        A CSR graph of n nodes.
    rows : int64 of shape (m,)
        Distinct node ids in ``[0, n)``, in any order (a permutation of ``range(n)``
        renumbers the whole graph; a subset gives the induced subgraph).

    Returns
    -------
    indptr : int64 of shape (m + 1,)
    indices : int32, the edges of ``rows[t]`` to nodes in ``rows``, by new id
    distances : float32, the same edges' distances
    """
    from d2fast.graph import row_edges

    new_id = np.full(indptr.size - 1, -1, dtype=np.int64)
    new_id[rows] = np.arange(rows.size)
    owner, edge = row_edges(indptr, rows)  # row by row, in CSR order
    target = new_id[indices[edge]]
    inside = target >= 0
    owner, edge, target = owner[inside], edge[inside], target[inside]
    order = np.argsort(owner * rows.size + target, kind="stable")  # by new row, new id
    out_indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=rows.size), out=out_indptr[1:])
    return (out_indptr, target[order].astype(np.int32),
            distances[edge[order]].astype(np.float32) + np.float32(0.0))


def forward(indptr, indices, distances, scores, gamma_f: float, product: bool) -> np.ndarray:
    """Forward message passing (SPEC 3).

    ``acc_i = sum_j exp(-gamma_f * d(i, j)) * s_j`` over row i in CSR order, in float64;
    returns ``s_i + acc_i`` (sum) or ``s_i * acc_i`` (product), float64 of shape (n,).
    """
    n = indptr.size - 1
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        lo, hi = indptr[i], indptr[i + 1]
        w = libm_exp(-gamma_f * distances[lo:hi].astype(np.float64))
        acc = 0.0
        for wj, sj in zip(w, scores[indices[lo:hi]]):
            acc += wj * sj
        out[i] = scores[i] * acc if product else scores[i] + acc
    return out


def select_heap(indptr, indices, distances, scores, n_keep: int, gamma_r: float,
                absolute: bool) -> np.ndarray:
    """Greedy reverse message passing (SPEC 4) as the plain O(n * n_keep) argmax loop.

    Each step picks the unselected node with the largest current score (ties: lowest
    index), then lowers every unselected neighbour j of the pick v by
    ``exp(-gamma_r * d(v, j)) * s_v`` (weighted) or ``s_v`` (absolute).
    Returns the picks in selection order, int64 of shape (n_keep,).
    """
    s = scores.astype(np.float64, copy=True)
    selected = np.zeros(s.size, dtype=bool)
    picks = np.empty(n_keep, dtype=np.int64)
    for t in range(n_keep):
        masked = np.where(selected, -np.inf, s)
        v = int(np.argmax(masked))  # first maximum = lowest index among ties
        if selected[v]:  # every unselected score is -inf: lowest unselected index
            v = int(np.flatnonzero(~selected)[0])
        picks[t] = v
        selected[v] = True
        lo, hi = indptr[v], indptr[v + 1]
        nbr = indices[lo:hi]
        free = ~selected[nbr]
        nbr = nbr[free]
        if absolute:
            s[nbr] -= s[v]
        else:
            s[nbr] -= libm_exp(-gamma_r * distances[lo:hi][free].astype(np.float64)) * s[v]
    return picks
