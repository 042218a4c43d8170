"""Overhead of ``d2fast.scores.Recorder`` in a training loop: one epoch of ``update`` calls
(batches of 256 CPU logits) and ``end_epoch``, at Fashion-MNIST size (60k x 10 classes)."""
from __future__ import annotations

import numpy as np

from .common import Benchmark, SEED, resolve

N_SCORES = resolve(reduced=10_000, full=60_000)
BATCH = 256


class RecorderEpoch(Benchmark):
    """One epoch recorded: ``n / 256`` updates and one ``end_epoch``."""

    params = [[N_SCORES], [10, 100]]
    param_names = ["n", "num_classes"]

    def setup(self, n, num_classes):
        try:
            import torch
        except ImportError as e:
            raise NotImplementedError(f"torch missing: {e}")
        from d2fast.scores import Recorder

        gen = torch.Generator().manual_seed(SEED)
        self.logits = torch.randn(n, num_classes, generator=gen)
        self.targets = torch.randint(0, num_classes, (n,), generator=gen)
        self.order = torch.from_numpy(np.random.default_rng(SEED).permutation(n))
        self.rec = Recorder(n, num_classes)

    def time_epoch(self, n, num_classes):
        for start in range(0, n, BATCH):
            idx = self.order[start:start + BATCH]
            self.rec.update(idx, self.logits[idx], self.targets[idx])
        self.rec.end_epoch()
