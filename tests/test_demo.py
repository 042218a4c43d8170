"""d2fast.demo: data fallback, label noise, selections with prune's defaults, fixed-length
retraining, scoring on a subset, multi-seed table and figure."""
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
        summary = demo.run_demo(data_dir=str(tmp_path / "none"), quick=True, rates=(0.9,),
                                seeds=(0, 1), label_noise=0.2, out=str(out), progress=False)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(1)
    captured = capsys.readouterr()
    assert "apt-get install dataset-fashion-mnist" in captured.err
    assert captured.out.strip() == demo.format_table(summary)
    n = summary["n_train"]
    assert summary["dataset"] == "digits" and n == 1348 and summary["n_test"] == 449
    assert summary["label_noise"] == 0.2 and summary["seeds"] == [0, 1]
    assert [(r["seed"], r["rate"], r["method"]) for r in summary["results"]] == \
        [(s, 0.9, m) for s in (0, 1) for m in demo.METHODS]
    for r in summary["results"]:
        assert r["n_keep"] == int((1 - r["rate"]) * n + 1e-9)
        assert 0.0 <= r["accuracy"] <= 1.0 and r["select_s"] >= 0  # hardest-first: ~0 at 90 %
        assert r["recipe"] == demo.recipe(r["method"], r["rate"], r["seed"])
    assert summary["embedding"] == "penultimate layer, L2-normalised rows"
    assert all(f["accuracy"] > 0.6 for f in summary["full"])
    assert all(s["full_s"] > 0 and s["subset_s"] > 0 for s in summary["scoring"])
    chosen = summary["recipe"]["auto"]
    assert [(c["seed"], c["method"]) for c in chosen] == [
        (s, m) for s in (0, 1) for m in ("d2", "d2 labels", "d2 extrap")]
    assert all(c["hard_prune_reason"].startswith("auto: ") and c["gamma_r"] >= 0
               and c["gamma_r_reason"].startswith("auto: ") for c in chosen)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kw,match", [({"rates": (0.5, 1.0)}, "rate == 1.0"),
                                      ({"seeds": ()}, "seeds is empty"),
                                      ({"seeds": (-1,)}, "seeds"),
                                      ({"label_noise": 1.0}, "label_noise == 1.0")])
def test_bad_arguments_fail_before_training(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        demo.run_demo(data_dir=str(tmp_path), out=None, progress=False, **kw)


def test_selectors_call_prune_with_its_defaults():
    rng = np.random.default_rng(0)
    emb, scores = rng.normal(size=(400, 6)), rng.random(400)
    emb_sub, extrapolated = rng.normal(size=(400, 6)), np.r_[rng.random(360), 5 + rng.random(40)]
    labels = rng.integers(0, 4, 400)
    auto: list = []
    chosen = demo.selectors(emb_sub, extrapolated, labels, auto)
    assert tuple(chosen) == demo.METHODS
    for rate in (0.3, 0.9):
        np.testing.assert_array_equal(chosen["d2"](emb, scores, rate, None, 0),
                                      d2fast.prune(emb, scores, rate=rate))
        np.testing.assert_array_equal(chosen["d2 labels"](emb, scores, rate, None, 0),
                                      d2fast.prune(emb, scores, rate=rate, labels=labels))
        recipe = demo.recipe("d2 labels", rate, 0)
        assert recipe.pop("labels") == "the training labels"
        np.testing.assert_array_equal(chosen["d2 labels"](emb, scores, rate, None, 0),
                                      d2fast.prune(emb, scores, rate=rate, labels=labels,
                                                   **recipe))
        np.testing.assert_array_equal(chosen["d2 extrap"](emb, scores, rate, None, 0),
                                      d2fast.prune(emb_sub, extrapolated, rate=rate))
        np.testing.assert_array_equal(chosen["random"](emb, scores, rate, None, 4),
                                      d2fast.baselines.random(emb, scores, rate, seed=4))
        np.testing.assert_array_equal(chosen["hardest"](emb, scores, rate, None, 4),
                                      d2fast.baselines.topk(emb, scores, rate))
        np.testing.assert_array_equal(chosen["ccs"](emb, scores, rate, None, 4),
                                      d2fast.baselines.ccs(emb, scores, rate, seed=4))
        # the sidecar's recipe reproduces each selection
        np.testing.assert_array_equal(chosen["d2"](emb, scores, rate, None, 0),
                                      d2fast.prune(emb, scores, rate=rate,
                                                   **demo.recipe("d2", rate, 0)))
        np.testing.assert_array_equal(chosen["ccs"](emb, scores, rate, None, 4),
                                      d2fast.baselines.ccs(emb, scores, rate,
                                                           **demo.recipe("ccs", rate, 4)))
        np.testing.assert_array_equal(chosen["random"](emb, scores, rate, None, 4),
                                      d2fast.baselines.random(emb, scores, rate,
                                                              **demo.recipe("random", rate, 4)))
        np.testing.assert_array_equal(chosen["hardest"](emb, scores, rate, None, 4),
                                      d2fast.baselines.topk(emb, scores, rate,
                                                            **demo.recipe("hardest", rate, 4)))
    # what the "auto" defaults chose, as prune's info says, once per D2 selection
    _, info = d2fast.prune(emb_sub, extrapolated, rate=0.9, return_info=True)
    assert auto[8] == {"seed": 0, "rate": 0.9, "method": "d2 extrap",
                       **{k: info[k] for k in ("hard_prune", "hard_prune_reason",
                                               "hard_prune_rescued", "gamma_r",
                                               "gamma_r_reason")}}
    _, info = d2fast.prune(emb, scores, rate=0.9, labels=labels, return_info=True)
    assert auto[6] == {"seed": 0, "rate": 0.9, "method": "d2 labels",
                       **{k: info[k] for k in ("hard_prune", "hard_prune_reason",
                                               "hard_prune_rescued", "gamma_r",
                                               "gamma_r_reason")}}
    assert "label check" in auto[6]["hard_prune_reason"]
    assert len(auto) == 10  # 2 rates x (d2, d2 labels x 2, d2 extrap, d2 via its recipe)


def test_flip_labels():
    labels = np.arange(1000) % 10
    out = demo.flip_labels(labels, 0.2, 10, np.random.default_rng(3))
    assert np.count_nonzero(out != labels) == 200 and out.min() >= 0 and out.max() <= 9
    assert np.array_equal(labels, np.arange(1000) % 10)  # the input is not changed
    again = demo.flip_labels(labels, 0.2, 10, np.random.default_rng(3))
    assert np.array_equal(out, again)
    assert np.array_equal(demo.flip_labels(labels, 0.0, 10, np.random.default_rng(3)), labels)


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


@pytest.mark.parametrize("rows", [None, np.arange(0, 1348, 10)])
def test_score_run_embeddings_and_scores(digits, rows):
    xtr, ytr, xte, yte = digits
    rows = np.arange(len(xtr)) if rows is None else rows
    setting = demo.Setting(None, (32, 16), epochs=3, iterations=1, batch=64)
    counter = _Counter()
    emb, scores = demo._Trainer(xtr, ytr, xte, yte, 10, setting, 0, counter).score_run(rows)
    assert counter.n == 3 * -(-rows.size // 64)
    assert emb.shape == (len(xtr), 16) and scores.shape == (rows.size,)
    norms = np.linalg.norm(emb, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    assert np.isfinite(scores).all() and scores.min() == 0.0  # max(aum) - aum


def test_table_and_plot(tmp_path):
    results = [{"method": m, "rate": r, "seed": s, "n_keep": int(100 * (1 - r)),
                "accuracy": 0.8 - r / 10 + s / 100, "select_s": 0.01}
               for s in (0, 1) for r in (0.3, 0.9) for m in demo.METHODS]
    summary = {"dataset": "fashion", "n_train": 100, "n_test": 50, "model": "MLP 4-3-2",
               "label_noise": 0.2, "seeds": [0, 1], "score": "difficulty('aum')",
               "score_epochs": 2, "iterations": 10, "batch": 8,
               "scoring": [{"seed": s, "full_s": 2.0, "subset_s": 0.2, "extrapolate_s": 0.1}
                           for s in (0, 1)],
               "full": [{"seed": 0, "accuracy": 0.9}, {"seed": 1, "accuracy": 0.92}],
               "results": results}
    lines = demo.format_table(summary).splitlines()
    assert lines[0].startswith("Fashion-MNIST: 100 train / 50 test rows (20% of the training "
                               "labels flipped)")
    assert "full run 2.0 s; 10 % run + extrapolation 0.3 s" in lines[1]
    assert lines[2].endswith("91.00 ± 1.00")
    assert lines[4].split() == ["d2", "77.50", "±", "0.50", "71.50", "±", "0.50"]
    assert lines[-2].split()[-2:] == ["+0.00", "+0.00"]  # d2 - random
    demo.plot(summary, str(tmp_path / "p.png"))
    from matplotlib.image import imread

    assert imread(tmp_path / "p.png").shape[:2] == (440, 640)
