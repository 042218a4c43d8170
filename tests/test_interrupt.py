"""Ctrl-C during a long C++ kernel returns control promptly with KeyboardInterrupt."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

CHILD = r"""
import sys, time
import numpy as np
from d2fast._backends import cpp
n = 3_000_000
rng = np.random.default_rng(0)
I = rng.integers(0, n, size=(n, 5))
D = rng.random((n, 5), dtype=np.float32)
indptr, indices, dist = cpp.build_csr(I, D, True)
s = cpp.forward(indptr, indices, dist, rng.random(n), 1.0, False)
kernel = getattr(cpp, sys.argv[1])
t = time.perf_counter()
kernel(indptr, indices, dist, s, n, 0.1, False)  # warm: how long one full run takes
full = time.perf_counter() - t
print("ready", full, flush=True)
t = time.perf_counter()
try:
    while True:
        kernel(indptr, indices, dist, s, n, 0.1, False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    # the state is intact: a new call still works and agrees with the first one
    again = kernel(indptr, indices, dist, s, 1000, 0.1, False)
    print("ok", len(again), flush=True)
"""


@pytest.mark.parametrize("kernel", ["select_heap", "select_rounds"])
def test_ctrl_c_stops_a_long_selection(kernel):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kernel], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", proc.stderr.read()
        time.sleep(min(0.3, float(line[1]) / 3))  # inside the next run
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"
        waited = time.perf_counter() - sent
        assert proc.stdout.readline().strip() == "ok 1000"
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    print(f"{kernel}: KeyboardInterrupt after {waited:.3f} s")
    assert waited < 1.0, f"KeyboardInterrupt took {waited:.2f} s"
