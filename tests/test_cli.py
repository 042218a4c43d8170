"""The installed ``d2fast`` console script, run in subprocesses on small files."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import d2fast
from d2fast import io

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _script() -> str:
    """The console script pip installed beside this Python (else the one on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "d2fast")
    found = beside if os.path.exists(beside) else shutil.which("d2fast")
    assert found, "the d2fast console script is not installed (pip install -e .)"
    return found


SCRIPT = _script()


def run(*args, cwd, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([SCRIPT, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def assert_one_line_error(proc, command: str, fragment: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"d2fast {command}: error: "), lines[0]
    assert fragment in lines[0], lines[0]


@pytest.fixture
def files(tmp_path):
    """Embeddings, scores and labels of 300 rows in .npy (the scores grow with a row's
    distance from the centre: no hard task for hard_prune="auto")."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 8)).astype(np.float32)
    scores = np.linalg.norm(emb, axis=1) + 0.3 * rng.normal(size=300)
    labels = rng.integers(0, 3, size=300)
    for name, arr in (("emb", emb), ("scores", scores), ("labels", labels)):
        np.save(tmp_path / f"{name}.npy", arr)
    return tmp_path, emb, scores, labels


def test_version_and_help(tmp_path):
    assert run("--version", cwd=tmp_path).stdout.strip() == f"d2fast {d2fast.__version__}"
    out = run("--help", cwd=tmp_path).stdout
    for command in ("graph", "prune", "extrapolate", "report", "demo"):
        assert command in out


def test_graph_matches_api_and_sidecar(files):
    folder, emb, _, _ = files
    run("graph", "emb.npy", "-k", 7, "--metric", "cosine", "--knn", "exact", "-q",
        "-o", "g.npz", cwd=folder)
    got = d2fast.Graph.load(folder / "g.npz")
    want = d2fast.knn_graph(emb, 7, metric="cosine", knn="exact")
    for name in ("indptr", "indices", "distances"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    record = json.loads((folder / "g.npz.json").read_text())
    assert record["command"] == ["d2fast", "graph", "emb.npy", "-k", "7", "--metric", "cosine",
                                 "--knn", "exact", "-q", "-o", "g.npz"]
    assert record["parameters"]["k"] == 7 and record["parameters"]["metric"] == "cosine"
    assert record["inputs"]["emb"]["sha256"] == io.file_info(str(folder / "emb.npy"))["sha256"]
    assert record["inputs"]["emb"]["shape"] == [300, 8]
    assert record["output"]["nnz"] == want.nnz and record["output"]["backend"] == "cpp"
    assert record["output"]["sha256"] == io.file_info(str(folder / "g.npz"))["sha256"]
    assert {"load emb", "knn_graph", "write"} <= set(record["timings_s"])
    assert record["versions"]["numpy"] == np.__version__


def test_prune_matches_api(files):
    folder, emb, scores, labels = files
    run("prune", "emb.npy", "scores.npy", "--k", 5, "--rate", 0.7, "-o", "keep.npy", cwd=folder)
    want = d2fast.prune(emb, scores, k=5, rate=0.7)  # both default to hard_prune="auto"
    np.testing.assert_array_equal(np.load(folder / "keep.npy"), want)
    record = json.loads((folder / "keep.npy.json").read_text())
    assert record["output"]["n_keep"] == 90 and record["output"]["method"] == "d2"
    run("prune", "emb.npy", "scores.npy", "--k", 5, "--rate", 0.7, "--hard-prune", 0,
        "-o", "keep0.npy", cwd=folder)
    np.testing.assert_array_equal(np.load(folder / "keep0.npy"),
                                  d2fast.prune(emb, scores, k=5, rate=0.7, hard_prune=0.0))
    record = json.loads((folder / "keep0.npy.json").read_text())
    assert {"knn_graph", "forward", "select"} <= set(record["timings_s"])

    run("graph", "emb.npy", "-k", 5, "-o", "g.npz", "-q", cwd=folder)
    run("prune", "emb.npy", "scores.npy", "--graph", "g.npz", "--rate", 0.7, "--gamma-r", 0.5,
        "-o", "keep_g.txt", cwd=folder)
    np.testing.assert_array_equal(  # hard_prune="auto" on the saved graph, as in Python
        np.loadtxt(folder / "keep_g.txt", dtype=np.int64),
        d2fast.prune(emb, scores, rate=0.7, gamma_r=0.5,
                     graph=d2fast.Graph.load(folder / "g.npz")))

    run("prune", "emb.npy", "scores.npy", "--labels", "labels.npy", "--hard-prune", 0.1,
        "--n-keep", 40, "--class-budget", "uniform", "--gamma-f", 2, "-q", "-o", "keep_l.npy",
        cwd=folder)
    np.testing.assert_array_equal(
        np.load(folder / "keep_l.npy"),
        d2fast.prune(emb, scores, k=5, n_keep=40, labels=labels, hard_prune=0.1,
                     class_budget="uniform", gamma_f=2.0))


def test_prune_baselines(files):
    folder, emb, scores, _ = files
    run("prune", "emb.npy", "scores.npy", "--method", "random", "--seed", 3, "--rate", 0.5,
        "-o", "r.npy", cwd=folder)
    np.testing.assert_array_equal(np.load(folder / "r.npy"),
                                  d2fast.baselines.random(emb, scores, 0.5, seed=3))
    run("prune", "emb.npy", "scores.npy", "--method", "ccs", "--hard-prune", 0.2,
        "--rate", 0.6, "-o", "c.npy", cwd=folder)
    np.testing.assert_array_equal(np.load(folder / "c.npy"),
                                  d2fast.baselines.ccs(emb, scores, 0.6, hard_prune=0.2))


def test_every_input_format(files):
    """The same prune from .npz, .pt, .parquet, .txt and .csv inputs as from .npy."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    folder, emb, scores, _ = files
    want = d2fast.prune(emb, scores, k=5, rate=0.5)
    np.savez_compressed(folder / "both.npz", emb=emb, scores=scores)
    torch.save({"emb": torch.from_numpy(emb)}, folder / "emb.pt")
    torch.save(torch.from_numpy(scores), folder / "scores.pt")
    pq.write_table(pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 8),
                             "scores": scores}), folder / "t.parquet")
    pq.write_table(pa.table({f"c{j}": emb[:, j] for j in range(8)}), folder / "cols.parquet")
    np.savetxt(folder / "scores.txt", scores, fmt="%.17g")
    np.savetxt(folder / "scores.csv", scores, fmt="%.17g", header="score", comments="")
    cases = [("both.npz", "both.npz", ["--emb-key", "emb", "--scores-key", "scores"]),
             ("emb.pt", "scores.pt", ["--emb-key", "emb"]),
             ("t.parquet", "t.parquet", ["--emb-key", "emb", "--scores-key", "scores"]),
             ("cols.parquet", "scores.txt", []),
             ("emb.npy", "scores.csv", [])]
    for i, (e, s, keys) in enumerate(cases):
        run("prune", e, s, *keys, "--rate", 0.5, "-q", "-o", f"k{i}.npy", cwd=folder)
        np.testing.assert_array_equal(np.load(folder / f"k{i}.npy"), want, err_msg=f"{e} {s}")


def test_extrapolate_matches_api(files):
    folder, emb, scores, _ = files
    idx = np.sort(np.random.default_rng(1).choice(300, 60, replace=False))
    np.savetxt(folder / "idx.txt", idx, fmt="%d")
    np.save(folder / "known.npy", scores[idx])
    run("extrapolate", "emb.npy", "idx.txt", "known.npy", "-k", 4, "-o", "pred.npy", "-q",
        cwd=folder)
    want = d2fast.extrapolate(emb, idx, scores[idx], method="knn", k=4)
    np.testing.assert_array_equal(np.load(folder / "pred.npy"), want)
    info = json.loads((folder / "pred.npy.json").read_text())["output"]["info"]
    assert info["method"] == "knn" and info["n_known"] == 60

    run("graph", "emb.npy", "-k", 6, "-o", "g.npz", "-q", cwd=folder)
    run("extrapolate", "emb.npy", "idx.txt", "known.npy", "--method", "gnn", "--graph", "g.npz",
        "--epochs", 30, "--seed", 2, "-o", "gnn.npy", "-q", cwd=folder)
    want = d2fast.extrapolate(emb, idx, scores[idx], method="gnn", epochs=30, seed=2,
                              graph=d2fast.knn_graph(emb, 6))
    np.testing.assert_allclose(np.load(folder / "gnn.npy"), want, rtol=1e-6, atol=1e-9)


def test_report_png(files):
    folder, emb, scores, labels = files
    np.savetxt(folder / "keep.txt", d2fast.prune(emb, scores, rate=0.5), fmt="%d")
    run("report", "emb.npy", "scores.npy", "keep.txt", "--labels", "labels.npy",
        "-o", "r.png", cwd=folder)
    from matplotlib.image import imread

    assert (folder / "r.png").read_bytes()[:8] == PNG_SIGNATURE
    height, width = imread(folder / "r.png").shape[:2]
    assert (width, height) == (1500, 420)
    summary = json.loads((folder / "r.png.json").read_text())["output"]["summary"]
    assert summary["n_keep"] == 150 and len(summary["class_kept_fraction"]) == 3


def test_force(files):
    folder = files[0]
    run("prune", "emb.npy", "scores.npy", "--n-keep", 10, "-q", "-o", "k.npy", cwd=folder)
    first = (folder / "k.npy").read_bytes()
    proc = run("prune", "emb.npy", "scores.npy", "--n-keep", 20, "-q", "-o", "k.npy",
               cwd=folder, code=2)
    assert_one_line_error(proc, "prune", "exists; pass --force")
    assert (folder / "k.npy").read_bytes() == first
    run("prune", "emb.npy", "scores.npy", "--n-keep", 20, "-q", "-o", "k.npy", "--force",
        cwd=folder)
    assert np.load(folder / "k.npy").size == 20


BAD = [  # (files to make, command line, message fragment)
    ({}, ["prune", "missing.npy", "scores.npy"], "emb: missing.npy does not exist"),
    ({"e1.npy": np.zeros(300)}, ["prune", "e1.npy", "scores.npy"], "expected 2-D (n, d)"),
    ({"s2.npy": np.zeros((300, 2))}, ["prune", "emb.npy", "s2.npy"], "expected 1-D (n,)"),
    ({"str.npy": np.array(["a"] * 300)}, ["prune", "emb.npy", "str.npy"], "holds <U1 data"),
    ({"short.npy": np.zeros(299)}, ["prune", "emb.npy", "short.npy"],
     "scores has 299 rows but emb has 300"),
    ({"nan.npy": np.full(300, np.nan)}, ["prune", "emb.npy", "nan.npy"], "NaN or inf"),
    ({"bad.npy": b"garbage"}, ["prune", "emb.npy", "bad.npy"], "cannot read bad.npy"),
    ({"x.json": b"{}"}, ["prune", "emb.npy", "x.json"], "unknown extension '.json'"),
    ({}, ["prune", "emb.npy", "scores.npy", "--rate", "1.5"], "rate == 1.5"),
    ({}, ["prune", "emb.npy", "scores.npy", "-k", "300"], "k == 300"),
    ({}, ["prune", "emb.npy", "scores.npy", "--graph", "none.npz"],
     "graph: none.npz does not exist"),
    ({"g.npz": b"PK"}, ["prune", "emb.npy", "scores.npy", "--graph", "g.npz"],
     "not a d2fast graph file"),
    ({"g.npz": {"indptr": np.array([0, 1])}}, ["prune", "emb.npy", "scores.npy", "--graph",
                                                "g.npz"], "not a d2fast graph file"),
    ({}, ["prune", "emb.npy", "scores.npy", "--knn-param", "nprobe"], "expected NAME=VALUE"),
    ({}, ["prune", "emb.npy", "scores.npy", "--knn", "ivf", "--knn-param", "pca=wide"],
     "knn_params['pca'] == 'wide'"),
    ({}, ["prune", "emb.npy", "scores.npy", "-o", "out.png"], "unknown extension '.png'"),
    ({"i.txt": b"0\n400\n", "v.txt": b"1\n2\n"}, ["extrapolate", "emb.npy", "i.txt", "v.txt"],
     "400"),
    ({"k.txt": b"0\n0\n"}, ["report", "emb.npy", "scores.npy", "k.txt", "-o", "r.png"],
     "keep repeats row id"),
]


@pytest.mark.parametrize("make, argv, fragment", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_one_line_exit_2(files, make, argv, fragment):
    folder = files[0]
    for name, content in make.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        elif isinstance(content, dict):
            np.savez(folder / name, **content)
        else:
            np.save(folder / name, content)
    if "-o" not in argv:
        argv = [*argv, "-o", "out.npy"]
    before = set(os.listdir(folder))
    proc = run(*argv, "-q", cwd=folder, code=2)
    assert_one_line_error(proc, argv[0], fragment)
    assert set(os.listdir(folder)) == before  # no output, no temporary file


def test_verbose_logs_the_hard_prune_choice(files):
    from conftest import typical_by_hand

    folder, emb = files[:2]
    far = np.linalg.norm(emb, axis=1)
    noisy = far / far.max()
    noisy[np.argsort(far)[-30:]] = 5.0  # a mode of 30 among the most atypical rows
    np.save(folder / "noisy.npy", noisy)
    proc = run("prune", "emb.npy", "noisy.npy", "--rate", 0.9, "-o", "k.npy", "-v", cwd=folder)
    # the rate term's 30 rows beyond the mode are the next most atypical: few typical
    share = typical_by_hand(emb, 5)[np.argsort(-noisy)[30:60]].mean()
    drop = 30 + int(30 * min(1.0, 2 * share))
    assert f"d2fast: hard_prune auto: {drop / 300:.4f} = drop {drop} of 300 rows; outlier " \
        "mode 0.100" in proc.stderr and "rate term 0.200" in proc.stderr and share < 0.1
    assert f"rate term scaled to {2 * share:.3f} of its rows beyond the outlier mode (typical " \
        f"share {share:.3f} / 0.5" in proc.stderr and "hard task" not in proc.stderr
    np.save(folder / "unrelated.npy", np.r_[np.linspace(0, 1, 270), np.full(30, 5.0)])
    proc = run("prune", "emb.npy", "unrelated.npy", "--rate", 0.9, "-o", "k4.npy", "-v",
               cwd=folder)  # difficulty unrelated to atypicality: a hard task
    assert "d2fast: hard_prune auto: 0.5000 = drop 150 of 300 rows; outlier mode 0.100" \
        in proc.stderr and "hard task (hardness-atypicality -0.031 < 0.2)" in proc.stderr \
        and "drops at least 0.500 of the rows" in proc.stderr  # half: the floor at <= 0
    proc = run("prune", "emb.npy", "noisy.npy", "--rate", 0.5, "-o", "k1.npy", "-v",
               cwd=folder)
    assert "d2fast: hard_prune auto: 0.1000 = drop 30 of 300 rows; outlier mode" in proc.stderr
    proc = run("prune", "emb.npy", "scores.npy", "--rate", 0.5, "-o", "k0.npy", "-v",
               cwd=folder)
    assert "d2fast: hard_prune auto: 0.0000 = drop 0 of 300 rows; no outlier mode" \
        in proc.stderr
    proc = run("prune", "emb.npy", "scores.npy", "--hard-prune", 0.1, "-o", "k3.npy", "-v",
               cwd=folder)
    assert "d2fast: hard_prune given: 0.1" in proc.stderr
    proc = run("prune", "emb.npy", "scores.npy", "--hard-prune", "most", "-o", "k2.npy",
               cwd=folder, code=2)
    assert "must be a float or 'auto'" in proc.stderr


def test_verbose_logs_the_gamma_r_choice_and_the_sidecar_records_it(files):
    folder = files[0]
    proc = run("prune", "emb.npy", "scores.npy", "--rate", 0.5, "-o", "k.npy", "-v",
               cwd=folder)
    assert "d2fast: gamma_r auto: " in proc.stderr and "stands for m = n / n_keep - 1 = 1 " \
        "rows" in proc.stderr
    keep = np.load(folder / "k.npy")
    emb, scores = np.load(folder / "emb.npy"), np.load(folder / "scores.npy")
    np.testing.assert_array_equal(keep, d2fast.prune(emb, scores, rate=0.5))
    resolved = json.load(open(folder / "k.npy.json"))["resolved"]
    assert resolved["gamma_r"] > 0 and resolved["gamma_r_reason"].startswith("auto: ")
    proc = run("prune", "emb.npy", "scores.npy", "--gamma-r", 0.1, "-o", "k1.npy", "-v",
               cwd=folder)
    assert "d2fast: gamma_r given: 0.1" in proc.stderr
    np.testing.assert_array_equal(np.load(folder / "k1.npy"),
                                  d2fast.prune(emb, scores, rate=0.5, gamma_r=0.1))
    proc = run("prune", "emb.npy", "scores.npy", "--gamma-r", "wide", "-o", "k2.npy",
               cwd=folder, code=2)
    assert "must be a float or 'auto'" in proc.stderr


def test_verbose_shows_traceback(files):
    proc = run("prune", "emb.npy", "scores.npy", "--rate", 2, "-o", "k.npy", "-v",
               cwd=files[0], code=2)
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("d2fast prune: error: rate == 2.0")


def test_progress_bar_and_quiet(files):
    folder = files[0]
    loud = run("graph", "emb.npy", "-o", "a.npz", cwd=folder)
    assert "kNN search" in loud.stderr and "100%" in loud.stderr
    assert run("graph", "emb.npy", "-o", "b.npz", "-q", cwd=folder).stderr == ""


def test_ctrl_c_leaves_no_output(tmp_path):
    """SIGINT during the kNN search: exit 130, no output, no sidecar, no temporary file."""
    emb = np.random.default_rng(0).normal(size=(40_000, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    proc = subprocess.Popen([SCRIPT, "graph", "emb.npy", "-o", "g.npz"], cwd=tmp_path,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, start = b"", time.monotonic()
    while b"kNN search" not in seen and time.monotonic() - start < 60:
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, f"stderr closed early: {seen!r}"
        seen += chunk
    time.sleep(0.3)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert b"d2fast graph: interrupted" in err and b"Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["emb.npy"]


def test_demo_quick_digits_fallback(tmp_path):
    proc = run("demo", "--quick", "--data", tmp_path / "nonexistent", "-o", "demo.png",
               "--seeds", "0,1", "--rates", "0.3,0.9", "--label-noise", 0.1, cwd=tmp_path)
    assert "apt-get install dataset-fashion-mnist" in proc.stderr
    assert "running on scikit-learn's digits instead" in proc.stderr
    table = proc.stdout.splitlines()
    assert table[0].startswith("scikit-learn digits: 1348 train / 449 test rows (10% of the "
                               "training labels flipped)")
    methods = ("d2", "d2 labels", "d2 extrap", "random", "hardest", "ccs")
    assert all(line.startswith(m + "  ") for line, m in zip(table[4:10], methods)), table
    full = float(table[2].split(": ")[1].split(" ± ")[0])
    assert full > 80  # percent; chance is 10
    png = (tmp_path / "demo.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 10_000
    out = json.loads((tmp_path / "demo.png.json").read_text())["output"]
    assert out["dataset"] == "digits" and len(out["results"]) == 2 * 2 * 6
    assert [r["n_keep"] for r in out["results"][::6]] == [943, 134] * 2  # floor((1 - rate) n)
    assert {h["rate"] for h in out["recipe"]["auto"]} == {0.3, 0.9}


def test_prune_graph_of_other_size(files):
    folder, emb, _, _ = files
    d2fast.knn_graph(emb[:100], 5).save(folder / "small.npz")
    proc = run("prune", "emb.npy", "scores.npy", "--graph", "small.npz", "-o", "k.npy",
               cwd=folder, code=2)
    assert_one_line_error(proc, "prune", "small.npz has 100 nodes but emb has 300 rows")


def test_python_dash_m_runs_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "d2fast", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"d2fast {d2fast.__version__}"


def test_string_labels_file(files):
    folder, emb, scores, labels = files
    names = np.array(["cat", "dog", "emu"])[labels]
    np.save(folder / "names.npy", names)
    run("prune", "emb.npy", "scores.npy", "--labels", "names.npy", "--rate", 0.7,
        "--hard-prune", 0.1, "--class-budget", "proportional", "-q", "-o", "keep_s.npy",
        cwd=folder)
    np.testing.assert_array_equal(np.load(folder / "keep_s.npy"),
                                  d2fast.prune(emb, scores, k=5, rate=0.7, labels=labels,
                                               hard_prune=0.1, class_budget="proportional"))
    run("prune", "emb.npy", "scores.npy", "--labels", "names.npy", "--rate", 0.7, "-q",
        "-o", "keep_c.npy", cwd=folder)  # the label check
    np.testing.assert_array_equal(np.load(folder / "keep_c.npy"),
                                  d2fast.prune(emb, scores, k=5, rate=0.7, labels=labels))


@pytest.mark.parametrize("argv,fragment", [
    (["--seed", 1], "--seed does not apply to --method d2 (d2 is deterministic)"),
    (["--method", "random", "--gamma-f", 2], "--gamma-f does not apply to --method random"),
    (["--method", "topk", "--seed", 1], "--seed does not apply to --method topk"),
    (["--method", "ccs", "--k", 7], "--k does not apply to --method ccs"),
    (["--method", "random", "--graph", "g.npz"], "--graph does not apply to --method random"),
    (["--class-budget", "uniform"], "--class-budget applies only with --labels"),
    (["--rate", 0.9999], "--rate 0.9999 keeps 0 of 300 rows: nothing to write"),
    (["--n-keep", 0], "--n-keep 0 keeps 0 of 300 rows"),
])
def test_inapplicable_options_are_errors(files, argv, fragment):
    folder = files[0]
    proc = run("prune", "emb.npy", "scores.npy", *argv, "-o", "x.npy", cwd=folder, code=2)
    assert_one_line_error(proc, "prune", fragment)
    assert not (folder / "x.npy").exists()


def test_prune_sidecar_records_resolved_values(files):
    import faiss

    from conftest import typical_by_hand
    from d2fast.budgets import Typical, resolve_hard_prune

    folder, emb, scores, _ = files
    run("prune", "emb.npy", "scores.npy", "--rate", 0.7, "-q", "-o", "keep.npy", cwd=folder)
    record = json.loads((folder / "keep.npy.json").read_text())
    resolved = record["resolved"]
    typical = Typical(np.arange(300), typical_by_hand(emb, 5))
    beta, reason = resolve_hard_prune(scores, "auto", 90, resolved["hard_prune_atypicality"],
                                      typical)
    assert resolved["hard_prune_atypicality"] > 0.2  # the fixture's: no hard task
    assert "typical share" in reason
    assert {k: resolved[k] for k in ("metric", "graph", "k", "knn", "knn_params",
                                     "normalization", "graph_source", "n_keep")} == {
        "metric": "euclidean", "graph": "union", "k": 5, "knn": "exact", "knn_params": {},
        "normalization": "none", "graph_source": "built", "n_keep": 90}
    assert (resolved["hard_prune"], resolved["hard_prune_reason"]) == (beta, reason)
    assert resolved["backend"] == d2fast.backends()[0] and resolved["faiss"] == faiss.__version__
    assert record["versions"]["faiss"] == faiss.__version__
    run("prune", "emb.npy", "scores.npy", "--knn", "ivf", "--knn-param", "nprobe=3", "-q",
        "-o", "keep_ivf.npy", cwd=folder)
    resolved = json.loads((folder / "keep_ivf.npy.json").read_text())["resolved"]
    assert resolved["knn"] == "ivf" and resolved["knn_params"]["nprobe"] == 3
    assert resolved["knn_params"]["nlist"] == d2fast.knn.default_nlist(300)
    assert resolved["knn_auto"] is None
    proc = run("prune", "emb.npy", "scores.npy", "--knn", "ivf", "--knn-param", "recall=0.95",
               "-v", "-o", "keep_auto.npy", cwd=folder)
    resolved = json.loads((folder / "keep_auto.npy.json").read_text())["resolved"]
    chosen = resolved["knn_auto"]
    assert chosen["recall_target"] == 0.95 and resolved["knn_params"]["nprobe"] == chosen["nprobe"]
    assert f"nprobe auto: {chosen['nprobe']} lists" in proc.stderr


@pytest.mark.parametrize("argv, want", [
    (["--method", "ccs"], {"hard_prune": 0.1, "n_strata": 50, "seed": 0}),
    (["--method", "kcenter", "--seed", 3], {"metric": "euclidean", "seed": 3}),
    (["--method", "random"], {"seed": 0, "class_budget": "proportional"}),
])
def test_baseline_sidecar_records_resolved_values(files, argv, want):
    folder = files[0]
    run("prune", "emb.npy", "scores.npy", *argv, "-q", "-o", "keep.npy", cwd=folder)
    assert json.loads((folder / "keep.npy.json").read_text())["resolved"] == want


def test_graph_file_records_and_checks_its_options(files):
    folder, emb, scores, labels = files
    run("graph", "emb.npy", "-k", 6, "--metric", "cosine", "-o", "g.npz", "-q", cwd=folder)
    meta = json.loads((folder / "g.npz.json").read_text())["output"]["meta"]
    assert meta == d2fast.Graph.load(folder / "g.npz").meta
    assert (meta["metric"], meta["k"], meta["graph"], meta["knn"]) == ("cosine", 6, "union",
                                                                        "exact")
    for argv, fragment in [(["-k", 5], "k=6 but k=5 was given"),
                           (["--metric", "euclidean"],
                            "metric='cosine' but metric='euclidean'"),
                           (["--graph-kind", "directed"], "graph='union' but graph='directed'"),
                           (["--knn", "hnsw"], "knn='exact' but knn='hnsw'")]:
        proc = run("prune", "emb.npy", "scores.npy", "--graph", "g.npz", *argv, "-o", "x.npy",
                   cwd=folder, code=2)
        assert_one_line_error(proc, "prune", f"--graph g.npz: graph was built with {fragment}")
    run("prune", "emb.npy", "scores.npy", "--graph", "g.npz", "-k", 6, "--metric", "cosine",
        "--labels", "labels.npy", "--hard-prune", 0.1, "--class-budget", "proportional", "-q",
        "-o", "keep.npy", cwd=folder)
    graph = d2fast.Graph.load(folder / "g.npz")
    want = d2fast.prune(emb, scores, graph=graph, labels=labels, hard_prune=0.1,
                        class_budget="proportional")
    np.testing.assert_array_equal(np.load(folder / "keep.npy"), want)
    resolved = json.loads((folder / "keep.npy.json").read_text())["resolved"]
    assert resolved["graph_source"] == "given" and resolved["metric"] == "cosine"


def test_verbose_names_the_classes(files):
    folder, emb, scores, labels = files
    np.save(folder / "names.npy", np.array(["cat", "dog", "emu"])[labels])
    proc = run("prune", "emb.npy", "scores.npy", "--labels", "names.npy", "-v", "-q",
               "--hard-prune", 0, "--class-budget", "proportional", "-o", "keep.npy",
               cwd=folder)
    for name in ("cat", "dog", "emu"):
        assert f"class '{name}': {int((np.array(['cat', 'dog', 'emu'])[labels] == name).sum())}" \
            f" rows" in proc.stderr


def test_dedup_option(files):
    folder, emb, scores, _ = files
    np.save(folder / "emb2.npy", np.r_[emb, emb])
    np.save(folder / "scores2.npy", np.r_[scores, scores])
    proc = run("prune", "emb2.npy", "scores2.npy", "--rate", 0.7, "--hard-prune", 0,
               "-o", "plain.npy", cwd=folder)
    assert "warning: 600 rows have a neighbour at distance 0" in proc.stderr
    run("prune", "emb2.npy", "scores2.npy", "--rate", 0.7, "--dedup", 0, "--hard-prune", 0,
        "-q", "-o", "dd.npy", cwd=folder)
    keep = np.load(folder / "dd.npy")
    assert keep.size == 180 and (keep < 300).all()  # the lower id of each pair
    resolved = json.loads((folder / "dd.npy.json").read_text())["resolved"]
    assert resolved["dedup"] == 0.0 and resolved["dedup_removed"] == 300


def test_class_budget_none_gives_the_labels_to_the_label_check_only(files):
    folder, emb, scores, labels = files
    run("prune", "emb.npy", "scores.npy", "--labels", "labels.npy", "--class-budget", "none",
        "--rate", 0.9, "-q", "-o", "keep.npy", cwd=folder)
    want, info = d2fast.prune(emb, scores, rate=0.9, labels=labels, class_budget=None,
                              return_info=True)
    np.testing.assert_array_equal(np.load(folder / "keep.npy"), want)
    resolved = json.loads((folder / "keep.npy.json").read_text())["resolved"]
    assert resolved["hard_prune_rescued"] == info["hard_prune_rescued"]
    assert resolved["hard_pruned"] == info["hard_pruned"] > 0
    assert resolved["hard_prune_reason"] == info["hard_prune_reason"]
    assert "label check" in resolved["hard_prune_reason"]
    assert [c["label"] for c in resolved["classes"]] == [None]
