"""Greedy selection (``d2fast.select``, lazy max-heap) on a random union kNN-like graph,
k = 5, keeping 30 % of the nodes."""
from __future__ import annotations

import numpy as np

import d2fast

from .common import (BACKENDS, Benchmark, best_time, n_keep, passed_scores, random_graph,
                     require_backend, resolve, scores, sizes)

N_SPEEDUP = resolve(reduced=10_000, full=20_000)  # the reference is O(n * n_keep)
N_ARGSORT = resolve(reduced=10_000, full=1_000_000)


class Select(Benchmark):
    """Time and peak memory of one selection (``reverse='weighted'``, ``gamma_r=0.1``)
    from the forward-passed scores."""

    params = [BACKENDS, sizes()]
    param_names = ["backend", "n"]

    def setup(self, backend, n):
        require_backend(backend)
        self.graph = random_graph(n)
        self.scores = passed_scores(n)
        self.n_keep = n_keep(n)

    def time_select(self, backend, n):
        d2fast.select(self.graph, self.scores, self.n_keep, backend=backend)

    def peakmem_reference(self, backend, n):
        """Baseline: the process with its inputs, before the call."""

    def peakmem_select(self, backend, n):
        d2fast.select(self.graph, self.scores, self.n_keep, backend=backend)


class SelectSpeedup(Benchmark):
    """Speed-up of a backend over the NumPy reference loop (reference time / backend
    time), both timed in the same process on the same graph (n = 2e4, keep 30 %)."""

    params = [BACKENDS]
    param_names = ["backend"]
    unit = "x"

    def setup(self, backend):
        require_backend(backend)
        self.graph = random_graph(N_SPEEDUP)
        self.scores = passed_scores(N_SPEEDUP)
        self.n_keep = n_keep(N_SPEEDUP)

    def _select(self, backend):
        return d2fast.select(self.graph, self.scores, self.n_keep, backend=backend)

    def track_speedup_select(self, backend):
        ref = best_time(lambda: self._select("numpy"), 1)
        fast = best_time(lambda: self._select(backend), 5)
        return ref / fast


class ForwardSelectVsArgsort(Benchmark):
    """Forward + select (n = 1e6, keep 30 %) over ``np.argsort`` of n float64, timed in
    the same process: the cost of the message passing in units of one sort."""

    params = [BACKENDS]
    param_names = ["backend"]
    unit = "x"

    def setup(self, backend):
        require_backend(backend)
        self.graph = random_graph(N_ARGSORT)
        self.scores = scores(N_ARGSORT)
        self.n_keep = n_keep(N_ARGSORT)

    def _forward_select(self, backend):
        passed = d2fast.forward(self.graph, self.scores, backend=backend)
        return d2fast.select(self.graph, passed, self.n_keep, backend=backend)

    def track_ratio_to_argsort(self, backend):
        sort = best_time(lambda: np.argsort(self.scores), 3)
        ours = best_time(lambda: self._forward_select(backend), 3)
        return ours / sort
