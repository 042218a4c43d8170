"""atheris (libFuzzer) harness for the CSR validators: ``Graph(indptr, indices, distances)``
and ``Graph.from_knn(I, D)`` built from fuzzer bytes.

Only ValueError/TypeError may escape them. A graph they accept must satisfy the CSR
invariants, and forward/select on it (cpp backend, both select algorithms) must equal the
NumPy reference. Any other exception, a failed check or a crash is a finding.

    python tests/fuzz_csr_atheris.py -runs=2000            # bounded (tests/test_fuzz.py)
    python tests/fuzz_csr_atheris.py -max_total_time=300   # a long run
"""
from __future__ import annotations

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    import d2fast
    from d2fast import Graph

from test_graph import assert_csr_invariants  # noqa: E402  (tests/ is sys.path[0])

from d2fast._backends import reference  # noqa: E402

INT_DTYPES = [np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16",
                                    "uint32", "uint64", "float64", "bool")]
REAL_DTYPES = [np.dtype(t) for t in ("float16", "float32", "float64", "int32", "int64",
                                     "uint8", "complex64", "bool")]


def raw_array(fdp: atheris.FuzzedDataProvider, dtype: np.dtype, length: int) -> np.ndarray:
    """``length`` values of ``dtype`` from raw fuzzer bytes (any bit pattern)."""
    raw = fdp.ConsumeBytes(length * dtype.itemsize)
    raw += b"\0" * (length * dtype.itemsize - len(raw))
    return np.frombuffer(raw, dtype=dtype).copy()


def int_array(fdp: atheris.FuzzedDataProvider, length: int, high: int) -> np.ndarray:
    """Ids in about [-1, high] in some integer (or wrong) dtype, or raw bits."""
    dtype = INT_DTYPES[fdp.ConsumeIntInRange(0, len(INT_DTYPES) - 1)]
    if fdp.ConsumeIntInRange(0, 3) == 0:
        return raw_array(fdp, dtype, length)
    vals = np.array(fdp.ConsumeIntListInRange(length, -1, high), dtype=np.int64)
    with np.errstate(all="ignore"):
        return vals.astype(dtype)


def csr_arrays(fdp: atheris.FuzzedDataProvider):
    """A valid CSR graph (sorted rows of other nodes) with zero to two corruptions, or
    three unrelated arrays."""
    n = fdp.ConsumeIntInRange(0, 24)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        nnz = fdp.ConsumeIntInRange(0, 64)
        return (int_array(fdp, n + 1, 64), int_array(fdp, nnz, n),
                real_array(fdp, nnz + fdp.ConsumeIntInRange(-1, 1)))
    rows = [sorted({j for j in fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 6), 0,
                                                         max(n - 1, 0)) if j != i})
            for i in range(n)]
    indptr = np.cumsum([0] + [len(r) for r in rows], dtype=np.int64)
    indices = np.array([j for r in rows for j in r], dtype=np.int64)
    distances = real_array(fdp, indices.size)
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        where = fdp.ConsumeIntInRange(0, max(indices.size - 1, 0))
        how = fdp.ConsumeIntInRange(0, 5)
        if how == 0 and indptr.size:
            indptr[fdp.ConsumeIntInRange(0, indptr.size - 1)] = fdp.ConsumeInt(8)
        elif how == 1 and indices.size:
            indices[where] = fdp.ConsumeInt(8)
        elif how == 2 and indices.size:
            indices[where] = int(np.searchsorted(indptr, where, "right")) - 1  # self loop
        elif how == 3:
            indices = indices[::-1].copy()
        elif how == 4:
            indptr = indptr[:-1]
        elif how == 5 and distances.size:
            with np.errstate(all="ignore"):
                distances[where] = -distances[where] - 1
    dtypes = [INT_DTYPES[fdp.ConsumeIntInRange(0, len(INT_DTYPES) - 1)] for _ in range(2)]
    with np.errstate(all="ignore"):
        return indptr.astype(dtypes[0]), indices.astype(dtypes[1]), distances


def real_array(fdp: atheris.FuzzedDataProvider, length: int) -> np.ndarray:
    dtype = REAL_DTYPES[fdp.ConsumeIntInRange(0, len(REAL_DTYPES) - 1)]
    if fdp.ConsumeIntInRange(0, 3) == 0:
        return raw_array(fdp, dtype, length)  # NaN, inf, denormals, huge values
    with np.errstate(all="ignore"):
        return np.array([fdp.ConsumeProbability() * 4 for _ in range(length)]).astype(dtype)


def check_accepted(g: Graph, fdp: atheris.FuzzedDataProvider) -> None:
    assert_csr_invariants(g)
    s = np.array([fdp.ConsumeFloatInRange(-3.0, 3.0) for _ in range(g.n)])
    passed = d2fast.forward(g, s, backend="cpp")
    np.testing.assert_array_equal(passed, reference.forward(
        g.indptr, g.indices, g.distances, s, 1.0, False))
    want = reference.select_heap(g.indptr, g.indices, g.distances, passed, g.n, 0.1, False)
    np.testing.assert_array_equal(d2fast.select(g, passed, g.n, backend="cpp"), want)
    rounds = d2fast.select(g, passed, g.n, algorithm="rounds", backend="cpp")
    assert sorted(rounds.tolist()) == list(range(g.n))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    try:
        if fdp.ConsumeBool():
            g = Graph(*csr_arrays(fdp))
        else:
            n, c = fdp.ConsumeIntInRange(0, 16), fdp.ConsumeIntInRange(0, 6)
            I = int_array(fdp, n * c, n).reshape(n, c)
            D = real_array(fdp, n * c).reshape(n, c)
            drop_self = ["auto", True, False][fdp.ConsumeIntInRange(0, 2)]
            g = Graph.from_knn(I, D, graph=["union", "directed"][fdp.ConsumeIntInRange(0, 1)],
                               squared=fdp.ConsumeBool(), drop_self=drop_self, backend="cpp")
    except (ValueError, TypeError):
        return
    check_accepted(g, fdp)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
