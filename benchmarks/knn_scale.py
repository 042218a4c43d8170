"""kNN graph build at scale: d2fast's IVF against faiss's IVF index and pynndescent.

    python benchmarks/knn_scale.py --n 1000000                # d2fast knn='ivf', 64-d
    python benchmarks/knn_scale.py --n 1000000 --compare      # + faiss IVF, pynndescent
    python benchmarks/knn_scale.py --n 1000000 --d 768 --dtype float16 --memmap /tmp/e768.npy
    python benchmarks/knn_scale.py --fashion                  # Fashion-MNIST, IVF forced
    python benchmarks/knn_scale.py --n 10000000 --blob 1000   # n / 1000 centres: same density

Every method runs in its own process (so each peak RSS, ``ru_maxrss``, is its own) on the
same data (a ``.npy`` memmap, written first if missing: rows around 1000 Gaussian centres,
or ``n // blob`` of them, see ``scale.py``) and prints one table row: build time of the k
nearest neighbours of every row, recall@k against exact search on ``--sample`` rows, peak RSS.

- d2fast: ``d2fast.knn.search(..., method='ivf')`` on the float32 rows, as ``knn_graph``
  runs it (partition, then the grouped search with exact re-ranking).
- faiss-ivf: ``IndexIVFFlat`` with faiss's guideline of 4 sqrt(n) lists, trained on
  40 rows a list, ``nprobe`` as given (default 16), the rows added and searched in blocks.
- pynndescent: ``NNDescent(n_neighbors=k + 1, random_state=0)`` with its defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import exact_knn, open_memmap  # noqa: E402

METHODS = ("d2fast", "faiss-ivf", "pynndescent")


def recall(ids: np.ndarray, X: np.ndarray, rows: np.ndarray, k: int) -> float:
    """recall@k of the neighbour lists ``ids[rows]`` (self excluded) against exact search."""
    exact = exact_knn(X, rows, k)
    hits = sum(len(set(ids[r].tolist()) & set([j for j in exact[i] if j != r][:k]))
               for i, r in enumerate(rows))
    return hits / (k * rows.size)


def run_d2fast(X: np.ndarray, k: int, params: dict, chosen: dict) -> np.ndarray:
    """``chosen`` is filled with what nprobe='auto' chose."""
    from d2fast import knn

    X32 = knn.float32_rows(X, normalize=False)
    return knn.search(X32, k, cosine=False, method="ivf", params=params or None,
                      progress=True, report=chosen)[0]


def run_faiss(X: np.ndarray, k: int, nprobe: int) -> np.ndarray:
    import faiss

    n, d = X.shape
    nlist = int(4 * np.sqrt(n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
    sample = np.sort(np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False))
    index.train(np.ascontiguousarray(X[sample], dtype=np.float32))
    for a in range(0, n, 65536):
        index.add(np.ascontiguousarray(X[a:a + 65536], dtype=np.float32))
    index.nprobe = nprobe
    ids = np.empty((n, k + 1), dtype=np.int64)
    for a in range(0, n, 65536):
        ids[a:a + 65536] = index.search(np.ascontiguousarray(X[a:a + 65536], dtype=np.float32),
                                        k + 1)[1]
    return _drop_self(ids, k)


def run_pynndescent(X: np.ndarray, k: int) -> np.ndarray:
    from pynndescent import NNDescent

    index = NNDescent(np.asarray(X, dtype=np.float32), n_neighbors=k + 1, random_state=0,
                      n_jobs=-1)
    return _drop_self(index.neighbor_graph[0].astype(np.int64), k)


def _drop_self(ids: np.ndarray, k: int) -> np.ndarray:
    """(n, k): each row's ids without the row itself (or without the last when absent)."""
    n = ids.shape[0]
    own = ids == np.arange(n)[:, None]
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(n), np.where(own.any(axis=1), own.argmax(axis=1), ids.shape[1] - 1)] = False
    return ids[keep].reshape(n, -1)[:, :k]


def one(args: argparse.Namespace) -> None:
    """Run ``args.method`` on the memmap and print its JSON row."""
    X = np.load(args.memmap, mmap_mode="r")
    if args.fashion_raw is not None:
        X = np.asarray(X, dtype=np.float32)
    params = {name: v for name, v in [("nlist", args.nlist), ("nprobe", args.nprobe),
                                       ("pca", args.pca)] if v is not None}
    chosen: dict = {}
    t0 = time.perf_counter()
    if args.method == "d2fast":
        ids = run_d2fast(X, args.k, params, chosen)
    elif args.method == "faiss-ivf":
        ids = run_faiss(X, args.k, int(args.nprobe or 16))
    else:
        ids = run_pynndescent(X, args.k)
    seconds = time.perf_counter() - t0
    n = X.shape[0]
    rows = np.arange(n) if n <= args.sample else \
        np.sort(np.random.default_rng(2).choice(n, args.sample, replace=False))
    params.update({name: chosen[name] for name in ("nlist", "nprobe", "pool") if name in chosen})
    print(json.dumps({"method": args.method, "params": params, "seconds": round(seconds, 1),
                      "recall": round(recall(ids, X, rows, args.k), 4),
                      "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                            / 2**20, 2)}), flush=True)


def fashion_files() -> list[tuple[str, str]]:
    """Fashion-MNIST train rows as .npy files: 64-d PCA (faiss PCAMatrix on all rows) and
    raw 784-d pixels."""
    import faiss

    from d2fast.datasets import load_fashion_mnist

    x = load_fashion_mnist()[0]
    pca = faiss.PCAMatrix(784, 64)
    pca.train(x)
    out = []
    for name, data in [("PCA-64", pca.apply(x)), ("raw 784-d", x)]:
        path = f"/tmp/fashion_{name[:3].lower()}.npy"
        np.save(path, np.ascontiguousarray(data, dtype=np.float32))
        out.append((name, path))
    return out


def _nprobe(value: str) -> int | str:
    return value if value == "auto" else int(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dtype", default="float32", choices=["float16", "float32"])
    ap.add_argument("--memmap", help=".npy file of the embeddings (written if missing)")
    ap.add_argument("--blob", type=int, help="rows a Gaussian centre (n // blob centres, the "
                    "same local density at every n); default 1000 centres, blobs grow with n")
    ap.add_argument("--nlist", type=int, help="d2fast IVF lists (default: the library's, 2 sqrt(n))")
    ap.add_argument("--nprobe", type=_nprobe, help="lists searched, or 'auto' (d2fast default "
                    "'auto', faiss 16)")
    ap.add_argument("--pca", type=int, help="d2fast PCA width (default: none, full-space scan)")
    ap.add_argument("--compare", action="store_true", help="also faiss IVF and pynndescent")
    ap.add_argument("--fashion", action="store_true", help="Fashion-MNIST, PCA-64 and raw")
    ap.add_argument("--sample", type=int, default=2000, help="rows for the recall check")
    ap.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--fashion-raw", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.method:
        return one(args)
    if args.fashion:
        runs = [(name, path) for name, path in fashion_files()]
    else:
        centres = max(1, args.n // args.blob) if args.blob else 1000
        tag = f"_blob{args.blob}" if args.blob else ""
        path = args.memmap or f"/tmp/knn_scale_{args.n}x{args.d}_{args.dtype}{tag}.npy"
        open_memmap(path, args.n, args.d, args.dtype, centres)
        runs = [(f"{args.n} x {args.d} {args.dtype}, {centres} centres", path)]
    methods = METHODS if args.compare else ("d2fast",)
    print("| data | method | time | recall@%d | peak RSS |\n|---|---|---|---|---|" % args.k)
    for name, path in runs:
        for method in methods:
            argv = [sys.executable, __file__, "--method", method, "--memmap", path,
                    "--k", str(args.k), "--sample", str(args.sample)]
            argv += [f"--{o}={v}" for o, v in [("nlist", args.nlist), ("nprobe", args.nprobe),
                                                ("pca", args.pca)] if v is not None]
            argv += ["--fashion-raw", "1"] if args.fashion else []
            out = subprocess.run(argv, capture_output=True, text=True)
            row = out.stdout.strip().splitlines()[-1] if out.returncode == 0 else None
            if row is None:
                print(f"| {name} | {method} | failed: {out.stderr.strip()[-300:]} | | |")
                continue
            r = json.loads(row)
            print(f"| {name} | {method} {r['params'] or ''} | {r['seconds']} s | "
                  f"{r['recall']:.4f} | {r['peak_rss_gib']} GiB |", flush=True)


if __name__ == "__main__":
    main()
