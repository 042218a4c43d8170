"""d2fast.distributed on local Ray against single-machine prune, same data, one run.

    python benchmarks/distributed.py                     # 1M x 64 float16, P = 4, Ray
    python benchmarks/distributed.py --n 10000000 --dir /tmp/d2dist10m
    python benchmarks/distributed.py --engine local      # the same steps without Ray

The clustered data of ``scale.py`` is written once as float16 ``.npy`` shards (8 files)
plus one ``.npy`` of all rows for the single-machine run; scores are uniform. Each mode
runs in a child process (its own peak RSS): ``d2fast.prune(knn='ivf', hard_prune=0.0,
gamma_r=0.1)`` on the memmap, then ``d2fast.distributed.prune`` with the same
hard_prune and gamma_r on the shard directory (k = 10, keep 30 %). Reported: time per stage, rounds, bytes sent between shards, peak RSS of the driver
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

from d2fast._ivf import _QUERY_BLOCK  # noqa: E402
from d2fast.knn import _MARGIN  # noqa: E402

FILES = 8
GIB = 2.0**30


def write_data(folder: str, n: int, d: int) -> None:
    """Shards, the whole array and the scores in ``folder`` (kept when present)."""
    done = os.path.join(folder, "done")
    if os.path.exists(done):
        shape = np.load(os.path.join(folder, "all.npy"), mmap_mode="r").shape
        if shape != (n, d):
            sys.exit(f"{folder} holds {shape[0]} x {shape[1]} rows, not {n} x {d}: "
                     "give another --dir")
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
    if args.run == "single":
        X = np.load(os.path.join(args.dir, "all.npy"), mmap_mode="r")
        keep, info = d2fast.prune(X, np.load(scores), args.k, args.rate, knn="ivf",
                                  hard_prune=0.0, gamma_r=0.1, return_info=True)
    else:
        workdir = os.path.join(args.dir, f"work-{args.engine}-{args.shards}")
        if os.path.exists(workdir):
            import shutil

            shutil.rmtree(workdir)
        keep, info = distributed.prune(os.path.join(args.dir, "shards"), scores, args.k,
                                       args.rate, knn="ivf", hard_prune=0.0, gamma_r=0.1,
                                       shards=args.shards, engine=args.engine, workdir=workdir,
                                       num_cpus=args.cpus, return_info=True)
    seconds = time.perf_counter() - start
    np.save(os.path.join(args.dir, f"keep-{args.run}.npy"), keep)
    return {"seconds": seconds, "info": info, "load_avg": os.getloadavg(),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


ROUND_CALL_S = 1e-4  # assumed: driver time to submit one actor call (Ray, order of magnitude)
NODE_CORES = 32  # assumed: one worker a core, 32 cores a node


def project(n: int, d: int, shards: int, cores: int, dist: dict) -> list[dict]:
    """Paper projection to 128M and 1.28B rows from this run's per-stage measurements.

    Assumptions, stage by stage (t = this run's wall seconds of the stage, with
    ``min(P, cores)`` cores busy, so ``t min(P, cores) / n`` core-seconds a row):
    (1) partition and rows cost rows x width (reading, k-means assignment); the graph
    costs rows x width x list size: with lists of this run's size (``nlist`` grown with
    n, 'fixed lists') or with the default ``nlist = 2 sqrt(n)`` (lists grow as sqrt(n):
    x sqrt(N / n)); forward and the selection's work cost rows x k, not width; all of it
    split evenly over W workers, one core each, 32 a node, with storage fast enough that
    reads do not bound it; (2) rounds grow with log n from the rounds measured here, and
    a round adds two bulk-synchronous steps of ``W`` actor calls the driver submits at
    ``ROUND_CALL_S`` each; (3) traffic: this run's bytes a row per stage, scaled to every
    kNN edge crossing shards (the measured crossing fraction ``f`` = graph bytes /
    (12 B n k: int32 node ids and a float32 distance an edge) rises towards 1 as shards
    hold fewer lists): an upper bound; (4) a worker's memory = the Ray baseline + its rows
    x this run's bytes a row (graph and selection state: they do not depend on the width)
    + 4 B x extra width for the rows the IVF search holds at once (the re-ranked
    candidates of one query block, ``_QUERY_BLOCK`` x (k + 1 + ``_MARGIN``) rows).
    """
    info = dist["info"]
    t = info["timings_s"]
    busy = min(shards, cores)
    rounds = max(info["rounds"], 1)
    by_stage = info.get("bytes_by_stage", {})
    crossing = max(by_stage.get("graph", 0) / (12.0 * n * info["k"]), 1e-9)
    search_rows = _QUERY_BLOCK * (info["k"] + 1 + _MARGIN)
    base = 0.25 * GIB  # a Ray worker's resident memory before it reads data
    rss = max(info.get("worker_peak_rss_bytes") or [dist["peak_rss_bytes"]])
    per_row_bytes = max(rss - base, 0.0) / (n / shards)
    out = []
    for rows, width in ((128_000_000, 64), (128_000_000, 768), (1_280_000_000, 768)):
        r = rounds * np.log(rows) / np.log(n)
        for nodes in (8, 64):
            W = NODE_CORES * nodes
            row_s = {name: t.get(name, 0.0) * busy / n * rows / W
                     for name in ("partition", "rows", "graph", "forward", "select")}
            for name in ("partition", "rows", "graph"):
                row_s[name] *= width / d
            row_s["select"] *= r / rounds
            latency = 2 * r * W * ROUND_CALL_S
            fixed = sum(row_s.values()) + latency
            grown = fixed + row_s["graph"] * (np.sqrt(rows / n) - 1)
            traffic = sum(by_stage.values()) / n * rows
            traffic_max = (by_stage.get("partition", 0) + (sum(by_stage.values()) -
                           by_stage.get("partition", 0)) / crossing) / n * rows
            out.append({"rows": rows, "d": width, "nodes": nodes, "workers": W,
                        "rounds": round(r), "traffic_GiB": traffic / GIB,
                        "traffic_max_GiB": traffic_max / GIB,
                        "worker_GiB": (base + rows / W * per_row_bytes +
                                       search_rows * 4 * (width - d)) / GIB,
                        "hours_fixed_lists": fixed / 3600, "hours_default_lists": grown / 3600})
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
    ap.add_argument("--reuse-single", action="store_true",
                    help="take the single-machine result of an earlier run of this command "
                    "from --dir (result-single.json), run only the distributed mode")
    ap.add_argument("--run", choices=["single", "distributed"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(child(args)))
        return
    write_data(args.dir, args.n, args.d)
    results = {}
    for mode in ("single", "distributed"):
        saved = os.path.join(args.dir, f"result-{mode}.json")
        if mode == "single" and args.reuse_single:
            with open(saved) as f:
                results[mode] = json.load(f)
            print(f"single: from {saved} (an earlier run)", flush=True)
            continue
        cmd = [sys.executable, __file__, "--run", mode] + \
            [a for a in sys.argv[1:] if a != "--reuse-single"]
        print(f"{time.strftime('%H:%M:%S')} {mode}: load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        with open(saved, "w") as f:
            json.dump(results[mode], f, indent=1)
    single, dist = results["single"], results["distributed"]
    same = np.array_equal(np.load(os.path.join(args.dir, "keep-single.npy")),
                          np.load(os.path.join(args.dir, "keep-distributed.npy")))
    info, cores = dist["info"], os.cpu_count() or 1
    workers = info.get("worker_peak_rss_bytes") or []
    target = single["peak_rss_bytes"] / GIB / args.shards + 1
    st, dt = single["info"]["timings_s"], info["timings_s"]
    print(f"{args.n} x {args.d} float16, k={args.k}, keep {1 - args.rate:.0%}, "
          f"P={args.shards}, engine={args.engine}, {cores} CPUs; load average at the end "
          f"of each run: single {single['load_avg'][0]:.2f}, distributed "
          f"{dist['load_avg'][0]:.2f}")
    print("| | single machine `prune` | distributed |\n|---|---|---|")
    print(f"| total | {single['seconds']:.1f} s | **{dist['seconds']:.1f} s** "
          f"({dist['seconds'] / single['seconds']:.2f}x; target <= 1.5x) |")
    print(f"| kNN graph | {st['knn']:.1f} s | partition {dt['partition']:.1f} s + rows "
          f"{dt['rows']:.1f} s + graph {dt['graph']:.1f} s |")
    print(f"| forward / select | {st['forward']:.1f} / {st['select']:.1f} s | "
          f"{dt['forward']:.1f} / {dt['select']:.1f} s ({info['rounds']} rounds) |")
    print(f"| Ray start and stop, input checks | | "
          f"{dist['seconds'] - sum(dt.values()):.1f} s |")
    print("| bytes between shards | | " + f"{info['bytes_sent'] / 2**20:.1f} MiB (" +
          ", ".join(f"{k} {v / 2**20:.1f}" for k, v in info["bytes_by_stage"].items()) +
          f"); {info['nnz']} edges |")
    print(f"| peak RSS | {single['peak_rss_bytes'] / GIB:.2f} GiB | driver "
          f"{dist['peak_rss_bytes'] / GIB:.2f} GiB; workers " +
          ", ".join(f"{b / GIB:.2f}" for b in workers) +
          f" GiB (target single / P + 1 GiB = {target:.2f}) |")
    for stage, peaks in info.get("worker_peak_rss_by_stage", {}).items():
        print(f"| worker peak RSS, {stage} | | " + ", ".join(f"{b / GIB:.2f}" for b in peaks) +
              " GiB |")
    print(f"| same ranking | | {same} |")
    print("projection (see project() for the assumptions):")
    for row in project(args.n, args.d, args.shards, cores, dist):
        print(f"  {row['rows'] / 1e6:.0f}M x {row['d']}: {row['nodes']} nodes "
              f"({row['workers']} workers): ~{row['rounds']} rounds, traffic "
              f"{row['traffic_GiB']:.1f}-{row['traffic_max_GiB']:.1f} GiB, "
              f"{row['worker_GiB']:.2f} GiB a worker, {row['hours_fixed_lists']:.2f} h "
              f"(fixed lists) / {row['hours_default_lists']:.2f} h (default lists)")


if __name__ == "__main__":
    main()
