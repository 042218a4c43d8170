"""ivf_partition: every row in exactly one list, its nearest centroid; memmap == in memory."""
from __future__ import annotations

import numpy as np
import pytest

from d2fast import _nearest, partition
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


def _float64_nearest(X, C):
    """The float64 brute force: first argmin of ((x - c) ** 2).sum() over all centroids."""
    C64 = C.astype(np.float64)
    return np.concatenate([((X[a:a + 200, None, :].astype(np.float64) - C64[None]) ** 2)
                           .sum(-1).argmin(axis=1) for a in range(0, len(X), 200)])


def _data(kind, n, d, rng):
    if kind == "clustered":
        centres = rng.normal(size=(40, d)) * 4
        return (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, d))).astype(np.float32)
    if kind == "uniform":
        return rng.random((n, d), dtype=np.float32)
    if kind == "gaussian":
        return rng.normal(size=(n, d)).astype(np.float32) + 100  # far from the origin
    # duplicated rows on an integer grid: exact ties between rows and between centroids
    return rng.integers(0, 3, size=(n // 4, d)).astype(np.float32)[rng.integers(0, n // 4, n)]


@pytest.mark.parametrize("kind", ["clustered", "uniform", "gaussian", "ties"])
@pytest.mark.parametrize("nlist,group_min", [(40, 1024), (300, 64), (1100, 1024)])
def test_assign_rows_is_the_float64_brute_force(kind, nlist, group_min, monkeypatch):
    """The pruned assignment (grouped centroids, proof by the triangle inequality) gives
    every row the list of the float64 brute force, ties to the lower index, below and
    above the group threshold, on clustered, uniform, shifted Gaussian and tied data."""
    monkeypatch.setattr(_nearest, "GROUP_MIN", group_min)
    monkeypatch.setattr(_nearest, "_TIE_BLOCK", 7 * 65 * 8)  # near-ties 7 rows at a time
    _nearest._CACHE.clear()
    rng = np.random.default_rng(nlist)
    X = _data(kind, 4000, 8, rng)
    C = np.concatenate([X[rng.choice(len(X), nlist - nlist // 4, replace=False)],
                        partition._kmeans(X, nlist // 4, 0)])  # duplicated rows: ties
    if kind == "ties":
        C[-5:] = C[:5]  # duplicated centroids: the lower index wins
    got = partition.assign_rows(X, C, normalize=False)
    np.testing.assert_array_equal(got, _float64_nearest(X, C))


def test_the_proof_decides_most_clustered_rows(monkeypatch):
    """Grouped: most clustered rows are decided without the comparison with every centroid,
    and the result still equals the brute force."""
    seen = []
    full = _nearest.NearestCentroid._all
    monkeypatch.setattr(_nearest.NearestCentroid, "_all",
                        lambda self, x, xc, e: seen.append(len(x)) or full(self, x, xc, e))
    _nearest._CACHE.clear()
    rng = np.random.default_rng(5)
    X = _data("clustered", 20000, 16, rng)
    C = partition._train(X, 1200, 0)
    got = partition.assign_rows(X, C, normalize=False)
    assert _nearest.nearest_centroid(C).grouped and sum(seen) < 0.1 * len(X)
    np.testing.assert_array_equal(got, _float64_nearest(X, C))


def test_rows_go_to_every_centroid_once_proofs_fail(monkeypatch):
    """Once most rows seen had no proof, whole blocks are compared with every centroid;
    the lists stay the float64 brute force's, and clustered rows keep the proof."""
    seen = []
    full = _nearest.NearestCentroid._all
    monkeypatch.setattr(_nearest.NearestCentroid, "_all",
                        lambda self, x, xc, e: seen.append(len(x)) or full(self, x, xc, e))
    monkeypatch.setattr(_nearest, "GROUP_MIN", 64)
    monkeypatch.setattr(_nearest, "SWITCH_ROWS", 1000)
    rng = np.random.default_rng(3)
    for kind, switched in [("gaussian", True), ("clustered", False)]:
        X = _data(kind, 6000, 8, rng)
        C = X[rng.choice(len(X), 300, replace=False)]
        nc = _nearest.NearestCentroid(C)
        seen.clear()
        got = np.concatenate([nc(X[a:a + 1500]) for a in range(0, len(X), 1500)])
        np.testing.assert_array_equal(got, _float64_nearest(X, C))
        assert (nc.unproven > nc.seen / 2) == switched  # a grouped block is counted
        assert nc.seen == (1500 if switched else len(X))  # switched after the first block
        if switched:  # blocks 2-4 whole
            assert seen[-3:] == [1500] * 3 and sum(seen) < len(X)
        else:
            assert sum(seen) < 0.01 * len(X)


def test_assign_rows_threads_and_memmap(tmp_path):
    """The same lists on 1 and 2 faiss threads, and from a memmap."""
    import faiss

    rng = np.random.default_rng(7)
    X = _data("clustered", 30000, 16, rng)
    C = partition._train(X, 1500, 0)
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        one = partition.assign_rows(X, C, normalize=False)
        faiss.omp_set_num_threads(2)
        two = partition.assign_rows(X, C, normalize=False)
    finally:
        faiss.omp_set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.save(tmp_path / "x.npy", X)
    mm = partition.assign_rows(np.load(tmp_path / "x.npy", mmap_mode="r"), C, normalize=False)
    np.testing.assert_array_equal(mm, one)
    np.testing.assert_array_equal(np.bincount(one, minlength=1500).sum(), len(X))
