"""One place that finds the kernel backends and picks one.

Each backend is a module with the kernels of ``reference.py`` (same names, same
signatures). They are probed lazily, once; the reason a backend is missing is kept
and reported by :func:`d2fast.backends` and in the error for an explicit request.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

ORDER = ("cpp", "numba", "numpy")  # "auto" takes the first one available
_MODULES = {"cpp": "d2fast._backends.cpp", "numba": "d2fast._backends.numba",
            "numpy": "d2fast._backends.reference"}
_loaded: dict[str, ModuleType] = {}
_missing: dict[str, str] = {}


def _probe(name: str) -> None:
    if name in _loaded or name in _missing:
        return
    try:
        _loaded[name] = importlib.import_module(_MODULES[name])
    except Exception as exc:  # ImportError, or a broken binary / numba install
        _missing[name] = f"{type(exc).__name__}: {exc}"


def available() -> list[str]:
    """Names of the backends that load here, in order of preference."""
    for name in ORDER:
        _probe(name)
    return [name for name in ORDER if name in _loaded]


def missing() -> dict[str, str]:
    """Why each backend that does not load is missing."""
    available()
    return dict(_missing)


def get(backend: str = "auto") -> ModuleType:
    """The kernel module for ``backend`` ("auto", "cpp", "numba" or "numpy").

    ``"auto"`` honours the ``D2FAST_BACKEND`` environment variable, else takes the
    fastest available backend.
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, got {type(backend).__name__}")
    name = backend
    if name == "auto":
        name = os.environ.get("D2FAST_BACKEND", "auto") or "auto"
        if name == "auto":
            return _loaded[available()[0]]
    if name not in _MODULES:
        raise ValueError(f"backend={name!r} is not one of 'auto', {', '.join(map(repr, ORDER))}")
    _probe(name)
    if name not in _loaded:
        raise ValueError(f"backend={name!r} is not available here ({_missing[name]})")
    return _loaded[name]
