"""Ctrl-C in every long stage returns control within 0.5 s with KeyboardInterrupt.

Each case runs the stage in a loop in a child process on one thread, sends SIGINT from
the parent once the stage is running and measures the time until the child reports the
KeyboardInterrupt.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

LATENCY = 0.5  # seconds from SIGINT to KeyboardInterrupt

KERNELS = r"""
import sys, time
import numpy as np
from d2fast._backends import cpp
n = 3_000_000
rng = np.random.default_rng(0)
I = rng.integers(0, n, size=(n, 5))
D = rng.random((n, 5), dtype=np.float32)
indptr, indices, dist = cpp.build_csr(I, D, True)
s = cpp.forward(indptr, indices, dist, rng.random(n), 1.0, False)
order = rng.permutation(n)
run = {"select_heap": lambda m: cpp.select_heap(indptr, indices, dist, s, m, 0.1, False),
       "select_rounds": lambda m: cpp.select_rounds(indptr, indices, dist, s, m, 0.1, False),
       "forward": lambda m: cpp.forward(indptr, indices, dist, s, 1.0, False)[:m],
       "build_csr": lambda m: cpp.build_csr(I, D, True)[1][:m],
       "renumber": lambda m: cpp.renumber(indptr, indices, dist, order)[1][:m]}[sys.argv[1]]
first = run(1000)
print("ready", flush=True)
try:
    while True:
        run(n)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    # the state is intact: a new call still works and agrees with an earlier one
    print("ok", np.array_equal(run(1000), first), flush=True)
"""

# 60k x 784 float32 rows, the size of Fashion-MNIST: an exact kNN graph takes minutes on
# one thread. HNSW runs on fewer rows and IVF on 128-d rows, so that their search stage
# starts within seconds. The PCA of knn_params={'pca': ...} is its own case (PCA below).
SEARCHES = r"""
import sys
import numpy as np
from d2fast import knn
method, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
X = np.random.default_rng(0).random((n, d), dtype=np.float32)
print("ready", flush=True)
try:
    while True:
        knn.search(X, 10, cosine=False, method=method, progress=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    ids, _ = knn.search(X[:500], 3, cosine=False, method="exact")
    print("ok", bool((ids >= 0).all()), flush=True)
"""

# the PCA projection of knn_params={'pca': 64}, trained on 65536 rows of 784-d
PCA = r"""
import sys
import numpy as np
from d2fast import _ivf
X = np.random.default_rng(0).random((65536, 784), dtype=np.float32)
first = _ivf._pca(X[:1000], 8)
print("ready", flush=True)
print("PCA training", file=sys.stderr, flush=True)
try:
    while True:
        _ivf._pca(X, 64)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    again = _ivf._pca(X[:1000], 8)
    print("ok", all(np.array_equal(a, b) for a, b in zip(first, again)), flush=True)
"""

EXTRAPOLATION = r"""
import sys
import numpy as np
import d2fast
rng = np.random.default_rng(0)
X = rng.random((20_000, 64), dtype=np.float32)
known = np.arange(0, 20_000, 10)
print("ready", flush=True)
try:
    while True:
        d2fast.extrapolate(X, known, rng.random(known.size), method=sys.argv[1], k=10,
                           progress=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    out = d2fast.extrapolate(X[:500], known[:50], np.ones(50), method="knn", k=3)
    print("ok", bool((out == 1).all()), flush=True)
"""


class Child:
    """A child process whose stdout lines and stderr (progress bars) are read by threads."""

    def __init__(self, script: str, *args: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", script, *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.err = b""
        for target in (self._read_stdout, self._read_stderr):
            threading.Thread(target=target, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.decode().strip())

    def _read_stderr(self) -> None:
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            self.err += chunk

    def line(self, timeout: float = 120) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output after {timeout} s; stderr: "
                                 f"{self.err.decode()[-2000:]}") from None

    def wait_for_stderr(self, text: str, timeout: float = 120) -> None:
        """Wait until ``text`` (a progress bar's stage) shows on stderr."""
        end = time.monotonic() + timeout
        while text.encode() not in self.err:
            assert self.proc.poll() is None, self.err.decode()[-2000:]
            assert time.monotonic() < end, f"no {text!r} after {timeout} s"
            time.sleep(0.01)

    def interrupt_latency(self) -> float:
        """Seconds from SIGINT to the child's "interrupted"; checks it then still works."""
        sent = time.perf_counter()
        self.proc.send_signal(signal.SIGINT)
        line = self.line()
        waited = time.perf_counter() - sent
        assert line == "interrupted", (line, self.err.decode()[-2000:])
        assert self.line() == "ok True", self.err.decode()[-2000:]
        assert self.proc.wait(timeout=60) == 0, self.err.decode()[-2000:]
        return waited

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.mark.parametrize("kernel", ["select_heap", "select_rounds", "forward", "build_csr",
                                    "renumber"])
def test_ctrl_c_stops_a_long_kernel(kernel):
    child = Child(KERNELS, kernel)
    try:
        assert child.line() == "ready", child.err.decode()
        time.sleep(0.3)  # inside one of the next runs
        waited = child.interrupt_latency()
    finally:
        child.kill()
    print(f"{kernel}: KeyboardInterrupt after {waited:.3f} s")
    assert waited < LATENCY, f"KeyboardInterrupt took {waited:.2f} s"


def _latency_in_stage(child: Child, stage: str) -> float:
    """Seconds from SIGINT, sent 0.3 s into `stage` (its progress label), to KeyboardInterrupt."""
    try:
        assert child.line() == "ready", child.err.decode()
        child.wait_for_stderr(stage)
        time.sleep(0.3)
        return child.interrupt_latency()
    finally:
        child.kill()


@pytest.mark.parametrize("method, n, d, stage", [
    ("exact", 60_000, 784, "kNN search"),
    ("hnsw", 8_000, 784, "kNN hnsw: add"), ("hnsw", 8_000, 784, "kNN hnsw: search"),
    ("ivf", 60_000, 128, "kNN ivf: k-means"), ("ivf", 60_000, 128, "kNN ivf: search")])
def test_ctrl_c_stops_a_knn_search(method, n, d, stage):
    waited = _latency_in_stage(Child(SEARCHES, method, str(n), str(d)), stage)
    print(f"{stage} ({n} x {d}, one thread): KeyboardInterrupt after {waited:.3f} s")
    assert waited < LATENCY, f"KeyboardInterrupt took {waited:.2f} s"


def test_ctrl_c_stops_the_pca_of_an_ivf_search():
    waited = _latency_in_stage(Child(PCA), "PCA training")
    print(f"PCA training (65536 x 784, one thread): KeyboardInterrupt after {waited:.3f} s")
    assert waited < LATENCY, f"KeyboardInterrupt took {waited:.2f} s"


@pytest.mark.parametrize("method, stage", [("knn", "kNN search"), ("gnn", "GNN epochs")])
def test_ctrl_c_stops_an_extrapolation(method, stage):
    waited = _latency_in_stage(Child(EXTRAPOLATION, method), stage)
    print(f"extrapolate({method!r}) in {stage!r}: KeyboardInterrupt after {waited:.3f} s")
    assert waited < LATENCY, f"KeyboardInterrupt took {waited:.2f} s"
