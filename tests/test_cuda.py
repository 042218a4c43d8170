"""The CUDA backend (d2fast._cuda, csrc/cuda/) and the host/device code it shares.

Three groups:
- build: where nvcc exists, csrc/cuda/kernels.cu must compile and d2fast._cuda must have
  been built (a CUDA build failure only warns at install time; here it fails);
- GPU: the cuda backend against the NumPy reference, skipped with the reason
  ``d2fast.backends_missing()["cuda"]`` where no GPU is usable;
- CPU: the shared per-node bodies of csrc/rounds_body.h (is_local_max, pull_update),
  run by the cpp backend's rounds selection on the cases they decide.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

import d2fast
from d2fast import Graph, _backends

from conftest import assert_greedy_replay, random_graph, random_scores

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"


def find_nvcc() -> str | None:
    """nvcc where setup.py looks for it: PATH, $CUDA_HOME/bin, /usr/local/cuda/bin."""
    for path in (shutil.which("nvcc"),
                 *(os.path.join(os.environ[var], "bin", "nvcc")
                   for var in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(var)),
                 "/usr/local/cuda/bin/nvcc"):
        if path and os.access(path, os.X_OK):
            return path
    return None


NVCC = find_nvcc()
CUDA_WANTED = os.environ.get("D2FAST_CUDA") != "0"


def gpu_reason() -> str:
    return d2fast.backends_missing().get("cuda", "")


needs_gpu = pytest.mark.skipif("cuda" not in d2fast.backends(), reason=gpu_reason())


# ---------------------------------------------------------------- build


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
def test_kernels_cu_compiles(tmp_path):
    """kernels.cu compiles with the flags of setup.py (one architecture, to be quick)."""
    if not (CSRC / "cuda" / "kernels.cu").exists():
        pytest.skip("no source tree here (csrc/cuda/kernels.cu)")
    cmd = [NVCC, "-c", str(CSRC / "cuda" / "kernels.cu"), "-o", str(tmp_path / "kernels.o"),
           "-O3", "--std=c++17", "-arch=sm_80", "--fmad=false", "--expt-relaxed-constexpr",
           "-Xcompiler", "-fPIC,-fvisibility=hidden,-ffp-contract=off", f"-I{CSRC}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout}\n{out.stderr}"
    assert (tmp_path / "kernels.o").stat().st_size > 0


@pytest.mark.skipif(NVCC is None or not CUDA_WANTED,
                    reason="no nvcc here (or D2FAST_CUDA=0): d2fast._cuda is not built")
def test_cuda_module_was_built():
    """With nvcc at build time, setup.py builds d2fast._cuda; it imports without a GPU."""
    from d2fast import _cuda

    count = _cuda.device_count()
    assert isinstance(count, int) and count >= 0
    assert isinstance(_cuda.device_status(), str) and _cuda.device_status()


def test_cuda_listed_only_with_a_gpu(monkeypatch):
    monkeypatch.delenv("D2FAST_BACKEND", raising=False)
    assert _backends.get("auto").NAME != "cuda"  # never chosen by "auto"
    if "cuda" in d2fast.backends():
        assert d2fast.backends()[-1] == "numpy"
        assert _backends.get("cuda").NAME == "cuda"
    else:
        reason = d2fast.backends_missing()["cuda"]
        assert reason
        with pytest.raises(ValueError, match="backend='cuda' is not available here"):
            d2fast.select(random_graph(np.random.default_rng(0), 10, 2), np.ones(10), 3,
                          backend="cuda")


def _cuda_module():
    try:
        from d2fast import _cuda
    except ImportError as exc:
        pytest.skip(f"d2fast._cuda is not built: {exc}")
    return _cuda


def test_bindings_check_before_any_cuda_call():
    """Dtype and size errors are raised by the binding, GPU or not."""
    _cuda = _cuda_module()
    indptr, indices = np.array([0, 1, 2]), np.array([1, 0], dtype=np.int32)
    dist, s = np.ones(2, dtype=np.float32), np.ones(2)
    with pytest.raises(TypeError, match="indices must be a C-contiguous array of dtype int32"):
        _cuda.forward(indptr, indices.astype(np.int64), dist, s, 1.0, False)
    with pytest.raises(TypeError, match="scores must be a C-contiguous array of dtype float64"):
        _cuda.select_rounds(indptr, indices, dist, s[::-1], 1, 0.1, False)
    with pytest.raises(ValueError, match="n_keep must satisfy"):
        _cuda.select_rounds(indptr, indices, dist, s, 3, 0.1, False)
    with pytest.raises(ValueError, match="do not form a CSR graph"):
        _cuda.forward(np.array([0, 1, 3]), indices, dist, s, 1.0, False)
    # nothing to do: no CUDA call at all
    assert _cuda.forward(np.array([0]), indices[:0], dist[:0], s[:0], 1.0, False).shape == (0,)
    assert _cuda.select_rounds(indptr, indices, dist, s, 0, 0.1, False).shape == (0,)


def test_cuda_errors_become_exceptions():
    """Without a GPU every kernel call fails in its first CUDA call: a RuntimeError that
    names the call and gives CUDA's message, not a crash."""
    _cuda = _cuda_module()
    if _cuda.device_count() > 0:
        pytest.skip("a GPU is usable here")
    indptr, indices = np.array([0, 1, 2]), np.array([1, 0], dtype=np.int32)
    dist, s = np.ones(2, dtype=np.float32), np.ones(2)
    with pytest.raises(RuntimeError, match=r"d2fast._cuda: cudaMalloc of \d+ bytes failed: .*\(cuda"):
        _cuda.forward(indptr, indices, dist, s, 1.0, False)
    with pytest.raises(RuntimeError, match=r"d2fast._cuda: cudaMalloc .*failed"):
        _cuda.select_rounds(indptr, indices, dist, s, 2, 0.1, False)
    assert _cuda.device_count() == 0  # and the module still answers


# ---------------------------------------------------------------- GPU

GPU_CASES = [(n, c, sym, kind)
             for n in (2, 7, 333, 3000)
             for c in (1, 4, 10)
             for sym in (True, False)
             for kind in ("uniform", "normal", "negative")]


@needs_gpu
@pytest.mark.parametrize("n,c,sym,kind", GPU_CASES)
def test_gpu_matches_reference(n, c, sym, kind):
    rng = np.random.default_rng(zlib.crc32(repr(("cuda", n, c, sym, kind)).encode()))
    graph = random_graph(rng, n, c, sym)
    scores = random_scores(rng, n, kind)
    for mode in ("sum", "product"):
        ref = d2fast.forward(graph, scores, mode=mode, backend="numpy")
        got = d2fast.forward(graph, scores, mode=mode, backend="cuda")
        assert got.dtype == np.float64 and got.shape == (n,)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-300)  # GPU exp: 1 ulp
        # generic floats (as in test_passing's rounds test), so neither the GPU's exp nor
        # the summation order of a round's updates can flip a pick
        ref = ref + (kind == "normal") * 0.5
        for reverse in ("weighted", "absolute"):
            for n_keep in sorted({0, 1, n // 3, n}):
                want = d2fast.select(graph, ref, n_keep, reverse=reverse, backend="numpy")
                for algorithm in ("heap", "rounds"):
                    got = d2fast.select(graph, ref, n_keep, reverse=reverse,
                                        algorithm=algorithm, backend="cuda")
                    assert got.dtype == np.int64 and got.shape == (n_keep,)
                    np.testing.assert_array_equal(got, want)


@needs_gpu
@pytest.mark.parametrize("seed", range(8))
def test_gpu_exact_ties(seed):
    """Zero distances and integer scores: exact arithmetic, so bit for bit the reference,
    ties to the lowest index, through the negative phase."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 600))
    I = rng.integers(-1, n, size=(n, 4))
    for graph_kind in ("union", "directed"):
        graph = Graph.from_knn(I, np.zeros(I.shape), graph=graph_kind)
        scores = rng.integers(-3, 6, size=n).astype(float)
        for mode in ("sum", "product"):
            passed = d2fast.forward(graph, scores, mode=mode, backend="numpy")
            np.testing.assert_array_equal(d2fast.forward(graph, scores, mode=mode,
                                                         backend="cuda"), passed)
            for reverse in ("weighted", "absolute"):
                want = d2fast.select(graph, passed, n, reverse=reverse, backend="numpy")
                for n_keep in sorted({1, n // 3, n // 2, n}):  # the stop rule meets ties
                    got = d2fast.select(graph, passed, n_keep, reverse=reverse,
                                        backend="cuda")
                    np.testing.assert_array_equal(got, want[:n_keep])


@needs_gpu
def test_gpu_large_knn_graph_is_greedy():
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(20000, 8)).astype(np.float32)
    for graph_kind in ("union", "directed"):
        graph = d2fast.knn_graph(emb, 5, graph=graph_kind)
        passed = d2fast.forward(graph, rng.random(20000) - 0.3, backend="cuda")
        picks = d2fast.select(graph, passed, 20000, backend="cuda")
        np.testing.assert_array_equal(
            picks, d2fast.select(graph, passed, 20000, algorithm="rounds", backend="cpp"))
        assert_greedy_replay(graph, passed, picks[:2000], 0.1, False)


@needs_gpu
def test_gpu_takes_torch_tensors():
    torch = pytest.importorskip("torch")
    device = "cuda" if torch.cuda.is_available() else "cpu"  # torch may be a CPU build
    kern = _backends.get("cuda")
    graph = random_graph(np.random.default_rng(1), 500, 5)
    scores = np.random.default_rng(2).random(500)
    arrays = (graph.indptr, graph.indices, graph.distances, scores)
    tensors = [torch.from_numpy(a.copy()).to(device) for a in arrays]
    np.testing.assert_array_equal(kern.forward(*tensors, 1.0, False),
                                  kern.forward(*arrays, 1.0, False))
    np.testing.assert_array_equal(kern.select_rounds(*tensors, 100, 0.1, False),
                                  kern.select_rounds(*arrays, 100, 0.1, False))


# ---------------------------------------------------------------- CPU: rounds_body.h


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="no C++ compiler")
def test_rounds_body_is_plain_host_cpp(tmp_path):
    """Without nvcc, D2_HD is plain inline: the header compiles as host C++ on its own."""
    if not (CSRC / "rounds_body.h").exists():
        pytest.skip("no source tree here (csrc/rounds_body.h)")
    cxx = shutil.which("c++") or shutil.which("g++")
    src = tmp_path / "rounds_body_check.cpp"
    src.write_text('#include "rounds_body.h"\n'
                   "static_assert(sizeof(d2::idx_t) == 8, \"\");\n"
                   "int main() { return 0; }\n")
    out = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                          f"-I{CSRC}", str(src)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_cpu_rounds_calls_the_shared_bodies():
    """The cpp backend's rounds run rounds_body.h, so the CPU tests below exercise the
    code the GPU runs."""
    text = (CSRC / "select_rounds.h").read_text() if CSRC.exists() else ""
    if not text:
        pytest.skip("no source tree here (csrc/select_rounds.h)")
    if "rounds_body.h" not in text:
        pytest.skip("csrc/select_rounds.h does not call rounds_body.h yet")
    assert "is_local_max(" in text and "pull_update(" in text


def _rounds(graph, scores, n_keep, reverse="weighted"):
    return d2fast.select(graph, np.asarray(scores, dtype=float), n_keep, reverse=reverse,
                         algorithm="rounds", backend="cpp")


def _reference(graph, scores, n_keep, reverse="weighted"):
    return d2fast.select(graph, np.asarray(scores, dtype=float), n_keep, reverse=reverse,
                         backend="numpy")


def _directed(edges, n, d=1.0):
    """A directed graph from (i, j) edges, all at distance d."""
    I = [[j for (a, j) in edges if a == i] for i in range(n)]
    c = max(1, max(map(len, I)))
    knn = np.array([row + [-1] * (c - len(row)) for row in I])
    return Graph.from_knn(knn, np.full(knn.shape, d), graph="directed", drop_self=False)


@pytest.mark.parametrize("reverse", ["weighted", "absolute"])
def test_local_max_looks_at_in_neighbours(reverse):
    """is_local_max on a directed graph: node 0's only larger neighbour points at it
    (1 -> 0), so 0 is not a local maximum although its out-row is empty. Picked early, 0
    would keep its score 1 and come before the isolated node 2 (0.5); in truth node 1's
    pick lowers it below 0 first."""
    graph = _directed([(1, 0)], 3)
    np.testing.assert_array_equal(_rounds(graph, [1.0, 2.0, 0.5], 3, reverse), [1, 2, 0])
    for scores in ([1.0, 2.0, 0.5], [2.0, 1.0, 0.5], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]):
        want = _reference(graph, scores, 3, reverse)
        np.testing.assert_array_equal(_rounds(graph, scores, 3, reverse), want)


@pytest.mark.parametrize("reverse", ["weighted", "absolute"])
def test_local_max_ties_go_to_the_lower_index(reverse):
    """Equal scores on a chain: only the lowest index of a tied run is a local maximum,
    and the sequential order follows the ids."""
    n = 9
    edges = [(i, i + 1) for i in range(n - 1)] + [(i + 1, i) for i in range(n - 1)]
    graph = _directed(edges, n, d=0.0)
    scores = np.ones(n)
    want = _reference(graph, scores, n, reverse)
    np.testing.assert_array_equal(_rounds(graph, scores, n, reverse), want)
    assert want[0] == 0


def test_pull_update_sums_every_pick_of_a_round():
    """Two picks of one round lower their common neighbour: node 2 pulls both updates."""
    # 0 -> 2 (d=1), 1 -> 2 (d=2), directed; 0 and 1 are local maxima in round 0
    graph = Graph.from_knn(np.array([[2], [2], [-1]]), np.array([[1.0], [2.0], [0.0]]),
                           graph="directed", drop_self=False)
    scores = [10.0, 6.0, 5.0]
    for reverse in ("weighted", "absolute"):
        np.testing.assert_array_equal(_rounds(graph, scores, 3, reverse),
                                      _reference(graph, scores, 3, reverse))
    # with the updates 2 falls below 0 (absolute: 5 - 10 - 6) and the heap finishes
    np.testing.assert_array_equal(_rounds(graph, scores, 3, "absolute"), [0, 1, 2])


@pytest.mark.parametrize("seed", range(12))
def test_rounds_bodies_on_random_graphs(seed):
    """Random directed and union graphs with ties (integer scores, zero distances: exact)
    and generic floats: the cpp rounds make the reference's picks."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 300))
    I = rng.integers(-1, n, size=(n, 3))
    for graph_kind in ("union", "directed"):
        graph = Graph.from_knn(I, np.zeros(I.shape), graph=graph_kind)
        scores = rng.integers(-1, 5, size=n).astype(float)
        for reverse in ("weighted", "absolute"):
            want = _reference(graph, scores, n, reverse)
            for n_keep in sorted({1, n // 3, n // 2, n}):
                np.testing.assert_array_equal(_rounds(graph, scores, n_keep, reverse),
                                              want[:n_keep])
    graph = random_graph(rng, n, 4, symmetric=bool(seed % 2))
    passed = d2fast.forward(graph, random_scores(rng, n, "uniform"))
    for n_keep in (1, n // 2, n):
        np.testing.assert_array_equal(_rounds(graph, passed, n_keep),
                                      _reference(graph, passed, n_keep))
