"""ivf_partition: every row in exactly one list, its nearest centroid; memmap == in memory."""
from __future__ import annotations

import numpy as np
import pytest

from d2fast import partition
from d2fast.knn import default_nlist
from d2fast.partition import ivf_partition


def _clusters(n=3000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d)) * 5
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_every_row_in_exactly_one_list_its_nearest(metric):
    X = _clusters()
    part = ivf_partition(X, 25, metric=metric)
    offsets, rows = part.lists()
    assert part.nlist == 25 and offsets[0] == 0 and offsets[-1] == X.shape[0]
    np.testing.assert_array_equal(np.sort(rows), np.arange(X.shape[0]))
    for j in range(part.nlist):
        members = rows[offsets[j]:offsets[j + 1]]
        assert (part.assign[members] == j).all() and (np.diff(members) > 0).all()
    Y = X / np.linalg.norm(X, axis=1, keepdims=True) if metric == "cosine" else X
    d2 = ((Y[:, None, :].astype(np.float64) - part.centroids[None]) ** 2).sum(-1)
    chosen = d2[np.arange(len(Y)), part.assign]
    assert (chosen <= d2.min(axis=1) + 1e-3 * (1 + d2.min(axis=1))).all()


def test_memmap_torch_and_default(tmp_path):
    X = _clusters(2000)
    np.save(tmp_path / "x.npy", X)
    base = ivf_partition(X, seed=3)
    assert base.nlist == default_nlist(2000) == 50
    mm = ivf_partition(np.load(tmp_path / "x.npy", mmap_mode="r"), seed=3)
    np.testing.assert_array_equal(mm.assign, base.assign)
    np.testing.assert_array_equal(mm.centroids, base.centroids)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(ivf_partition(torch.from_numpy(X), seed=3).assign, base.assign)


def test_bad_input():
    X = _clusters(100)
    with pytest.raises(ValueError, match="nlist == 0"):
        ivf_partition(X, 0)
    with pytest.raises(ValueError, match="nlist == 101"):
        ivf_partition(X, 101)
    with pytest.raises(ValueError, match="metric='manhattan'"):
        ivf_partition(X, 4, metric="manhattan")


def test_two_levels_above_flat_max(tmp_path, monkeypatch):
    """Above FLAT_MAX lists: two-level k-means; still every row in exactly one list, its
    nearest centroid, memmap == memory."""
    monkeypatch.setattr(partition, "FLAT_MAX", 8)
    X = _clusters(6000, 16, seed=1)
    part = ivf_partition(X, 64)
    offsets, rows = part.lists()
    assert part.nlist == 64 and part.centroids.shape == (64, 16) and offsets[-1] == 6000
    np.testing.assert_array_equal(np.sort(rows), np.arange(6000))
    d2 = ((X[:, None, :].astype(np.float64) - part.centroids[None]) ** 2).sum(-1)
    chosen = d2[np.arange(len(X)), part.assign]
    assert (chosen <= d2.min(axis=1) * (1 + 1e-4) + 1e-4).all()
    np.save(tmp_path / "x.npy", X)
    mm = ivf_partition(np.load(tmp_path / "x.npy", mmap_mode="r"), 64)
    np.testing.assert_array_equal(mm.assign, part.assign)
    np.testing.assert_array_equal(mm.centroids, part.centroids)
