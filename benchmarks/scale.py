"""End-to-end scale run: D2 Pruning of n x 64 clustered embeddings with an ANN graph.

    python benchmarks/scale.py                   # n = 1M, knn = ivf, k = 10, keep 30 %
    python benchmarks/scale.py --n 200000 --knn hnsw --M 16
    /usr/bin/time -v python benchmarks/scale.py  # + peak RSS ("Maximum resident set size")
    /usr/bin/time -v python benchmarks/scale.py --n 10000000 --memmap /tmp/emb10m.npy \\
        --dtype float16 --prune                  # the public prune() on a float16 memmap
    python benchmarks/scale.py --prune --labels  # prune(labels=): + the label check
    python benchmarks/scale.py --prune --ties    # forgetting-like scores, massively tied

Default: the steps of ``knn_graph`` (the same ``d2fast.knn.search`` that ``prune`` runs,
then the union CSR), ``forward`` and ``select``, each timed, and recall@k of the kNN lists
against exact search on a sample of rows (faiss brute force over database blocks, so a
memmap is never loaded whole). ``--prune``: one ``d2fast.prune`` call, timed, no recall;
``--labels`` gives it labels (each row's argmax over its first 10 coordinates, classes
that neighbours mostly share), so that hard_prune="auto" runs its label check.
``--ties``: scores like forgetting counts (0 for 90 % of the rows, else 1-7), whose
forwarded values tie, so ``prune`` selects on the graph renumbered in tie-key order.
"""
from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np

import d2fast
from d2fast import knn as knn_mod

BLOCK = 1 << 18


def clustered(n: int, d: int, seed: int = 0, out: np.ndarray | None = None,
              centres: int = 1000) -> np.ndarray:
    """n rows around ``centres`` Gaussian centres (spread 4), unit-scale noise, written in
    row blocks to ``out`` (any float dtype, e.g. a memmap) or to a new float32 (n, d) array.
    With the default 1000 centres a centre's blob grows with n; ``centres = n // 1000``
    keeps the blobs (the local density) the same at every n."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(centres, d)).astype(np.float32) * 4
    out = np.empty((n, d), dtype=np.float32) if out is None else out
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        out[a:b] = mu[rng.integers(0, centres, b - a)] + rng.normal(size=(b - a, d))
    return out


def open_memmap(path: str, n: int, d: int, dtype: str, centres: int = 1000) -> np.memmap:
    """The clustered data as a read-only ``.npy`` memmap, written first if missing."""
    if not os.path.exists(path):
        out = np.lib.format.open_memmap(path + ".tmp.npy", mode="w+", dtype=dtype, shape=(n, d))
        clustered(n, d, out=out, centres=centres)
        out.flush()
        del out
        os.replace(path + ".tmp.npy", path)
    X = np.load(path, mmap_mode="r")
    if X.shape != (n, d) or X.dtype != np.dtype(dtype):
        raise SystemExit(f"{path} holds {X.dtype} {X.shape}, expected {dtype} {(n, d)}")
    return X


def exact_knn(X: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Exact L2 kNN ids (len(rows), k + 1) of ``X[rows]``, the database read in blocks."""
    query = np.ascontiguousarray(X[rows], dtype=np.float32)
    heap = faiss.ResultHeap(len(rows), k + 1)
    for a in range(0, X.shape[0], BLOCK):
        D, I = faiss.knn(query, np.ascontiguousarray(X[a:a + BLOCK], dtype=np.float32), k + 1)
        heap.add_result(D, I + a)
    heap.finalize()
    return heap.I


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--knn", default="ivf", choices=["hnsw", "ivf", "exact", "auto"])
    ap.add_argument("--M", type=int, help="HNSW M")
    ap.add_argument("--ef-construction", type=int)
    ap.add_argument("--ef-search", type=int)
    ap.add_argument("--nlist", type=int, help="IVF lists")
    ap.add_argument("--nprobe", type=lambda v: v if v == "auto" else int(v),
                    help="IVF lists probed per query, or 'auto' (the default)")
    ap.add_argument("--memmap", help=".npy file holding the embeddings (written if missing)")
    ap.add_argument("--dtype", default="float32", choices=["float16", "float32"])
    ap.add_argument("--prune", action="store_true", help="time one d2fast.prune call")
    ap.add_argument("--labels", action="store_true", help="with --prune: labels= too")
    ap.add_argument("--ties", action="store_true",
                    help="forgetting-like scores: 0 for 90 %% of the rows, else 1-7")
    ap.add_argument("--sample", type=int, default=2000, help="rows for the recall check")
    args = ap.parse_args()
    params = {name: v for name, v in [("M", args.M), ("ef_construction", args.ef_construction),
                                       ("ef_search", args.ef_search), ("nlist", args.nlist),
                                       ("nprobe", args.nprobe)] if v is not None}
    t0 = time.perf_counter()
    if args.memmap:
        X = open_memmap(args.memmap, args.n, args.d, args.dtype)
    else:
        X = clustered(args.n, args.d).astype(args.dtype, copy=False)
    rng = np.random.default_rng(1)
    scores = rng.random(args.n)
    if args.ties:
        scores = np.where(scores < 0.9, 0.0, rng.integers(1, 8, args.n)).astype(np.float64)
    n_keep = int(0.3 * args.n)
    print(f"n={args.n} d={args.d} {X.dtype} {'memmap' if args.memmap else 'in memory'} "
          f"k={args.k} knn={args.knn} params={params or 'default'} keep={n_keep} "
          f"backends={d2fast.backends()} (data ready in {time.perf_counter() - t0:.1f} s)",
          flush=True)

    t0 = time.perf_counter()
    if args.prune:
        labels = np.concatenate([np.argmax(X[a:a + BLOCK, :10], axis=1)
                                 for a in range(0, args.n, BLOCK)]) if args.labels else None
        t0 = time.perf_counter()
        keep, info = d2fast.prune(X, scores, args.k, n_keep=n_keep, knn=args.knn,
                                  knn_params=params or None, labels=labels, progress=True,
                                  return_info=True)
        checked = (f"; the label check kept {info['hard_prune_rescued']} of the "
                   f"{int(info['hard_prune'] * args.n)} rows of the hard prune" if args.labels
                   else "")
        times = info["timings_s"]
        print(f"prune {time.perf_counter() - t0:.1f} s (kNN graphs {times['knn']:.1f} s, "
              f"forward {times['forward']:.2f} s, select {times['select']:.2f} s); "
              f"kept {keep.size}{checked}")
        return
    X32 = knn_mod.float32_rows(X, normalize=False)
    ids, keys = knn_mod.search(X32, args.k, cosine=False, method=args.knn,
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
    exact = exact_knn(X, rows, args.k)
    hits = sum(len(set(ids[row].tolist()) & set([j for j in exact[r] if j != row][:args.k]))
               for r, row in enumerate(rows))
    print(f"recall@{args.k} of the kNN lists on {args.sample} rows vs exact search: "
          f"{hits / (args.k * args.sample):.4f}")


if __name__ == "__main__":
    main()
