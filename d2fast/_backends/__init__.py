"""One place that finds the kernel backends and picks one.

Each backend is a module with the kernels of ``reference.py`` (same names, same
signatures). They are probed lazily, once; the reason a backend is missing is kept
and reported by :func:`d2fast.backends` and in the error for an explicit request.

``"cuda"`` (the GPU kernels of ``d2fast._cuda``) loads only where a GPU is usable; it
is listed by :func:`available` then, but ``"auto"`` never takes it: ask for it by name
(``backend="cuda"`` or ``D2FAST_BACKEND=cuda``).
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

ORDER = ("cpp", "numba", "numpy")  # "auto" takes the first one available
NAMES = ("cpp", "numba", "cuda", "numpy")  # every backend, as listed by available()
_MODULES = {"cpp": "d2fast._backends.cpp", "numba": "d2fast._backends.numba",
            "cuda": "d2fast._backends.cuda", "numpy": "d2fast._backends.reference"}
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
    """Names of the backends that load here, CPU ones in order of preference, the
    NumPy reference last."""
    for name in NAMES:
        _probe(name)
    return [name for name in NAMES if name in _loaded]


def missing() -> dict[str, str]:
    """Why each backend that does not load is missing."""
    available()
    return dict(_missing)


def get(backend: str = "auto") -> ModuleType:
    """The kernel module for ``backend`` ("auto", "cpp", "numba", "cuda" or "numpy").

    ``"auto"`` honours the ``D2FAST_BACKEND`` environment variable, else takes the
    fastest available CPU backend (never "cuda").
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, got {type(backend).__name__}")
    name = backend
    if name == "auto":
        name = os.environ.get("D2FAST_BACKEND", "auto") or "auto"
        if name == "auto":
            for name in ORDER:
                _probe(name)
            return _loaded[next(name for name in ORDER if name in _loaded)]
    if name not in _MODULES:
        raise ValueError(f"backend={name!r} is not one of 'auto', {', '.join(map(repr, NAMES))}")
    _probe(name)
    if name not in _loaded:
        raise ValueError(f"backend={name!r} is not available here ({_missing[name]})")
    return _loaded[name]
