"""The baselines of ``d2fast.baselines`` beside ``prune`` on the same data (n = 5e4, d = 64,
rate = 0.7): greedy k-center is O(n * n_keep * d), the others O(n log n)."""
from __future__ import annotations

import d2fast
from d2fast import baselines

from .common import K, RATE, Slow, embeddings, require_backend, resolve, scores

N_BASE = resolve(reduced=10_000, full=50_000)


class Baselines(Slow):
    """Time of each baseline and of D2 (``prune``) at the same pruning rate."""

    params = [[N_BASE], ["prune", "random", "topk", "ccs", "moderate", "kcenter"]]
    param_names = ["n", "method"]

    def setup(self, n, method):
        require_backend()
        self.emb = embeddings(n)
        self.scores = scores(n)
        self.func = d2fast.prune if method == "prune" else getattr(baselines, method)

    def time_select(self, n, method):
        if self.func is d2fast.prune:
            self.func(self.emb, self.scores, K, RATE)
        else:
            self.func(self.emb, self.scores, RATE)
