"""C++/OpenMP backend: the compiled kernels of ``d2fast._core`` (``csrc/``)."""
from __future__ import annotations

import numpy as np

NAME = "cpp"

from d2fast import _core


def pair_keys(X, rows, cand, cosine: bool) -> np.ndarray:
    """See :func:`d2fast._backends.reference.pair_keys`."""
    return _core.pair_keys(X, rows, cand, bool(cosine))


def topk_merge(D, ids, dest, outD, outI, bound=None) -> None:
    """See :func:`d2fast._backends.reference.topk_merge`."""
    _core.topk_merge(D, ids, dest, outD, outI, bound)


def build_csr(knn_idx, knn_dist, symmetric: bool):
    """See :func:`d2fast._backends.reference.build_csr`."""
    return _core.build_csr(knn_idx, knn_dist, bool(symmetric))


def renumber(indptr, indices, distances, rows):
    """See :func:`d2fast._backends.reference.renumber`."""
    return _core.renumber(indptr, indices, distances, rows)


def forward(indptr, indices, distances, scores, gamma_f: float, product: bool) -> np.ndarray:
    """See :func:`d2fast._backends.reference.forward`."""
    return _core.forward(indptr, indices, distances, scores, float(gamma_f), bool(product))


def select_heap(indptr, indices, distances, scores, n_keep: int, gamma_r: float,
                absolute: bool) -> np.ndarray:
    """See :func:`d2fast._backends.reference.select_heap`."""
    return _core.select_heap(indptr, indices, distances, scores, int(n_keep),
                             float(gamma_r), bool(absolute))


def select_rounds(indptr, indices, distances, scores, n_keep: int, gamma_r: float,
                  absolute: bool) -> np.ndarray:
    """Parallel exact selection in rounds (SPEC 4); the picks of :func:`select_heap`."""
    return _core.select_rounds(indptr, indices, distances, scores, int(n_keep),
                               float(gamma_r), bool(absolute))
