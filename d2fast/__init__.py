"""d2fast: fast exact D2 Pruning (coreset selection by message passing on a kNN graph).

>>> import d2fast
>>> keep = d2fast.prune(emb, scores, k=5, rate=0.7)   # doctest: +SKIP
"""
from __future__ import annotations

from d2fast import _backends
from d2fast.graph import Graph, knn_graph
from d2fast.passing import forward, select
from d2fast.prune import prune

__version__ = "0.1.0"
__all__ = ["Graph", "backends", "backends_missing", "forward", "knn_graph", "prune", "select"]


def backends() -> list[str]:
    """Available kernel backends, fastest first, e.g. ``['cpp', 'numba', 'numpy']``.

    ``'numpy'`` is the reference. Why a backend is missing: ``d2fast.backends_missing()``.
    """
    return _backends.available()


def backends_missing() -> dict[str, str]:
    """For each backend that does not load here, the reason (the import error)."""
    return _backends.missing()
