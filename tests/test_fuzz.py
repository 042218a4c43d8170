"""Fuzzing every public entry point that reaches the C++ kernels (hypothesis).

Inputs: shapes 0..40, every real dtype plus bool/complex/object, NaN/inf, huge and denormal
values; plain, non-contiguous, negative-stride, Fortran, read-only, misaligned, memmap,
torch and list inputs; malformed CSR and kNN arrays; bad scalars and choices. Each call
must return the correct result (the NumPy reference or a brute-force computation) or raise
ValueError/TypeError whose message names an argument that is actually bad: never another
exception, never a crash, never a change to the caller's arrays.

``D2FAST_FUZZ_EXAMPLES=N`` runs N examples per test (the defaults keep the file < 60 s).
"""
from __future__ import annotations

import copy
import itertools
import math
import numbers
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_greedy_replay, random_knn
from hypothesis import HealthCheck, given, settings, strategies as st
from test_graph import assert_csr_invariants, brute_knn

import d2fast
from d2fast import Graph
from d2fast._backends import reference
from d2fast._ties import tie_order
from d2fast._validate import EMB_MAX_NORM
from d2fast.passing import _SELECT_LIMIT

EXAMPLES = int(os.environ.get("D2FAST_FUZZ_EXAMPLES", "0"))
_TMP = tempfile.TemporaryDirectory(prefix="d2fast-fuzz-")
_files = itertools.count()


def fuzz(default: int):
    """hypothesis settings: ``default`` examples, or D2FAST_FUZZ_EXAMPLES."""
    return settings(max_examples=EXAMPLES or default, deadline=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- array strategies

REAL = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "longdouble")
NOT_REAL = ("bool", "complex128", "object")
SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-310, 5e-324, 1e-45, 1e-40, 1e18, 1e19,
           3.4e38, 1e300, -1e300, 1.7e308, math.nan, math.inf, -math.inf)
LAYOUTS = ("plain", "strided", "reversed", "fortran", "readonly", "misaligned", "memmap",
           "torch", "list")


@st.composite
def values(draw, shape, dtype: str, finite: bool = False) -> np.ndarray:
    """An ndarray of ``shape`` and ``dtype``: small numbers, dtype extremes, specials."""
    size = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        elem = st.one_of(st.integers(max(info.min, -3), min(info.max, 45)),
                         st.sampled_from([info.min, info.max]), st.integers(info.min, info.max))
        return np.array(draw(st.lists(elem, min_size=size, max_size=size)),
                        dtype=dt).reshape(shape)
    if dt.kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)),
                        dtype=bool).reshape(shape)
    special = [v for v in SPECIAL if math.isfinite(v)] if finite else list(SPECIAL)
    elem = st.one_of(st.floats(-10, 10), st.sampled_from(special))
    vals = draw(st.lists(elem, min_size=size, max_size=size))
    with np.errstate(all="ignore"):
        return np.array(vals, dtype=np.float64).astype(dt).reshape(shape)


def present(a: np.ndarray, layout: str):
    """The caller's object holding the values of ``a`` in ``layout``."""
    if a.ndim == 0 or a.size == 0 or (a.dtype.hasobject and layout not in ("plain", "list")):
        return a
    if layout == "strided":
        big = np.zeros((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
        big[::2] = a
        return big[::2]
    if layout == "reversed":
        return a[::-1].copy()[::-1]
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "readonly":
        out = a.copy()
        out.flags.writeable = False
        return out
    if layout == "misaligned" and a.itemsize > 1:
        raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
        out = raw[1:].view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    if layout == "memmap":
        path = Path(_TMP.name) / f"a{next(_files)}.dat"
        mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
        mm[...] = a
        mm.flush()
        del mm
        return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    if layout == "torch":
        torch = _torch()
        try:
            return torch.from_numpy(a.copy())
        except TypeError:  # a dtype torch does not have (longdouble)
            return a
    if layout == "list":
        return a.tolist()
    return a


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


@st.composite
def caller_arrays(draw, shape, dtypes=REAL + NOT_REAL, finite: bool = False):
    """(object passed by the caller, ndarray view the library sees)."""
    dtype = draw(st.sampled_from(dtypes))
    if dtype == "object":
        a = np.empty(shape, dtype=object)
        a[...] = 1.5
    else:
        a = draw(values(shape, dtype, finite))
    obj = present(a, draw(st.sampled_from(LAYOUTS)))
    return obj, seen(obj)


def seen(obj) -> np.ndarray:
    """The array the library sees for a caller's object."""
    if type(obj).__module__.startswith("torch"):
        return obj.numpy()
    return obj if isinstance(obj, np.ndarray) else np.asarray(obj)


def shapes(n: int, ndim: int = 1):
    """Mostly the right shape (n,) or (n, d); sometimes a wrong one."""
    if ndim == 1:
        return st.sampled_from([(n,)] * 6 + [(n + 1,), (max(n - 1, 0),), (0,), (n, 1), ()])
    return st.sampled_from([(n, 3)] * 6 + [(n, 1), (n, 0), (0, 3), (1, 3), (n,), (n, 2, 1)])


def snapshot(obj):
    if type(obj).__module__.startswith("torch"):
        return obj.clone()
    if isinstance(obj, np.ndarray):
        return obj.copy()
    return copy.deepcopy(obj)


def assert_unchanged(obj, before) -> None:
    """The caller's object holds the same values (NaN == NaN) and flags as before."""
    if type(obj).__module__.startswith("torch"):
        obj, before = obj.numpy(), before.numpy()
    if isinstance(obj, np.ndarray):
        assert obj.dtype == before.dtype and obj.shape == before.shape
        if obj.dtype.hasobject:
            assert obj.tolist() == before.tolist()
        else:
            np.testing.assert_array_equal(obj, before)  # NaN equals NaN here
    else:
        assert obj == before or repr(obj) == repr(before)


# ---------------------------------------------------------------- the contract

def is_real(a: np.ndarray) -> bool:
    return a.dtype != bool and a.dtype.kind in "iuf"


def real_ok(v, lo: float = 0.0) -> bool:
    return (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
            and math.isfinite(float(v)) and float(v) >= lo)


def int_ok(v, lo: int, hi: int) -> bool:
    return (isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
            and lo <= int(v) <= hi)


def scores_ok(a: np.ndarray, n: int) -> bool:
    if not is_real(a) or a.shape != (n,):
        return False
    with np.errstate(all="ignore"):
        return bool(np.isfinite(a.astype(np.float64)).all())


def emb_ok(a: np.ndarray) -> bool:
    if not is_real(a) or a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        return False
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return False
    with np.errstate(all="ignore"):
        x = a.astype(np.float64)
        return bool(np.sqrt((x * x).sum(axis=1)).max() <= EMB_MAX_NORM)


def run(call, bad: set, *objects):
    """``call()``; a ValueError/TypeError must name one of ``bad``, success needs no bad.

    Returns the result, or None when the call was (rightly) refused. The caller's
    ``objects`` must be unchanged either way.
    """
    before = [snapshot(o) for o in objects]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the documented weight-underflow warning
            result = call()
    except (ValueError, TypeError) as exc:
        assert bad, f"valid input rejected: {exc!r}"
        names = [name for name in bad if re.search(rf"(?<![\w.]){re.escape(name)}\b", str(exc))]
        assert names, f"{type(exc).__name__}({exc}) names none of the bad arguments {bad}"
        result = None
    else:
        assert not bad, f"bad arguments {bad} accepted"
    for obj, old in zip(objects, before):
        assert_unchanged(obj, old)
    return result


BACKENDS = st.sampled_from(["cpp", "cpp", "numba", "numpy", "auto", "fortran"])
REALS = st.one_of(st.floats(0, 4), st.sampled_from(
    [0.0, 1e-300, 1e300, -1.0, math.nan, math.inf, True, "1", None, np.float32(0.5),
     np.int64(2), 3]))


def choices(valid):
    return st.sampled_from(list(valid) * 4 + ["bogus", None, 1, valid[0].upper()])


@st.composite
def graphs(draw) -> Graph:
    """Valid graphs: random kNN lists (with missing entries and self matches) as CSR,
    sometimes saved and memory-mapped back (misaligned arrays)."""
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    I, D = random_knn(rng, n, draw(st.integers(1, 6)), draw(st.sampled_from([0.0, 0.3, 1.0])))
    with np.errstate(over="ignore"):
        D = np.minimum(D * draw(st.sampled_from([0.0, 1e-40, 1.0, 1e3, 3e38])), 3e38)
    g = Graph(*reference.build_csr(I, D.astype(np.float32), draw(st.booleans())))
    if draw(st.booleans()):
        path = Path(_TMP.name) / f"g{next(_files)}.npz"
        g.save(path)
        g = Graph.load(path, mmap=True)
    return g


# ---------------------------------------------------------------- forward / select

@fuzz(60)
@given(st.data())
def test_forward(data):
    g = data.draw(graphs())
    obj, s = data.draw(caller_arrays(data.draw(shapes(g.n))))
    gamma_f, mode = data.draw(REALS), data.draw(choices(("sum", "product")))
    backend = data.draw(BACKENDS)
    bad = {name for name, ok in [("scores", scores_ok(s, g.n)), ("gamma_f", real_ok(gamma_f)),
                                 ("mode", mode in ("sum", "product")),
                                 ("backend", backend != "fortran")] if not ok}
    want = None
    if not bad:
        with np.errstate(all="ignore"):
            want = reference.forward(g.indptr, g.indices, g.distances, s.astype(np.float64),
                                     float(gamma_f), mode == "product")
        if not np.isfinite(want).all():
            bad = {"scores"}  # overflow: "scores too large"
    got = run(lambda: d2fast.forward(g, obj, gamma_f=gamma_f, mode=mode, backend=backend),
              bad, obj)
    if got is not None:
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


@fuzz(60)
@given(st.data())
def test_select(data):
    g = data.draw(graphs())
    obj, s = data.draw(caller_arrays(data.draw(shapes(g.n))))
    n_keep = data.draw(st.one_of(st.integers(-1, g.n + 1), st.sampled_from(
        [True, 2.0, np.int32(1), None, "3", 2**70])))
    gamma_r, reverse = data.draw(REALS), data.draw(choices(("weighted", "absolute")))
    algorithm = data.draw(choices(("auto", "heap", "rounds")))
    backend = data.draw(BACKENDS)
    bad = {name for name, ok in [
        ("scores", scores_ok(s, g.n)), ("n_keep", int_ok(n_keep, 0, g.n)),
        ("gamma_r", real_ok(gamma_r)), ("reverse", reverse in ("weighted", "absolute")),
        ("algorithm", algorithm in ("auto", "heap", "rounds") and not (
            algorithm == "rounds" and backend == "numpy")),
        ("backend", backend != "fortran")] if not ok}
    if not ({"scores", "n_keep"} & bad) and \
            float(np.abs(s.astype(np.float64)).max()) * (int(n_keep) + 1) > _SELECT_LIMIT:
        bad.add("scores")  # "scores too large"
    got = run(lambda: d2fast.select(g, obj, n_keep, gamma_r=gamma_r, reverse=reverse,
                                    algorithm=algorithm, backend=backend), bad, obj)
    if got is None:
        return
    s64, absolute = s.astype(np.float64), reverse == "absolute"
    assert got.dtype == np.int64 and got.shape == (int(n_keep),)
    if algorithm == "rounds":  # the same greedy up to the summation order within a round
        assert_greedy_replay(g, s64, got, float(gamma_r), absolute)
    else:
        np.testing.assert_array_equal(got, reference.select_heap(
            g.indptr, g.indices, g.distances, s64, int(n_keep), float(gamma_r), absolute))


# ---------------------------------------------------------------- Graph constructors

def csr_problems(indptr: np.ndarray, indices: np.ndarray, distances: np.ndarray) -> set:
    """Names of the arrays that keep (indptr, indices, distances) from being a valid graph."""
    bad = set()
    for name, a, integer in (("indptr", indptr, True), ("indices", indices, True),
                             ("distances", distances, False)):
        if not is_real(a) and not (integer and a.size == 0 and a.ndim == 1):
            bad.add(name)
        elif a.ndim != 1 or (integer and a.size and a.dtype.kind not in "iu"):
            bad.add(name)
        elif integer and a.size and int(a.max()) > 2**63 - 1:
            bad.add(name)
    if bad:
        return bad
    ptr, idx = [int(v) for v in indptr], [int(v) for v in indices]
    n, nnz = len(ptr) - 1, len(idx)
    if n < 1:
        return {"indptr"}
    if ptr[0] != 0 or ptr[-1] != nnz:
        bad |= {"indptr", "indices"}
    if distances.size != nnz:
        bad |= {"distances", "indices"}
    if any(b < a for a, b in zip(ptr, ptr[1:])):
        bad.add("indptr")
    if any(not 0 <= j < n for j in idx):
        bad.add("indices")
    if bad:
        return bad
    for i in range(n):
        row = idx[ptr[i]:ptr[i + 1]]
        if i in row or any(b <= a for a, b in zip(row, row[1:])):
            bad.add("indices")
    with np.errstate(all="ignore"):
        d32 = distances.astype(np.float32)
    if not (np.isfinite(d32).all() and (d32 >= 0).all()):
        bad.add("distances")
    return bad


MUTATIONS = ("none", "none", "ptr_swap", "ptr_len", "ptr_huge", "ptr_uint64_wrap", "idx_range",
             "idx_negative", "idx_self", "idx_unsorted", "idx_drop", "dist_negative",
             "dist_nan", "dist_huge", "dist_len", "idx_float", "ptr_empty")


def mutate(rng, ptr, idx, dist, how: str):
    """One malformation of a valid CSR (int64, int64, float64 arrays; returns new arrays)."""
    ptr, idx, dist = ptr.copy(), idx.copy(), dist.copy()
    n, nnz = ptr.size - 1, idx.size
    pick = int(rng.integers(0, max(nnz, 1)))
    if how == "ptr_swap" and n >= 2:
        i = int(rng.integers(1, n))
        ptr[i] = ptr[-1] + 1
    elif how == "ptr_len":
        ptr = ptr[:-1] if rng.random() < 0.5 else np.append(ptr, ptr[-1:])
    elif how == "ptr_huge" and n >= 2:
        ptr[int(rng.integers(1, n))] = rng.choice([2**31, 2**62, 2**63 - 1])
    elif how == "ptr_uint64_wrap" and n >= 2:
        ptr = ptr.astype(np.uint64)
        ptr[int(rng.integers(1, n))] = np.uint64(2**64 - 1)
    elif how == "idx_range" and nnz:
        idx[pick] = n + int(rng.integers(0, 2**40))
    elif how == "idx_negative" and nnz:
        idx[pick] = -int(rng.integers(1, 3))
    elif how == "idx_self" and nnz:
        row = int(np.searchsorted(ptr, pick, "right")) - 1
        idx[pick] = row
    elif how == "idx_unsorted" and nnz >= 2:
        idx[:] = idx[::-1]
    elif how == "idx_drop" and nnz:
        idx = np.delete(idx, pick)
    elif how == "dist_negative" and nnz:
        dist[pick] = -rng.random() - 1e-30
    elif how == "dist_nan" and nnz:
        dist[pick] = rng.choice([np.nan, np.inf, -np.inf])
    elif how == "dist_huge" and nnz:
        dist[pick] = 1e300  # finite in float64, inf in float32
    elif how == "dist_len":
        dist = np.append(dist, 1.0)
    elif how == "idx_float":
        idx = idx.astype(np.float64)
    elif how == "ptr_empty":
        ptr = np.zeros(0, dtype=np.int64)
    return ptr, idx, dist


INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@fuzz(120)
@given(st.data())
def test_graph_from_csr_arrays(data):
    n = data.draw(st.integers(1, 30))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    I, D = random_knn(rng, n, data.draw(st.integers(1, 5)))
    ptr, idx, dist = reference.build_csr(I, D, data.draw(st.booleans()))
    ptr, idx, dist = ptr, idx.astype(np.int64), dist.astype(np.float64)
    for how in data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=2)):
        ptr, idx, dist = mutate(rng, ptr, idx, dist, how)
    with np.errstate(all="ignore"):  # dtype mixes: casts wrap like a caller's would
        if ptr.dtype != np.uint64:
            ptr = ptr.astype(data.draw(st.sampled_from(INT_DTYPES[2:] + ("int64",) * 4)))
        if idx.dtype.kind == "i":
            idx = idx.astype(data.draw(st.sampled_from(INT_DTYPES + ("int32",) * 4)))
        dist = dist.astype(data.draw(st.sampled_from(
            ("float16", "float32", "float64", "longdouble", "int64", "bool", "complex128"))))
    objs = [present(a, data.draw(st.sampled_from(LAYOUTS))) for a in (ptr, idx, dist)]
    arrays = [seen(o) for o in objs]
    bad = csr_problems(*arrays)
    g = run(lambda: Graph(*objs), bad, *objs)
    if g is None:
        return
    assert_csr_invariants(g)
    np.testing.assert_array_equal(g.indptr, arrays[0].astype(np.int64))
    np.testing.assert_array_equal(g.indices, arrays[1].astype(np.int64))
    np.testing.assert_array_equal(g.distances, arrays[2].astype(np.float32))
    s = rng.normal(size=g.n)
    np.testing.assert_array_equal(d2fast.forward(g, s, backend="cpp"), reference.forward(
        g.indptr, g.indices, g.distances, s, 1.0, False))
    np.testing.assert_array_equal(d2fast.select(g, s, g.n, backend="cpp"), reference.select_heap(
        g.indptr, g.indices, g.distances, s, g.n, 0.1, False))


def expected_from_knn(I: np.ndarray, D: np.ndarray, union: bool, squared: bool, drop_self):
    """{(i, j): float32 distance} of Graph.from_knn, by its documented rules, in loops."""
    n, c = I.shape
    D = D.astype(np.float64)
    valid = I >= 0
    if squared:
        top = max(float(D[valid].max(initial=0.0)), 0.0)
        D = np.where(valid & (D < 0) & (D >= -1e-6 * top), 0.0, D)
        D = np.sqrt(np.where(valid, D, 0.0))
    if drop_self == "auto":
        drop_self = bool((I == np.arange(n)[:, None]).any())
    edges: dict = {}
    for i in range(n):
        cols = list(range(c))
        if drop_self:
            own = [t for t in cols if I[i, t] == i]
            cols.remove(own[0] if own else c - 1)
        for t in cols:
            j = int(I[i, t])
            if j < 0 or j == i:
                continue
            d = np.float32(D[i, t])
            for key in ([(i, j), (j, i)] if union else [(i, j)]):
                edges[key] = min(edges.get(key, d), d)
    return edges


def graph_edges(g: Graph) -> dict:
    rows = np.repeat(np.arange(g.n), g.degrees())
    return {(int(i), int(j)): d for i, j, d in zip(rows, g.indices, g.distances)}


@fuzz(100)
@given(st.data())
def test_graph_from_knn(data):
    n, c = data.draw(st.integers(0, 25)), data.draw(st.integers(0, 6))
    shape = data.draw(st.sampled_from([(n, c)] * 6 + [(n,), (n, c, 1)]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    I = rng.integers(-1, max(n, 1), size=shape)
    if data.draw(st.booleans()) and len(shape) == 2 and c:  # faiss-like: self match first
        I[:, 0] = np.arange(n)
    if I.size and data.draw(st.booleans()):
        I.flat[int(rng.integers(0, I.size))] = data.draw(st.sampled_from([-2, n, 2**40]))
    I = I.astype(data.draw(st.sampled_from(INT_DTYPES[2:] + ("int64",) * 6 + ("float64",))))
    D_shape = data.draw(st.sampled_from([shape] * 6 + [(n, c + 1), (c, n)]))
    D = data.draw(values(D_shape, data.draw(st.sampled_from(
        ("float32", "float64", "float16", "longdouble", "int32", "bool")))))
    if D.dtype.kind == "f" and data.draw(st.booleans()):
        D = np.abs(D)
    Iobj = present(I, data.draw(st.sampled_from(LAYOUTS)))
    Dobj = present(D, data.draw(st.sampled_from(LAYOUTS)))
    Ia, Da = seen(Iobj), seen(Dobj)
    graph = data.draw(choices(("union", "directed")))
    squared = data.draw(st.booleans())
    drop_self = data.draw(st.sampled_from(["auto", "auto", True, False, 1, "yes"]))
    backend = data.draw(BACKENDS)

    bad = set()
    if graph not in ("union", "directed"):
        bad.add("graph")
    if backend == "fortran":
        bad.add("backend")
    if not (drop_self is True or drop_self is False or drop_self == "auto"):
        bad.add("drop_self")
    if not is_real(Ia) or Ia.dtype.kind not in "iu" or Ia.ndim != 2 or 0 in Ia.shape:
        bad.add("I")
    if not is_real(Da) or Da.shape != Ia.shape:
        bad.add("D")
    if not {"I", "D"} & bad:
        n, c = Ia.shape
        if Ia.min() < -1 or Ia.max() >= n:
            bad.add("I")
        else:
            valid = Ia >= 0
            with np.errstate(all="ignore"):
                D64 = Da.astype(np.float64)
            top = max(float(D64[valid].max(initial=0.0)), 0.0) if np.isfinite(
                D64[valid]).all() else 0.0
            low = -1e-6 * top if squared else 0.0
            if not np.isfinite(D64[valid]).all() or (D64[valid] < low).any():
                bad.add("D")
            elif ((np.sqrt(np.maximum(D64[valid], 0)) if squared else D64[valid]) >
                  np.finfo(np.float32).max).any():
                bad.add("D")  # finite in float64, inf in float32
            is_self = bool((Ia == np.arange(n)[:, None]).any())
            if (drop_self is True or (drop_self == "auto" and is_self)) and c < 2:
                bad.add("drop_self")
            if drop_self is False and is_self:
                bad |= {"I", "drop_self"}
    g = run(lambda: Graph.from_knn(Iobj, Dobj, graph=graph, squared=squared,
                                   drop_self=drop_self, backend=backend), bad, Iobj, Dobj)
    if g is None:
        return
    assert_csr_invariants(g)
    assert graph_edges(g) == expected_from_knn(Ia, Da, graph == "union", squared, drop_self)


@fuzz(80)
@given(st.data())
def test_graph_from_scipy(data):
    from scipy import sparse

    n = data.draw(st.integers(0, 20))
    m = data.draw(st.sampled_from([n] * 5 + [n + 1]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    nnz = data.draw(st.integers(0, 60)) if n and m else 0
    row, col = rng.integers(0, max(n, 1), nnz), rng.integers(0, max(m, 1), nnz)
    vals = data.draw(values((nnz,), data.draw(st.sampled_from(
        ("float64", "float32", "int64", "uint8", "bool", "complex128")))))
    if vals.dtype.kind == "f" and data.draw(st.booleans()):
        vals = np.abs(vals)
    mat = sparse.coo_matrix((vals, (row, col)), shape=(n, m))
    mat = getattr(mat, data.draw(st.sampled_from(["tocoo", "tocsr", "tocsc", "todok"])))()
    obj = mat if data.draw(st.integers(0, 9)) else mat.toarray()
    bad = set()
    if not sparse.issparse(obj) or n != m or n < 1:
        bad.add("csr")
    else:
        coo = obj.tocoo()
        d = coo.data
        with np.errstate(all="ignore"):
            if not is_real(d) or not (np.isfinite(d.astype(np.float64)).all()
                                      and (d >= 0).all()
                                      and np.isfinite(d.astype(np.float32)).all()):
                bad.add("csr")
    before = snapshot(obj.toarray() if sparse.issparse(obj) else obj)
    g = run(lambda: Graph.from_scipy(obj), bad)
    np.testing.assert_array_equal(obj.toarray() if sparse.issparse(obj) else obj, before)
    if g is None:
        return
    assert_csr_invariants(g)
    want: dict = {}
    for i, j, d in zip(coo.row, coo.col, coo.data.astype(np.float32)):
        if i != j:
            want[(int(i), int(j))] = min(want.get((int(i), int(j)), d), d)
    assert graph_edges(g) == want


# ---------------------------------------------------------------- knn_graph / prune

@fuzz(50)
@given(st.data())
def test_knn_graph(data):
    n = data.draw(st.integers(0, 30))
    obj, emb = data.draw(caller_arrays(data.draw(shapes(n, 2))))
    k = data.draw(st.one_of(st.integers(-1, n + 1), st.sampled_from([True, 2.0, None])))
    metric = data.draw(choices(("euclidean", "sqeuclidean", "cosine")))
    graph = data.draw(choices(("union", "directed")))
    knn = data.draw(st.sampled_from(["exact", "exact", "auto", "hnsw", "ivf", "lsh"]))
    backend = data.draw(BACKENDS)
    bad = {name for name, ok in [
        ("emb", emb_ok(emb)), ("metric", metric in ("euclidean", "sqeuclidean", "cosine")),
        ("graph", graph in ("union", "directed")), ("knn", knn != "lsh"),
        ("backend", backend != "fortran")] if not ok}
    if "emb" not in bad and not int_ok(k, 1, emb.shape[0] - 1):
        bad.add("k")
    g = run(lambda: d2fast.knn_graph(obj, k, metric=metric, graph=graph, knn=knn,
                                     backend=backend), bad, obj)
    if g is None:
        return
    assert_csr_invariants(g)
    if knn in ("hnsw", "ivf"):  # approximate: at most k out-neighbours per row
        return
    idx, dist = brute_knn(emb.astype(np.float64), int(k), metric)
    want = {}
    for i in range(emb.shape[0]):
        for j, d in zip(idx[i], dist[i]):
            want[(i, int(j))] = d
            if graph == "union":
                want.setdefault((int(j), i), d)
    got = graph_edges(g)
    assert got.keys() == want.keys()
    keys = sorted(want)
    np.testing.assert_allclose([got[e] for e in keys], [want[e] for e in keys], rtol=1e-5,
                               atol=1e-6)


@fuzz(40)
@given(st.data())
def test_prune(data):
    n = data.draw(st.integers(0, 30))
    obj, emb = data.draw(caller_arrays(data.draw(shapes(n, 2)), finite=True))
    sobj, s = data.draw(caller_arrays(data.draw(shapes(n)), dtypes=REAL))
    k = data.draw(st.one_of(st.integers(0, 6), st.sampled_from([n, 2.0])))
    n_keep = data.draw(st.one_of(st.none(), st.integers(-1, n + 1)))
    rate = data.draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0, -0.1, math.nan, "0.5"]))
    mode = data.draw(choices(("sum", "product")))
    reverse = data.draw(choices(("weighted", "absolute")))
    gamma_f, gamma_r = data.draw(REALS), data.draw(REALS)
    backend = data.draw(BACKENDS)
    bad = {name for name, ok in [
        ("emb", emb_ok(emb)), ("mode", mode in ("sum", "product")),
        ("reverse", reverse in ("weighted", "absolute")), ("gamma_f", real_ok(gamma_f)),
        ("gamma_r", real_ok(gamma_r)), ("backend", backend != "fortran")] if not ok}
    rows = emb.shape[0] if emb.ndim == 2 else -1
    if "emb" not in bad:
        if not scores_ok(s, rows):
            bad.add("scores")
        if not int_ok(k, 1, rows - 1):
            bad.add("k")
        if n_keep is not None and not int_ok(n_keep, 0, rows):
            bad.add("n_keep")
        if n_keep is None and not (real_ok(rate) and rate < 1):
            bad.add("rate")
    keep = None
    if not bad:
        keep = n_keep if n_keep is not None else int((1 - __import__("fractions").Fraction(
            repr(rate))) * rows)
        g = d2fast.knn_graph(emb.astype(np.float64), int(k))
        with np.errstate(all="ignore"):
            passed = reference.forward(g.indptr, g.indices, g.distances, s.astype(np.float64),
                                       float(gamma_f), mode == "product")
        if not np.isfinite(passed).all() or np.abs(passed).max() * (keep + 1) > _SELECT_LIMIT:
            bad.add("scores")
    # hard_prune=0.0: the expected picks below are pure D2's (the default 'auto' drops the
    # hardest rows first at rates above 0.5; its rule is tested in test_budgets)
    got = run(lambda: d2fast.prune(obj, sobj, k, rate, n_keep=n_keep, gamma_f=gamma_f,
                                   gamma_r=gamma_r, mode=mode, reverse=reverse,
                                   hard_prune=0.0, backend=backend), bad, obj, sobj)
    if got is None:
        return
    assert got.dtype == np.int64 and got.shape == (keep,)
    # prune breaks ties by the row-id hash (d2fast._ties): where the forwarded scores tie,
    # the reference runs on the graph renumbered in hash order
    order = tie_order(np.arange(rows)) if np.unique(passed).size < passed.size else \
        np.arange(rows)
    h = g.permuted(order)
    np.testing.assert_array_equal(got, order[reference.select_heap(
        h.indptr, h.indices, h.distances, passed[order], keep, float(gamma_r),
        reverse == "absolute")])


# ---------------------------------------------------------------- atheris harness

HARNESS = Path(__file__).with_name("fuzz_csr_atheris.py")


def test_atheris_harness_runs():
    """The atheris harness for the CSR validators: a bounded run must find nothing."""
    pytest.importorskip("atheris", reason="atheris is the optional 'fuzz' extra")
    runs = max(2000, EXAMPLES * 20)
    out = subprocess.run([sys.executable, str(HARNESS), f"-runs={runs}", "-seed=1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"Done {runs} runs" in out.stderr, out.stderr[-3000:]
