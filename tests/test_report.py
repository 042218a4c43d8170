"""d2fast.report: the kept-vs-pruned figure, its summary and its input checks."""
from __future__ import annotations

import numpy as np
import pytest

from d2fast import report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    n = 600
    emb = rng.normal(size=(n, 5)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1])
    scores = rng.normal(size=n)
    labels = rng.integers(0, 4, size=n)
    keep = rng.permutation(n)[:200]
    return emb, scores, labels, keep


def _png_size(path) -> tuple:
    from matplotlib.image import imread

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    height, width = imread(path).shape[:2]
    return width, height


def test_summary_matches_direct_computation(tmp_path, case):
    emb, scores, labels, keep = case
    path = tmp_path / "r.png"
    summary = report.report(emb, scores, keep, labels, path=str(path))
    kept = np.isin(np.arange(len(scores)), keep)
    assert summary["n"] == 600 and summary["n_keep"] == 200
    assert summary["kept_fraction"] == pytest.approx(200 / 600)
    assert summary["mean_score_kept"] == pytest.approx(scores[kept].mean())
    assert summary["mean_score_pruned"] == pytest.approx(scores[~kept].mean())
    for c in range(4):
        want = kept[labels == c].sum() / (labels == c).sum()
        assert summary["class_kept_fraction"][c] == pytest.approx(want)
    assert _png_size(path) == (1500, 420)  # three panels at 100 dpi


def test_without_labels_two_panels_and_other_formats(tmp_path, case):
    emb, scores, _, keep = case
    summary = report.report(emb, scores, keep, path=str(tmp_path / "r.png"))
    assert "class_kept_fraction" not in summary
    assert _png_size(tmp_path / "r.png") == (1000, 420)
    report.report(emb, scores, keep, path=str(tmp_path / "r.svg"))
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    report.report(emb, scores, keep, path=str(tmp_path / "r.pdf"))
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")


def test_edge_cases_nothing_or_everything_kept(tmp_path, case):
    emb, scores, labels, _ = case
    none = report.report(emb, scores, np.array([], dtype=np.int64), labels,
                         path=str(tmp_path / "a.png"))
    assert none["n_keep"] == 0 and none["mean_score_kept"] is None
    every = report.report(emb, scores, np.arange(600), labels, path=str(tmp_path / "b.png"))
    assert every["mean_score_pruned"] is None
    assert set(every["class_kept_fraction"].values()) == {1.0}


def test_project_2d_is_pca_of_the_sample(case):
    emb = case[0]
    rows = np.arange(0, 600, 3)
    xy = report.project_2d(emb, rows)
    X = emb[rows] - emb[rows].mean(axis=0)
    eigval, eigvec = np.linalg.eigh(X.T @ X)
    want = X @ eigvec[:, ::-1][:, :2]
    for j in range(2):  # principal axes are defined up to sign
        sign = np.sign(xy[:, j] @ want[:, j])
        np.testing.assert_allclose(sign * xy[:, j], want[:, j], atol=1e-9)
    one_column = report.project_2d(emb[:, :1], rows)
    assert (one_column[:, 1] == 0).all()


def test_memmap_and_sample_size(tmp_path, case):
    emb, scores, _, keep = case
    np.save(tmp_path / "e.npy", emb)
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    summary = report.report(mm, scores, keep, path=str(tmp_path / "m.png"), max_points=50)
    assert summary["n_keep"] == 200
    with pytest.raises(ValueError, match="max_points == 1"):
        report.report(mm, scores, keep, path=str(tmp_path / "x.png"), max_points=1)


@pytest.mark.parametrize("keep, error, message", [
    (np.array([0, 0]), ValueError, "keep repeats row id 0$"),
    (np.array([600]), ValueError, r"must lie in \[0, n\) with n=600"),
    (np.array([-1]), ValueError, r"must lie in \[0, n\)"),
    (np.array([0.5]), TypeError, "keep must be row ids"),
    (np.zeros((2, 2), dtype=int), ValueError, "expected 1-D"),
])
def test_bad_keep(tmp_path, case, keep, error, message):
    emb, scores, _, _ = case
    with pytest.raises(error, match=message):
        report.report(emb, scores, keep, path=str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_float_row_ids_are_accepted(tmp_path, case):
    """Whole-number floats (a keep list read from a text file) are row ids."""
    emb, scores, _, _ = case
    as_int = report.report(emb, scores, np.array([2, 5]), path=str(tmp_path / "a.png"))
    as_float = report.report(emb, scores, np.array([2.0, 5.0]), path=str(tmp_path / "b.png"))
    assert as_int == as_float


def test_bad_scores_and_labels(tmp_path, case):
    emb, scores, labels, keep = case
    with pytest.raises(ValueError, match=r"scores.shape == \(599,\)"):
        report.report(emb, scores[:-1], keep, path=str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match=r"labels.shape == \(3,\)"):
        report.report(emb, scores, keep, labels[:3], path=str(tmp_path / "x.png"))


def test_string_labels_are_shown_by_name(tmp_path, case):
    emb, scores, labels, keep = case
    names = np.array(["ant", "bee", "cow", "doe"])[labels]
    summary = report.report(emb, scores, keep, names, path=str(tmp_path / "r.png"))
    by_id = report.report(emb, scores, keep, labels, path=str(tmp_path / "i.png"))
    assert list(summary["class_kept_fraction"]) == ["ant", "bee", "cow", "doe"]
    assert list(summary["class_kept_fraction"].values()) == \
        list(by_id["class_kept_fraction"].values())


def test_pca_panel_keeps_pruned_rows_visible():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = np.random.default_rng(0).normal(size=(1000, 2))
    kept = np.arange(1000) < 300
    fig, ax = plt.subplots()
    report._scatter(ax, xy, kept, 1000)
    pruned_dots, kept_dots = ax.collections  # kept drawn last, on top ...
    assert pruned_dots.get_offsets().shape[0] == 700 and kept_dots.get_offsets().shape[0] == 300
    assert kept_dots.get_sizes()[0] * 4 == pruned_dots.get_sizes()[0]  # ... but smaller
    plt.close(fig)
