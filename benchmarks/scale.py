"""End-to-end scale run: prune() on n x 64 clustered float32 embeddings with an ANN graph.

    python benchmarks/scale.py                   # n = 1M, knn = hnsw, k = 10, keep 30 %
    python benchmarks/scale.py --n 200000 --knn ivf
    /usr/bin/time -v python benchmarks/scale.py  # + peak RSS ("Maximum resident set size")

Prints the time of each stage (kNN graph, forward, select) and recall@k of the graph's
kNN lists against exact search on a sample of rows (faiss brute force, same metric).
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

import d2fast
from d2fast import knn as knn_mod


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """n rows around 1000 Gaussian centres, unit-scale noise, float32 (n, d)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, d)).astype(np.float32) * 4
    out = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, 1 << 18):
        b = min(n, a + (1 << 18))
        out[a:b] = centres[rng.integers(0, 1000, b - a)] + rng.normal(size=(b - a, d))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--knn", default="hnsw", choices=["hnsw", "ivf", "exact"])
    ap.add_argument("--M", type=int, help="HNSW M")
    ap.add_argument("--ef-construction", type=int)
    ap.add_argument("--ef-search", type=int)
    ap.add_argument("--nlist", type=int, help="IVF lists")
    ap.add_argument("--nprobe", type=int, help="IVF lists probed per query")
    ap.add_argument("--sample", type=int, default=2000, help="rows for the recall check")
    args = ap.parse_args()
    params = {name: v for name, v in [("M", args.M), ("ef_construction", args.ef_construction),
                                       ("ef_search", args.ef_search), ("nlist", args.nlist),
                                       ("nprobe", args.nprobe)] if v is not None}
    X = clustered(args.n, args.d)
    scores = np.random.default_rng(1).random(args.n)
    n_keep = int(0.3 * args.n)
    print(f"n={args.n} d={args.d} k={args.k} knn={args.knn} params={params or 'default'} "
          f"keep={n_keep} backends={d2fast.backends()}")

    # the steps of knn_graph, timed apart, keeping the directed lists for the recall check
    t0 = time.perf_counter()
    ids, keys = knn_mod.search(X, args.k, cosine=False, method=args.knn,
                               params=params or None, progress=True)
    t1 = time.perf_counter()
    graph = d2fast.Graph.from_knn(ids, np.sqrt(np.maximum(keys, 0)), drop_self=False)
    t2 = time.perf_counter()
    passed = d2fast.forward(graph, scores)
    t3 = time.perf_counter()
    keep = d2fast.select(graph, passed, n_keep)
    t4 = time.perf_counter()
    print(f"kNN search {t1 - t0:.1f} s, CSR union build {t2 - t1:.2f} s ({graph}), "
          f"forward {t3 - t2:.2f} s, select {t4 - t3:.2f} s; total {t4 - t0:.1f} s; "
          f"kept {keep.size}")
    rows = np.sort(np.random.default_rng(2).choice(args.n, args.sample, replace=False))
    _, exact = faiss.knn(X[rows], X, args.k + 1)
    hits = sum(len(set(ids[row].tolist()) & set([j for j in exact[r] if j != row][:args.k]))
               for r, row in enumerate(rows))
    print(f"recall@{args.k} of the kNN lists on {args.sample} rows vs exact search: "
          f"{hits / (args.k * args.sample):.4f}")


if __name__ == "__main__":
    main()
