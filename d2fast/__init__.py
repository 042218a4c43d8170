"""d2fast: fast exact D2 Pruning (coreset selection by message passing on a kNN graph).

>>> import d2fast
>>> keep = d2fast.prune(emb, scores, k=5, rate=0.7)   # doctest: +SKIP
"""
from d2fast import _backends
from d2fast._ivf import ivf_knn
from d2fast.graph import Graph, knn_graph
from d2fast.partition import Partition, ivf_partition
from d2fast.passing import forward, select
from d2fast.prune import prune

__version__ = "0.1.0"
__all__ = ["Graph", "Partition", "backends", "backends_missing", "baselines", "datasets",
           "evaluate_extrapolation", "extrapolate", "forward", "ivf_knn", "ivf_partition",
           "knn_graph", "prune", "scores", "select"]

# loaded on first use: ``scores`` needs torch, which ``import d2fast`` must not pay for.
# (the module is ``extrapolation``: a submodule named ``extrapolate`` would shadow the function)
_LAZY = {"scores": ("d2fast.scores", None), "baselines": ("d2fast.baselines", None),
         "datasets": ("d2fast.datasets", None),
         "extrapolate": ("d2fast.extrapolation", "extrapolate"),
         "evaluate_extrapolation": ("d2fast.extrapolation", "evaluate_extrapolation")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'd2fast' has no attribute {name!r}")
    import importlib
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def backends() -> list[str]:
    """Available kernel backends, fastest first, e.g. ``['cpp', 'numba', 'numpy']``.

    ``'numpy'`` is the reference. Why a backend is missing: ``d2fast.backends_missing()``.
    """
    return _backends.available()


def backends_missing() -> dict[str, str]:
    """For each backend that does not load here, the reason (the import error)."""
    return _backends.missing()
