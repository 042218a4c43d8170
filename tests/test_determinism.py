"""Same inputs, same output: across runs, OpenMP thread counts and concurrent Python threads."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import d2fast

CHILD = r"""
import hashlib
import numpy as np, d2fast
rng = np.random.default_rng(0)
n = 120_000  # above the size where the kernels go parallel
I = rng.integers(0, n, size=(n, 5)); I[I == np.arange(n)[:, None]] = -1
g = d2fast.Graph.from_knn(I, rng.random((n, 5)), drop_self=False)
passed = d2fast.forward(g, rng.normal(size=n) + 0.5)
digest = hashlib.sha256(g.indices.tobytes() + passed.tobytes())
for algorithm in ("heap", "rounds"):
    digest.update(d2fast.select(g, passed, n // 2, algorithm=algorithm).tobytes())
print(digest.hexdigest())
"""


def test_thread_counts_give_identical_results():
    digests = set()
    for threads in ("1", "2"):
        env = {"OMP_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads,
               "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                             env=env)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(1)
    emb, scores = rng.normal(size=(3000, 8)), rng.random(3000)
    want = d2fast.prune(emb, scores, rate=0.6)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: d2fast.prune(emb, scores, rate=0.6, backend=b),
                                ["cpp", "numba", "cpp", "numba", "cpp", "cpp"]))
    for got in results:
        np.testing.assert_array_equal(got, want)
