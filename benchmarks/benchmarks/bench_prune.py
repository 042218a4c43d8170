"""End-to-end ``d2fast.prune`` from embeddings (n = 5e4, d = 64, k = 5, rate = 0.7)
against the exact faiss search alone, ``faiss.knn(X, X, k + 1)``."""
from __future__ import annotations

import d2fast

from .common import K, RATE, Slow, best_time, embeddings, require_backend, resolve, scores

N_PRUNE = resolve(reduced=10_000, full=50_000)
D_PRUNE = 64


def _faiss_search(emb):
    import faiss

    return faiss.knn(emb, emb, K + 1)


class Prune(Slow):
    """Time of ``prune`` and of the bare faiss search it is built on."""

    params = [[N_PRUNE]]
    param_names = ["n"]

    def setup(self, n):
        require_backend()
        self.emb = embeddings(n, D_PRUNE)
        self.scores = scores(n)
        self.labels = self.emb[:, :4].argmax(axis=1)  # classes that neighbours share

    def time_prune(self, n):
        d2fast.prune(self.emb, self.scores, k=K, rate=RATE)

    def time_prune_labels(self, n):
        """With ``labels=``: hard_prune="auto"'s label check adds a graph of all rows."""
        d2fast.prune(self.emb, self.scores, k=K, rate=RATE, labels=self.labels)

    def time_faiss_knn(self, n):
        _faiss_search(self.emb)


class PruneOverhead(Slow):
    """Overhead of ``prune`` over the exact faiss search, in percent:
    ``100 * (t_prune / t_faiss - 1)``, both timed once, back to back, in one process."""

    params = [[N_PRUNE]]
    param_names = ["n"]
    unit = "%"

    def setup(self, n):
        require_backend()
        self.emb = embeddings(n, D_PRUNE)
        self.scores = scores(n)

    def track_overhead_vs_faiss(self, n):
        faiss_time = best_time(lambda: _faiss_search(self.emb), 1)
        prune_time = best_time(
            lambda: d2fast.prune(self.emb, self.scores, k=K, rate=RATE), 1)
        return 100.0 * (prune_time / faiss_time - 1.0)
