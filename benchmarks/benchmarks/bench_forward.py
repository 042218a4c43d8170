"""Forward message passing (``d2fast.forward``) on a random union kNN-like graph, k = 5."""
from __future__ import annotations

import d2fast

from .common import (BACKENDS, Benchmark, best_time, random_graph, require_backend, resolve,
                     scores, sizes)

N_SPEEDUP = resolve(reduced=20_000, full=100_000)  # the reference is a Python loop over rows


class Forward(Benchmark):
    """Time and peak memory of one forward pass (``mode='sum'``, ``gamma_f=1``)."""

    params = [BACKENDS, sizes()]
    param_names = ["backend", "n"]

    def setup(self, backend, n):
        require_backend(backend)
        self.graph = random_graph(n)
        self.scores = scores(n)

    def time_forward(self, backend, n):
        d2fast.forward(self.graph, self.scores, backend=backend)

    def peakmem_reference(self, backend, n):
        """Baseline: the process with its inputs, before the call."""

    def peakmem_forward(self, backend, n):
        d2fast.forward(self.graph, self.scores, backend=backend)


class ForwardSpeedup(Benchmark):
    """Speed-up of a backend over the NumPy reference (reference time / backend time),
    both timed in the same process on the same graph (n = 1e5)."""

    params = [BACKENDS]
    param_names = ["backend"]
    unit = "x"

    def setup(self, backend):
        require_backend(backend)
        self.graph = random_graph(N_SPEEDUP)
        self.scores = scores(N_SPEEDUP)

    def track_speedup_forward(self, backend):
        ref = best_time(lambda: d2fast.forward(self.graph, self.scores, backend="numpy"), 1)
        fast = best_time(lambda: d2fast.forward(self.graph, self.scores, backend=backend), 5)
        return ref / fast
