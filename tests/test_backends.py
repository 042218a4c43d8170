"""Backend discovery and dispatch (d2fast._backends)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import d2fast
from d2fast import _backends


def test_all_backends_built_here():
    """The test install (extra "test") has the extension and numba: both must load."""
    cpu = [b for b in d2fast.backends() if b != "cuda"]  # cuda only where a GPU is usable
    assert cpu == ["cpp", "numba", "numpy"], d2fast.backends_missing()


def test_auto_prefers_cpp_and_env_overrides(monkeypatch):
    assert _backends.get("auto").__name__ == "d2fast._backends.cpp"
    monkeypatch.setenv("D2FAST_BACKEND", "numba")
    assert _backends.get("auto").__name__ == "d2fast._backends.numba"
    assert _backends.get("numpy").__name__ == "d2fast._backends.reference"
    monkeypatch.setenv("D2FAST_BACKEND", "cobol")
    with pytest.raises(ValueError, match="backend='cobol' is not one of"):
        _backends.get("auto")


def test_cpp_reports_threads():
    from d2fast import _core

    assert _core.max_threads() >= 1


def test_bindings_reject_wrong_dtypes():
    """The C++ layer refuses (rather than reinterprets) arrays of the wrong dtype."""
    from d2fast import _core

    indptr, indices = np.array([0, 1, 2]), np.array([1, 0], dtype=np.int32)
    dist, s = np.ones(2, dtype=np.float32), np.ones(2)
    with pytest.raises(TypeError, match="indices must be a C-contiguous array of dtype int32"):
        _core.forward(indptr, indices.astype(np.int64), dist, s, 1.0, False)
    with pytest.raises(TypeError, match="scores must be a C-contiguous array of dtype float64"):
        _core.select_heap(indptr, indices, dist, s[::-1], 1, 0.1, False)
    with pytest.raises(ValueError, match="n_keep must satisfy"):
        _core.select_heap(indptr, indices, dist, s, 3, 0.1, False)
    with pytest.raises(TypeError, match="rows must be a C-contiguous array of dtype int64"):
        _core.renumber(indptr, indices, dist, np.array([1, 0], dtype=np.int32))
    with pytest.raises(ValueError, match=r"rows must lie in \[0, n\)"):
        _core.renumber(indptr, indices, dist, np.array([0, 2]))


def test_works_without_the_extension():
    """With d2fast._core unimportable, d2fast falls back to numba and says why."""
    code = (
        "import sys; sys.modules['d2fast._core'] = None\n"
        "import numpy as np, d2fast\n"
        "assert [b for b in d2fast.backends() if b != 'cuda'] == ['numba', 'numpy']\n"
        "assert 'cpp' in d2fast.backends_missing()\n"
        "rng = np.random.default_rng(0)\n"
        "emb, s = rng.normal(size=(300, 4)), rng.random(300)\n"
        "a = d2fast.prune(emb, s, rate=0.5)\n"
        "b = d2fast.prune(emb, s, rate=0.5, backend='numpy')\n"
        "assert (a == b).all()\n"
        "try:\n"
        "    d2fast.prune(emb, s, backend='cpp')\n"
        "except ValueError as e:\n"
        "    assert 'not available here' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('cpp should be unavailable')\n"
        "print('ok')\n"
    )
    env = dict(os.environ, D2FAST_BACKEND="auto")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
