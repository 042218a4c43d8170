"""Score extrapolation, ``d2fast.extrapolate``: kNN regression from 10 % known rows, and
GCN training on a prebuilt kNN graph (clustered embeddings, d = 16, k = 10)."""
from __future__ import annotations

import functools

import numpy as np

import d2fast

from .common import SEED, Slow, embeddings, require_backend, resolve, scores

N_EXTRA = resolve(reduced=[10_000], full=[10_000, 60_000])  # 60k: Fashion-MNIST size
D_EXTRA = 16
K_EXTRA = 10
KNOWN = 0.1  # fraction of rows with known scores
GNN_EPOCHS = 50  # fixed work per call: early stopping off (patience = epochs)


@functools.lru_cache(maxsize=None)
def known_rows(n: int) -> np.ndarray:
    """A seeded random 10 % of the rows, sorted, int64, read-only."""
    idx = np.sort(np.random.default_rng(SEED + 3).choice(n, int(KNOWN * n), replace=False))
    idx.setflags(write=False)
    return idx


@functools.lru_cache(maxsize=None)
def union_graph(n: int) -> d2fast.Graph:
    """The exact union kNN graph (k = 10) of :func:`embeddings` (n, 16)."""
    return d2fast.knn_graph(embeddings(n, D_EXTRA), K_EXTRA)


class KnnExtrapolation(Slow):
    """kNN extrapolation: validation split + search of the unknown rows among the known."""

    params = [N_EXTRA, ["distance", "uniform"]]
    param_names = ["n", "weights"]

    def setup(self, n, weights):
        require_backend()
        self.emb = embeddings(n, D_EXTRA)
        self.known = known_rows(n)
        self.known_scores = scores(n)[self.known]

    def time_knn(self, n, weights):
        d2fast.extrapolate(self.emb, self.known, self.known_scores, "knn", K_EXTRA,
                           weights=weights)


class GnnExtrapolation(Slow):
    """GCN training (50 full-batch Adam steps, hidden 64) on a prebuilt graph."""

    params = [N_EXTRA, [2, 3]]
    param_names = ["n", "layers"]

    def setup(self, n, layers):
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise NotImplementedError(f"torch missing: {e}")
        require_backend()
        self.emb = embeddings(n, D_EXTRA)
        self.known = known_rows(n)
        self.known_scores = scores(n)[self.known]
        self.graph = union_graph(n)

    def time_gnn(self, n, layers):
        d2fast.extrapolate(self.emb, self.known, self.known_scores, "gnn", graph=self.graph,
                           layers=layers, epochs=GNN_EPOCHS, patience=GNN_EPOCHS)
