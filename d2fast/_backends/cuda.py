"""CUDA backend: the GPU kernels of ``d2fast._cuda`` (``csrc/cuda/``).

Loads only where a GPU is usable: without one, importing this module raises ImportError
with CUDA's reason, which ``d2fast.backends_missing()["cuda"]`` reports. ``backend="auto"``
never picks it; ask for it by name (``backend="cuda"`` or ``D2FAST_BACKEND=cuda``).

Kernels
-------
forward
    One GPU thread per row running the CPU's ``forward_row`` (``csrc/forward.h``).
select_rounds
    The rounds of SPEC 4 on the GPU: local-maximum tests and pull updates run the CPU's
    ``is_local_max`` and ``pull_update`` (``csrc/rounds_body.h``); the host reads a few
    counters per round and finishes the negative phase on the CPU heap.
select_heap
    The same function as ``select_rounds``: the GPU has no sequential heap. The rounds
    make the heap's picks (up to the float summation order of the updates one node
    receives within a round), so ``algorithm="heap"`` and ``"auto"`` run the rounds too.
pair_keys, topk_merge, build_csr, renumber
    The graph build stays on the CPU: the ``cpp`` backend, or the NumPy reference
    where the extension is missing.

Inputs are NumPy arrays or torch tensors (on any device; they are copied through host
memory); outputs are NumPy arrays. The GPU's ``exp`` is within 1 ulp of the C library's,
so float results can differ from the CPU backends in the last bit.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from d2fast import _cuda

NAME = "cuda"

if _cuda.device_count() == 0:
    raise ImportError(f"no usable CUDA GPU: {_cuda.device_status()}")

try:
    from d2fast._backends import cpp as _host
except Exception:  # no (working) C++ extension: the reference builds the graph
    from d2fast._backends import reference as _host


def _numpy(x: Any, dtype) -> np.ndarray:
    """``x`` as a C-contiguous array of ``dtype``; a torch tensor goes through the host."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=dtype)


def _csr(indptr, indices, distances):
    return _numpy(indptr, np.int64), _numpy(indices, np.int32), _numpy(distances, np.float32)


def pair_keys(X, rows, cand, cosine: bool) -> np.ndarray:
    """See :func:`d2fast._backends.reference.pair_keys` (runs on the CPU)."""
    return _host.pair_keys(X, rows, cand, cosine)


def topk_merge(D, ids, dest, outD, outI, bound=None) -> None:
    """See :func:`d2fast._backends.reference.topk_merge` (runs on the CPU)."""
    _host.topk_merge(D, ids, dest, outD, outI, bound)


def build_csr(knn_idx, knn_dist, symmetric: bool):
    """See :func:`d2fast._backends.reference.build_csr` (runs on the CPU)."""
    return _host.build_csr(knn_idx, knn_dist, symmetric)


def renumber(indptr, indices, distances, rows):
    """See :func:`d2fast._backends.reference.renumber` (runs on the CPU)."""
    return _host.renumber(indptr, indices, distances, rows)


def forward(indptr, indices, distances, scores, gamma_f: float, product: bool) -> np.ndarray:
    """See :func:`d2fast._backends.reference.forward`; float64 of shape (n,)."""
    return _cuda.forward(*_csr(indptr, indices, distances), _numpy(scores, np.float64),
                         float(gamma_f), bool(product))


def select_rounds(indptr, indices, distances, scores, n_keep: int, gamma_r: float,
                  absolute: bool) -> np.ndarray:
    """Parallel exact selection in rounds (SPEC 4) on the GPU; int64 of shape (n_keep,),
    the picks of :func:`d2fast._backends.reference.select_heap`."""
    return _cuda.select_rounds(*_csr(indptr, indices, distances), _numpy(scores, np.float64),
                               int(n_keep), float(gamma_r), bool(absolute))


select_heap = select_rounds  # the GPU path has only the rounds (see the module docstring)
