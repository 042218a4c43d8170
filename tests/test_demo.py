"""d2fast.demo: data fallback, coreset selection, fixed-length retraining, table and figure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import d2fast
from d2fast import datasets, demo

torch.set_num_threads(1)


class _Counter:
    """Stands in for the tqdm bar: counts steps."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, k: int) -> None:
        self.n += k

    def set_description(self, text: str) -> None:
        pass


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def test_run_demo_falls_back_to_digits(tmp_path, capsys):
    torch.set_num_threads(2)
    try:
        out = tmp_path / "demo.png"
        summary = demo.run_demo(data_dir=str(tmp_path / "none"), quick=True, rates=(0.5, 0.9),
                                out=str(out), progress=False)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(1)
    captured = capsys.readouterr()
    assert "apt-get install dataset-fashion-mnist" in captured.err
    assert captured.out.strip() == demo.format_table(summary)
    n = summary["n_train"]
    assert summary["dataset"] == "digits" and n == 1348 and summary["n_test"] == 449
    assert [(r["rate"], r["method"]) for r in summary["results"]] == \
        [(rate, m) for rate in (0.5, 0.9) for m in demo.METHODS]
    for r in summary["results"]:
        assert r["n_keep"] == int((1 - r["rate"]) * n + 1e-9)
        assert 0.5 < r["accuracy"] <= 1.0 and r["select_s"] >= 0 and r["train_s"] > 0
        assert r["recipe"] == demo.recipe(r["method"], r["rate"], 0)
    assert demo.recipe("d2", 0.9, 0)["hard_prune"] == demo.hard_prune_for(0.9) > 0
    assert summary["embedding"] == "penultimate layer, L2-normalised rows"
    assert summary["full"]["accuracy"] > 0.85
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_rate_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="rate == 1.0"):
        demo.run_demo(data_dir=str(tmp_path), rates=(0.5, 1.0), out=None, progress=False)


def test_select_calls_the_library(digits):
    rng = np.random.default_rng(0)
    emb, scores = rng.normal(size=(400, 6)), rng.random(400)
    for rate in (0.3, 0.7, 0.9):
        beta = demo.hard_prune_for(rate)
        np.testing.assert_array_equal(demo._select("d2", emb, scores, rate, 0),
                                      d2fast.prune(emb, scores, k=10, rate=rate, hard_prune=beta))
        np.testing.assert_array_equal(demo._select("random", emb, scores, rate, 4),
                                      d2fast.baselines.random(emb, scores, rate, seed=4))
        np.testing.assert_array_equal(
            demo._select("ccs", emb, scores, rate, 4),
            d2fast.baselines.ccs(emb, scores, rate, hard_prune=beta, seed=4))
        # the sidecar's recipe reproduces each selection
        np.testing.assert_array_equal(demo._select("d2", emb, scores, rate, 0),
                                      d2fast.prune(emb, scores, rate=rate,
                                                   **demo.recipe("d2", rate, 0)))
        np.testing.assert_array_equal(demo._select("ccs", emb, scores, rate, 4),
                                      d2fast.baselines.ccs(emb, scores, rate,
                                                           **demo.recipe("ccs", rate, 4)))
        np.testing.assert_array_equal(demo._select("random", emb, scores, rate, 4),
                                      d2fast.baselines.random(emb, scores, rate,
                                                              **demo.recipe("random", rate, 4)))
    assert [demo.hard_prune_for(r) for r in (0.3, 0.5, 0.7, 0.9)] == [0.0, 0.0, 0.1, 0.2]


def test_retrain_runs_the_fixed_number_of_steps(digits):
    xtr, ytr, xte, yte = digits
    setting = demo.Setting(None, (32, 16), epochs=2, iterations=37, batch=64)
    counter = _Counter()
    trainer = demo._Trainer(xtr, ytr, xte, yte, 10, setting, 0, counter)
    for keep in (np.arange(len(xtr)), np.arange(20)):  # many epochs of 20 rows, or < 1 of all
        before = counter.n
        acc, seconds = trainer.retrain(keep, "x")
        assert counter.n - before == 37 and 0.0 <= acc <= 1.0
    again, _ = trainer.retrain(np.arange(20), "x")
    assert again == acc  # same initialisation and batch order: deterministic


def test_score_run_embeddings_and_scores(digits):
    xtr, ytr, xte, yte = digits
    setting = demo.Setting(None, (32, 16), epochs=3, iterations=1, batch=64)
    counter = _Counter()
    emb, scores = demo._Trainer(xtr, ytr, xte, yte, 10, setting, 0, counter).score_run()
    assert counter.n == 3 * -(-len(xtr) // 64)
    assert emb.shape == (len(xtr), 16) and scores.shape == (len(xtr),)
    norms = np.linalg.norm(emb, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    assert np.isfinite(scores).all() and scores.min() == 0.0  # max(aum) - aum


def test_table_and_plot(tmp_path):
    results = [{"rate": r, "method": m, "n_keep": int(100 * (1 - r)), "accuracy": 0.8 - r / 10,
                "select_s": 0.01, "train_s": 1.0} for r in (0.3, 0.9) for m in demo.METHODS]
    summary = {"dataset": "fashion", "n_train": 100, "n_test": 50, "model": "MLP 4-3-2",
               "score": "difficulty('aum')", "score_epochs": 2, "score_run_s": 1.0,
               "iterations": 10, "batch": 8,
               "full": {"n_keep": 100, "accuracy": 0.9, "train_s": 2.0}, "results": results}
    lines = demo.format_table(summary).splitlines()
    assert lines[0].startswith("Fashion-MNIST: 100 train / 50 test rows")
    assert lines[2].split() == ["0.0", "full", "100", "0.9000", "2.0"]
    assert lines[3].split() == ["0.3", "d2", "70", "0.7700", "0.010", "1.0"]
    assert len(lines) == 3 + len(results)
    demo.plot(summary, str(tmp_path / "p.png"))
    from matplotlib.image import imread

    assert imread(tmp_path / "p.png").shape[:2] == (440, 640)
