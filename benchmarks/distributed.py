"""d2fast.distributed on local Ray against single-machine prune, same data, one run.

    python benchmarks/distributed.py                     # 1M x 64 float16, P = 4, Ray
    python benchmarks/distributed.py --n 10000000 --dir /tmp/d2dist10m
    python benchmarks/distributed.py --engine local      # the same steps without Ray

The clustered data of ``scale.py`` is written once as float16 ``.npy`` shards (8 files)
plus one ``.npy`` of all rows for the single-machine run; scores are uniform. Each mode
runs in a child process (its own peak RSS): ``d2fast.prune(knn='ivf', hard_prune=0.0)``
on the memmap, then ``d2fast.distributed.prune`` on the shard directory (k = 10, keep
30 %). Reported: time per stage, rounds, bytes sent between shards, peak RSS of the driver
and of every worker, whether the rankings are equal, the ratios, and a projection to
128M and 1.28B rows (see ``project`` for its assumptions).
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
from scale import clustered  # noqa: E402

FILES = 8
GIB = 2.0**30


def write_data(folder: str, n: int, d: int) -> None:
    """Shards, the whole array and the scores in ``folder`` (kept when present)."""
    done = os.path.join(folder, "done")
    if os.path.exists(done):
        return
    os.makedirs(os.path.join(folder, "shards"), exist_ok=True)
    whole = np.lib.format.open_memmap(os.path.join(folder, "all.npy"), mode="w+",
                                      dtype=np.float16, shape=(n, d))
    clustered(n, d, out=whole)
    whole.flush()
    cuts = np.linspace(0, n, FILES + 1).astype(np.int64)
    for f in range(FILES):
        np.save(os.path.join(folder, "shards", f"part-{f:03d}.npy"), whole[cuts[f]:cuts[f + 1]])
    np.save(os.path.join(folder, "scores.npy"), np.random.default_rng(1).random(n))
    open(done, "w").close()


def child(args: argparse.Namespace) -> dict:
    """One mode, in this (child) process."""
    import d2fast
    from d2fast import distributed

    scores = os.path.join(args.dir, "scores.npy")
    start = time.perf_counter()
    info: dict = {}
    if args.run == "single":
        X = np.load(os.path.join(args.dir, "all.npy"), mmap_mode="r")
        keep = d2fast.prune(X, np.load(scores), args.k, args.rate, knn="ivf", hard_prune=0.0)
    else:
        workdir = os.path.join(args.dir, f"work-{args.engine}-{args.shards}")
        if os.path.exists(workdir):
            import shutil

            shutil.rmtree(workdir)
        keep, info = distributed.prune(os.path.join(args.dir, "shards"), scores, args.k,
                                       args.rate, knn="ivf", shards=args.shards,
                                       engine=args.engine, workdir=workdir,
                                       num_cpus=args.cpus, return_info=True)
    seconds = time.perf_counter() - start
    np.save(os.path.join(args.dir, f"keep-{args.run}.npy"), keep)
    return {"seconds": seconds, "info": info,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def project(n: int, d: int, shards: int, single: dict, dist: dict) -> list[dict]:
    """Paper projection from this run's measurements.

    Assumptions: (1) every stage's work is proportional to rows x width, split evenly over
    P workers, with nlist grown with n so a list keeps the size it has here (IVF search
    cost per row constant; d2fast's default nlist = 2 sqrt(n) would grow it as sqrt(n));
    (2) rounds grow with log n from the rounds measured here; a round costs two
    bulk-synchronous steps of latency `step_s` (measured: select time / (2 rounds)) plus
    per-row work; (3) bytes sent per row as measured here (a shard's crossing edges: fixed
    for a fixed number of lists per shard); (4) a worker's memory beyond the Ray baseline
    is proportional to its rows x width; (5) one worker per core, 32 cores a node, and a
    shared file system fast enough that reads are not the bottleneck.
    """
    info = dist["info"]
    stages = info["timings_s"]
    rounds = max(info["rounds"], 1)
    step_s = stages["select"] / (2 * rounds)
    base = 0.25 * GIB  # a Ray worker's resident memory before it reads data
    rss = max(info.get("worker_peak_rss_bytes") or [dist["peak_rss_bytes"]])
    per_row_bytes = max(rss - base, 0.0) / (n / shards) / d
    per_row_s = sum(stages.values()) * shards / n / d  # core-seconds a row a dim
    out = []
    for rows, width in ((128_000_000, 64), (128_000_000, 768), (1_280_000_000, 768)):
        r = rounds * np.log(rows) / np.log(n)
        for nodes in (8, 64):
            P = 32 * nodes
            out.append({"rows": rows, "d": width, "nodes": nodes, "workers": P,
                        "rounds": round(r), "traffic_GiB": info["bytes_sent"] / n * rows / GIB,
                        "worker_GiB": (base + per_row_bytes * width * rows / P) / GIB,
                        "hours": (per_row_s * rows * width / P + 2 * r * step_s) / 3600})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rate", type=float, default=0.7)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--engine", default="ray", choices=["ray", "local"])
    ap.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all)")
    ap.add_argument("--dir", default="/tmp/d2fast-distributed")
    ap.add_argument("--run", choices=["single", "distributed"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(child(args)))
        return
    write_data(args.dir, args.n, args.d)
    results = {}
    for mode in ("single", "distributed"):
        cmd = [sys.executable, __file__, "--run", mode] + sys.argv[1:]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    single, dist = results["single"], results["distributed"]
    same = np.array_equal(np.load(os.path.join(args.dir, "keep-single.npy")),
                          np.load(os.path.join(args.dir, "keep-distributed.npy")))
    info = dist["info"]
    print(f"{args.n} x {args.d} float16, k={args.k}, keep {1 - args.rate:.0%}, "
          f"P={args.shards}, engine={args.engine}, {os.cpu_count()} CPUs")
    print(f"single machine prune: {single['seconds']:.1f} s, peak RSS "
          f"{single['peak_rss_bytes'] / GIB:.2f} GiB")
    print(f"distributed: {dist['seconds']:.1f} s "
          f"({dist['seconds'] / single['seconds']:.2f}x single), driver peak RSS "
          f"{dist['peak_rss_bytes'] / GIB:.2f} GiB")
    print("  stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in info["timings_s"].items()))
    print(f"  rounds {info['rounds']}, bytes sent {info['bytes_sent'] / 2**20:.1f} MiB, "
          f"edges {info['nnz']}")
    workers = info.get("worker_peak_rss_bytes") or []
    if workers:
        print("  worker peak RSS (GiB): " + ", ".join(f"{b / GIB:.2f}" for b in workers) +
              f" (single / P + 1 GiB = {single['peak_rss_bytes'] / GIB / args.shards + 1:.2f})")
    print(f"  same ranking as single machine: {same}")
    print("projection (see project() for the assumptions):")
    for row in project(args.n, args.d, args.shards, single, dist):
        print(f"  {row['rows'] / 1e6:.0f}M x {row['d']}: {row['nodes']} nodes "
              f"({row['workers']} workers): ~{row['rounds']} rounds, traffic "
              f"{row['traffic_GiB']:.1f} GiB, {row['worker_GiB']:.2f} GiB a worker, "
              f"{row['hours']:.2f} h")


if __name__ == "__main__":
    main()
