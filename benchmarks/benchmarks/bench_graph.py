"""The kNN graph: exact ``knn_graph`` from embeddings, and the CSR build ``Graph.from_knn``."""
from __future__ import annotations

import numpy as np

import d2fast
import d2fast.knn

from .common import (K, Benchmark, Slow, embeddings, random_knn, random_self_knn,
                     require_backend, resolve, sizes)

EXACT_MAX_N = 100_000  # exact search is O(n^2 d): 1e6 x 1e6 x 64 is hours on 2 cores


class KnnGraph(Slow):
    """Exact kNN graph (faiss brute force, float64 re-ranking, union CSR), d = 64, k = 5.

    Sizes above 1e5 are skipped; their graph build is timed by ``FromKnn``.
    """

    params = [sizes()]
    param_names = ["n"]

    def setup(self, n):
        if n > EXACT_MAX_N:
            raise NotImplementedError(f"exact kNN at n={n} is O(n^2 d), too slow here")
        require_backend()
        self.emb = embeddings(n, 64)

    def time_knn_graph(self, n):
        d2fast.knn_graph(self.emb, K)


class KnnGraphIvf(Slow):
    """The IVF kNN graph, the build above ``EXACT_MAX_ROWS`` (exact nearest-centroid lists,
    grouped BLAS scan that skips lists beyond a query's c-th candidate, float64 re-rank),
    d = 64, k = 5, at 1e5 and 1e6 rows (quick: 2e4); ``track_recall`` is its recall@5
    against exact search on 500 rows, so a faster build that loses neighbours shows."""

    params = [resolve(reduced=[20_000], full=[100_000, 1_000_000])]
    param_names = ["n"]

    def setup(self, n):
        require_backend()
        self.emb = embeddings(n, 64)

    def time_knn_graph_ivf(self, n):
        d2fast.knn_graph(self.emb, K, knn="ivf")

    def track_recall(self, n):
        import faiss

        ids = d2fast.knn.search(self.emb, K, cosine=False, method="ivf")[0]
        rows = np.random.default_rng(0).choice(n, 500, replace=False)
        exact = faiss.knn(self.emb[rows], self.emb, K + 1)[1]
        hits = sum(len(set(ids[r]) & (set(e) - {r})) for r, e in zip(rows, exact))
        return hits / (K * rows.size)

    track_recall.unit = "recall@5"


class KnnGraphMemory(Slow):
    """Peak memory of the exact kNN graph at n = 1e4, d = 64 (row-blocked search)."""

    params = [[10_000]]
    param_names = ["n"]

    def setup(self, n):
        require_backend()
        self.emb = embeddings(n, 64)

    def peakmem_reference(self, n):
        """Baseline: the process with its inputs, before the call."""

    def peakmem_knn_graph(self, n):
        d2fast.knn_graph(self.emb, K)


class FromKnn(Benchmark):
    """CSR build from precomputed kNN lists (random ids, k = 5): validation, self-match
    handling, symmetrisation, sorting and deduplication of the rows."""

    params = [sizes(), ["union", "directed"]]
    param_names = ["n", "graph"]

    def setup(self, n, graph):
        require_backend()
        self.I, self.D = random_knn(n, K)

    def time_from_knn(self, n, graph):
        d2fast.Graph.from_knn(self.I, self.D, graph=graph, drop_self=False)

    def peakmem_reference(self, n, graph):
        """Baseline: the process with its inputs, before the call."""

    def peakmem_from_knn(self, n, graph):
        d2fast.Graph.from_knn(self.I, self.D, graph=graph, drop_self=False)


class FromKnnSelf(Benchmark):
    """``Graph.from_knn`` on a self-search (every row holds its own id in column 0, as
    ``faiss.knn(X, X, k + 1)`` returns): adds the self-match removal to the build."""

    params = [resolve(reduced=[10_000], full=[1_000_000])]
    param_names = ["n"]

    def setup(self, n):
        require_backend()
        self.I, self.D = random_self_knn(n, K)

    def time_from_knn_drop_self(self, n):
        d2fast.Graph.from_knn(self.I, self.D, drop_self=True)
