"""Speed ratios of d2fast, every ratio measured within one run on one machine.

    python benchmarks/compare.py            # n = 200k / 10M / 50k, a few minutes
    python benchmarks/compare.py --quick    # n = 20k / 1M / 10k, under a minute

Sections:
1. cpp and numba against the NumPy reference on one graph (forward, select, both, and
   ``Graph.permuted``, the renumbering ``prune`` runs when forwarded scores tie), with a
   check that all backends return identical scores, picks and graphs. When the reference select
   would take longer than ``--ref-budget`` seconds, it runs on a prefix of the picks and
   its time is extrapolated linearly per pick (each pick of the reference loop costs
   O(n), the same for every pick); the prefix picks are checked.
2. forward + select on a 10M-node union graph (cpp) against ``np.argsort`` of 10M float64
   (target: <= 3x); the union ``Graph.from_knn`` build and ``Graph.permuted`` at 10M for
   information.
3. ``prune`` from embeddings (n = 50k, d = 64, k = 5, rate = 0.7) against the exact faiss
   search alone, ``faiss.knn(X, X, k + 1)`` (target: overhead <= 10 %).

Times are wall times (``time.perf_counter``), the best of ``--repeat`` runs for the short
calls. Thread counts are not set here: OMP_NUM_THREADS / NUMBA_NUM_THREADS apply.
The 1-minute load average is printed per section: a load above the core count while this
script runs means other processes shared the cores and the times are disturbed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

import d2fast

K = 5
KEEP = 0.3
RATE = 0.7
SEED = 0


# ----------------------------------------------------------------------------- helpers
def best_of(func, repeat):
    """(best wall time in seconds, result of the last call) over ``repeat`` calls."""
    times, out = times_of(func, repeat)
    return min(times), out


def times_of(func, repeat):
    """(wall times in seconds of ``repeat`` calls, result of the last call)."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return times, out


def spread(times):
    """'best of N, worst W' for a list of times (the noise of the machine shows here)."""
    if len(times) == 1:
        return "1 run"
    return f"best of {len(times)}, worst {fmt_t(max(times)).strip()}"


def random_knn(n, k=K, seed=SEED):
    """Random kNN-like lists: ids int64 (n, k) without self matches, float32 distances."""
    rng = np.random.default_rng(seed)
    I = np.arange(n, dtype=np.int64)[:, None] + rng.integers(1, n, size=(n, k))
    I %= n
    D = 2.0 * rng.random((n, k), dtype=np.float32)
    return I, D


def clustered(n, d, n_clusters=100, seed=SEED):
    """Clustered Gaussian embeddings, float32 (n, d): unit-normal centres, noise 0.25."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d), dtype=np.float32)
    emb = centres[rng.integers(0, n_clusters, size=n)]
    emb += np.float32(0.25) * rng.standard_normal((n, d), dtype=np.float32)
    return emb


def fmt_t(seconds):
    if seconds >= 1.0:
        return f"{seconds:8.2f} s "
    return f"{seconds * 1e3:8.1f} ms"


def load():
    return f"load avg (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def section(title):
    print(f"\n== {title}   [{load()}]", flush=True)


def row(label, value, note=""):
    print(f"  {label:<52} {value}{('   ' + note) if note else ''}", flush=True)


def warm_up(backends):
    """Load every backend (numba compiles here) so no timing includes it."""
    I, D = random_knn(64)
    for b in backends:
        g = d2fast.Graph.from_knn(I, D, drop_self=False, backend=b)
        d2fast.select(g, d2fast.forward(g, np.ones(64), backend=b), 8, backend=b)
        g.permuted(np.arange(64)[::-1], backend=b)


# ----------------------------------------------------------------------------- machine
def machine_facts():
    import faiss

    print("== machine")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    row("cores (os.cpu_count / usable)", f"{os.cpu_count()} / {affinity}")
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "D2FAST_BACKEND"):
        row(var, os.environ.get(var, "(unset)"))
    row("backends available", ", ".join(d2fast.backends()))
    for name, why in d2fast.backends_missing().items():
        row(f"backend {name} missing", why)
    if "cpp" in d2fast.backends():
        from d2fast import _core

        row("cpp OpenMP threads (omp_get_max_threads)", _core.max_threads())
    if "numba" in d2fast.backends():
        import numba

        row("numba version / threads", f"{numba.__version__} / {numba.config.NUMBA_NUM_THREADS}")
    row("python / platform", f"{platform.python_version()} / {platform.platform()}")
    row("numpy / faiss / d2fast", f"{np.__version__} / {faiss.__version__} / "
        f"{d2fast.__version__}")
    row("faiss OpenMP threads", faiss.omp_get_max_threads())
    row("start", f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {load()}")


# ----------------------------------------------------------------------------- section 1
def backends_vs_reference(n, repeat, ref_budget, summary):
    section(f"1. backends vs the NumPy reference, n={n:,}, k={K} union (random ids), "
            f"keep {KEEP:.0%}")
    I, D = random_knn(n)
    g = d2fast.Graph.from_knn(I, D, graph="union", drop_self=False)
    del I, D
    rng = np.random.default_rng(SEED + 1)
    scores = rng.random(n)
    n_keep = int(KEEP * n)
    row("graph", f"{g}, {g.nnz / g.n:.2f} edges per node; n_keep={n_keep:,}")
    fast = [b for b in ("cpp", "numba") if b in d2fast.backends()]

    # forward: the reference fully, the fast backends best of `repeat`
    t_fwd, fwd = {}, {}
    t_fwd["numpy"], fwd["numpy"] = best_of(
        lambda: d2fast.forward(g, scores, backend="numpy"), 1)
    ts_fwd, ts_sel = {}, {}
    for b in fast:
        ts_fwd[b], fwd[b] = times_of(lambda: d2fast.forward(g, scores, backend=b), repeat)
        t_fwd[b] = min(ts_fwd[b])
    for b in ["numpy"] + fast:
        same = "" if b == "numpy" else (
            "identical to reference" if np.array_equal(fwd[b], fwd["numpy"]) else
            f"DIFFERS from reference in {np.count_nonzero(fwd[b] != fwd['numpy']):,} "
            f"entries, max |diff| {np.max(np.abs(fwd[b] - fwd['numpy'])):.3g}")
        row(f"forward  {b}", fmt_t(t_fwd[b]),
            "1 run" if b == "numpy" else f"{spread(ts_fwd[b])}; {same}")

    # select on the reference's forward output
    passed = fwd["numpy"]
    t_sel, picks = {}, {}
    for b in fast:
        ts_sel[b], picks[b] = times_of(
            lambda: d2fast.select(g, passed, n_keep, backend=b), repeat)
        t_sel[b] = min(ts_sel[b])
    probe = min(n_keep, 1000)
    t_probe, _ = best_of(lambda: d2fast.select(g, passed, probe, backend="numpy"), 1)
    per_pick = t_probe / max(probe, 1)
    extrapolated = per_pick * n_keep > ref_budget
    n_ref = max(probe, min(n_keep, int(ref_budget / per_pick))) if extrapolated else n_keep
    t_ref_run, picks_ref = best_of(
        lambda: d2fast.select(g, passed, n_ref, backend="numpy"), 1)
    t_sel["numpy"] = t_ref_run * n_keep / n_ref if extrapolated else t_ref_run
    note = (f"EXTRAPOLATED: {n_ref:,} of {n_keep:,} picks took {t_ref_run:.1f} s, "
            "scaled linearly" if extrapolated else "full run")
    row("select   numpy", fmt_t(t_sel["numpy"]), f"1 run, {note}")
    for b in fast:
        ok = np.array_equal(picks[b][:n_ref], picks_ref)
        what = "picks identical to reference" if n_ref == n_keep else \
            f"first {n_ref:,} picks identical to reference"
        row(f"select   {b}", fmt_t(t_sel[b]),
            f"{spread(ts_sel[b])}; {what if ok else 'PICKS DIFFER from reference'}")
        summary.append((f"{b} vs numpy reference, n={n // 1000}k: forward",
                        t_fwd["numpy"] / t_fwd[b], "x", ""))
        summary.append((f"{b} vs numpy reference, n={n // 1000}k: select",
                        t_sel["numpy"] / t_sel[b], "x", "extrapolated ref" if extrapolated
                        else ""))
        summary.append((f"{b} vs numpy reference, n={n // 1000}k: forward+select",
                        (t_fwd["numpy"] + t_sel["numpy"]) / (t_fwd[b] + t_sel[b]), "x",
                        "extrapolated ref" if extrapolated else ""))
    if {"cpp", "numba"} <= set(fast):
        row("cpp == numba picks", str(np.array_equal(picks["cpp"], picks["numba"])))
        summary.append((f"cpp vs numba, n={n // 1000}k: forward+select",
                        (t_fwd["numba"] + t_sel["numba"]) / (t_fwd["cpp"] + t_sel["cpp"]),
                        "x", ""))
    # the renumbering of the tie path: a random permutation of the nodes
    order = np.random.default_rng(SEED + 2).permutation(n)
    t_perm, perm = {}, {}
    for b in ["numpy"] + fast:
        ts, perm[b] = times_of(lambda: g.permuted(order, backend=b),
                               1 if b == "numpy" else repeat)
        t_perm[b] = min(ts)
        same = "" if b == "numpy" else "; identical to reference" if all(
            np.array_equal(getattr(perm[b], a), getattr(perm["numpy"], a))
            for a in ("indptr", "indices", "distances")) else "; DIFFERS from reference"
        row(f"permuted {b}", fmt_t(t_perm[b]), f"{spread(ts)}{same}")
        if b != "numpy":
            summary.append((f"{b} vs numpy reference, n={n // 1000}k: Graph.permuted",
                            t_perm["numpy"] / t_perm[b], "x", ""))
    print("  speed-up over the numpy reference (reference time / backend time):")
    for b in fast:
        print(f"    {b:<6} forward {t_fwd['numpy'] / t_fwd[b]:9.1f}x   "
              f"select {t_sel['numpy'] / t_sel[b]:9.1f}x   forward+select "
              f"{(t_fwd['numpy'] + t_sel['numpy']) / (t_fwd[b] + t_sel[b]):9.1f}x"
              f"{'   (select reference extrapolated)' if extrapolated else ''}")


# ----------------------------------------------------------------------------- section 2
def large_graph_vs_argsort(n, repeat, summary):
    backend = "cpp" if "cpp" in d2fast.backends() else d2fast.backends()[0]
    section(f"2. forward + select at n={n:,} ({backend}), k={K} union (random ids), "
            f"keep {KEEP:.0%}, vs np.argsort")
    I, D = random_knn(n)
    t_build, g = best_of(lambda: d2fast.Graph.from_knn(I, D, graph="union", drop_self=False,
                                                       backend=backend), 1)
    del I, D
    row("Graph.from_knn union (information)", fmt_t(t_build), f"{g}")
    rng = np.random.default_rng(SEED + 1)
    scores = rng.random(n)
    n_keep = int(KEEP * n)

    def forward_select():
        passed = d2fast.forward(g, scores, backend=backend)
        return d2fast.select(g, passed, n_keep, backend=backend)

    ts_sort, _ = times_of(lambda: np.argsort(scores), repeat)
    ts_fs, _ = times_of(forward_select, repeat)
    ts_sort += times_of(lambda: np.argsort(scores), repeat)[0]  # before and after
    ts_fwd, passed = times_of(lambda: d2fast.forward(g, scores, backend=backend), repeat)
    ts_sel, _ = times_of(lambda: d2fast.select(g, passed, n_keep, backend=backend), repeat)
    t_sort, t_fs = min(ts_sort), min(ts_fs)
    row(f"np.argsort of {n:,} float64 (default kind)", fmt_t(t_sort),
        f"{spread(ts_sort)} (timed before and after)")
    row("forward + select", fmt_t(t_fs), spread(ts_fs))
    row("  forward alone", fmt_t(min(ts_fwd)), spread(ts_fwd))
    row("  select alone", fmt_t(min(ts_sel)), spread(ts_sel))
    row("ratio (forward + select) / argsort", f"{t_fs / t_sort:8.2f} x", "target <= 3x")
    summary.append((f"forward+select / argsort, n={n / 1e6:g}M ({backend})", t_fs / t_sort,
                    "x", "target <= 3"))
    summary.append((f"Graph.from_knn union / argsort, n={n / 1e6:g}M", t_build / t_sort, "x",
                    "information"))
    order = rng.permutation(n)
    ts_perm, _ = times_of(lambda: g.permuted(order, backend=backend), 1)
    row("Graph.permuted, random order (information)", fmt_t(min(ts_perm)),
        "the tie path's renumbering")
    summary.append((f"Graph.permuted / argsort, n={n / 1e6:g}M ({backend})",
                    min(ts_perm) / t_sort, "x", "information"))


# ----------------------------------------------------------------------------- section 3
def prune_vs_faiss(n, d, repeat, summary):
    import faiss

    section(f"3. prune(n={n:,}, d={d}, k={K}, rate={RATE}) vs faiss.knn(X, X, k + 1)")
    emb = clustered(n, d)
    scores = np.random.default_rng(SEED + 1).random(n)
    ts_faiss, ts_prune = [], []
    for _ in range(repeat):  # interleaved, so drifting load hits both alike
        ts_faiss += times_of(lambda: faiss.knn(emb, emb, K + 1), 1)[0]
        t, keep = times_of(lambda: d2fast.prune(emb, scores, k=K, rate=RATE), 1)
        ts_prune += t
    t_faiss, t_prune = min(ts_faiss), min(ts_prune)
    ts_graph, g = times_of(lambda: d2fast.knn_graph(emb, K), 1)
    ts_fwd, passed = times_of(lambda: d2fast.forward(g, scores), 3)
    ts_sel, picks = times_of(lambda: d2fast.select(g, passed, keep.size), 3)
    row("faiss.knn(X, X, k + 1)", fmt_t(t_faiss), spread(ts_faiss))
    row("prune", fmt_t(t_prune), f"{spread(ts_prune)}; keeps {keep.size:,}")
    row("  knn_graph alone", fmt_t(min(ts_graph)), spread(ts_graph))
    row("  forward alone", fmt_t(min(ts_fwd)), spread(ts_fwd))
    row("  select alone", fmt_t(min(ts_sel)), spread(ts_sel))
    pure = d2fast.prune(emb, scores, k=K, rate=RATE, hard_prune=0.0, gamma_r=0.1)
    row("  prune(hard_prune=0, gamma_r=0.1) == the 3 steps",
        str(np.array_equal(picks, pure)))
    overhead = 100.0 * (t_prune / t_faiss - 1.0)
    row("overhead of prune over the faiss search", f"{overhead:8.1f} %", "target <= 10 %")
    summary.append((f"prune overhead over faiss.knn, n={n // 1000}k d={d}", overhead, "%",
                    "target <= 10"))


# ----------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (20k / 1M / 10k) for a run under a minute")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per short timing, the best is kept (default 3)")
    parser.add_argument("--ref-budget", type=float, default=120.0,
                        help="seconds allowed for the reference select before it is "
                             "extrapolated from a prefix of the picks (default 120)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["1", "2", "3"],
                        help="sections to skip")
    args = parser.parse_args(argv)
    n_ref, n_large, n_prune = (20_000, 1_000_000, 10_000) if args.quick else \
        (200_000, 10_000_000, 50_000)
    prune_repeat = 3

    machine_facts()
    warm_up(d2fast.backends())
    summary = []
    start = time.perf_counter()
    if "1" not in args.skip:
        backends_vs_reference(n_ref, args.repeat, args.ref_budget, summary)
    if "2" not in args.skip:
        large_graph_vs_argsort(n_large, args.repeat, summary)
    if "3" not in args.skip:
        prune_vs_faiss(n_prune, 64, prune_repeat, summary)

    section(f"summary (ratios measured in this run, {time.perf_counter() - start:.0f} s)")
    for label, value, unit, note in summary:
        print(f"  {label:<52} {value:10.2f} {unit:<2} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
