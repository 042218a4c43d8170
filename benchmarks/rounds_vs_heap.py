"""Exact greedy selection: parallel rounds vs the lazy heap, on 1 and 2 threads.

    python benchmarks/rounds_vs_heap.py                 # n = 1M and 10M, k = 5, keep 30 %
    python benchmarks/rounds_vs_heap.py --n 1000000     # one size

Each thread count runs in its own process (OpenMP reads OMP_NUM_THREADS when it starts),
on the random union graph of ``benchmarks/benchmarks/common.py``; both algorithms get the
same graph and forward-passed scores, their picks are compared, and the best of
``--repeat`` wall times is printed with the ratio rounds / heap.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys


def run_one(n: int, repeat: int) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np

    import d2fast
    from benchmarks.common import best_time, n_keep, passed_scores, random_graph

    graph, scores, keep = random_graph(n), passed_scores(n), n_keep(n)
    picks = {a: d2fast.select(graph, scores, keep, algorithm=a) for a in ("heap", "rounds")}
    same = np.array_equal(picks["heap"], picks["rounds"])
    heap = best_time(lambda: d2fast.select(graph, scores, keep, algorithm="heap"), repeat)
    rounds = best_time(lambda: d2fast.select(graph, scores, keep, algorithm="rounds"), repeat)
    print(f"{n:>10} {os.environ.get('OMP_NUM_THREADS', '?'):>7} {heap:>9.2f} s "
          f"{rounds:>9.2f} s {rounds / heap:>13.2f}x  {'identical' if same else 'DIFFERENT'}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return run_one(args.child, args.repeat)
    print(f"{'n':>10} {'threads':>7} {'heap':>11} {'rounds':>11} {'rounds/heap':>14}  picks")
    for n in args.n:
        for threads in args.threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            subprocess.run([sys.executable, __file__, "--child", str(n),
                            "--repeat", str(args.repeat)], env=env, check=True)


if __name__ == "__main__":
    main()
