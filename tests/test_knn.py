"""kNN search (d2fast.knn): approximate indexes against exact search."""
from __future__ import annotations

import os

import numpy as np
import pytest

import d2fast
from d2fast import knn

from test_graph import assert_csr_invariants


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, d)) * 3
    return (centers[rng.integers(0, 40, n)] + rng.normal(size=(n, d))).astype(np.float32)


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(approx, exact)]))


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
@pytest.mark.parametrize("cosine", [False, True])
def test_approximate_recall(method, cosine):
    X = knn.float32_rows(clustered(6000, 24), normalize=cosine)
    exact_ids, exact_keys = knn.search(X, 10, cosine=cosine, method="exact")
    ids, keys = knn.search(X, 10, cosine=cosine, method=method)
    assert recall(ids, exact_ids) >= 0.95
    assert (ids != np.arange(len(X))[:, None]).all()
    found = ids >= 0
    assert (np.diff(keys, axis=1) >= 0).all()  # re-ranked: sorted by exact key
    # a neighbour found by both has the same exact key
    both = exact_ids[:, :1] == ids[:, :1]
    np.testing.assert_array_equal(keys[:, 0][both[:, 0]], exact_keys[:, 0][both[:, 0]])
    assert found.mean() > 0.99


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_approximate_graph_is_valid(method):
    emb = clustered(3000, 16, seed=1)
    for graph in ("union", "directed"):
        g = d2fast.knn_graph(emb, 5, graph=graph, knn=method)
        assert_csr_invariants(g)
        if graph == "directed":
            assert (g.degrees() <= 5).all() and g.degrees().mean() > 4.9


@pytest.mark.parametrize("codes", ["flat", "fp16", "sq8", "pq"])
def test_ivf_codes(codes):
    """Every list storage gives high recall after the exact re-ranking; with nprobe == nlist
    and enough candidates the search is exhaustive, so flat and fp16 are exact."""
    X = knn.float32_rows(clustered(4000, 32, seed=2), normalize=False)
    exact_ids, exact_keys = knn.search(X, 8, cosine=False, method="exact")
    ids, keys = knn.search(X, 8, cosine=False, method="ivf",
                           params={"codes": codes, "candidates": 40})
    assert recall(ids, exact_ids) >= 0.95
    assert (np.diff(keys, axis=1) >= 0).all()
    if codes in ("flat", "fp16"):
        ids, keys = knn.search(X, 8, cosine=False, method="ivf",
                               params={"codes": codes, "nlist": 16, "nprobe": 16})
        np.testing.assert_array_equal(keys, exact_keys)


def test_index_bytes_follow_the_codes():
    n, d = 1_000_000, 64
    flat = knn.index_bytes(n, d, "ivf", {"codes": "flat"})
    assert flat >= 4 * n * d
    assert knn.index_bytes(n, d, "ivf", {"codes": "sq8"}) < flat / 3
    default = knn.index_bytes(n, d, "ivf", None)  # fp16 lists
    assert 2 * n * d <= default < flat / 1.9
    assert knn.index_bytes(n, d, "auto", None) == default  # 1M rows: IVF
    assert knn.index_bytes(1000, d, "auto", None) == 0.0  # exact


def test_params_are_checked():
    X = clustered(500, 4)
    with pytest.raises(ValueError, match=r"knn_params has \['nprobe'\]"):
        d2fast.knn_graph(X, 3, knn="hnsw", knn_params={"nprobe": 4})
    with pytest.raises(ValueError, match=r"knn_params\['M'\] == 0"):
        d2fast.knn_graph(X, 3, knn="hnsw", knn_params={"M": 0})
    with pytest.raises(ValueError, match=r"knn_params\['codes'\] == 'pq4'"):
        d2fast.knn_graph(X, 3, knn="ivf", knn_params={"codes": "pq4"})
    with pytest.raises(ValueError, match=r"knn_params\['candidates'\] == 0"):
        d2fast.knn_graph(X, 3, knn="ivf", knn_params={"candidates": 0})
    with pytest.raises(ValueError, match="exact search takes no parameters"):
        d2fast.knn_graph(X, 3, knn="exact", knn_params={"M": 4})
    g = d2fast.knn_graph(X, 3, knn="ivf", knn_params={"nlist": 4, "nprobe": 4})
    assert g.n == 500  # nprobe == nlist: exhaustive, so exact
    np.testing.assert_array_equal(g.indices, d2fast.knn_graph(X, 3).indices)


def test_auto_is_exact_below_the_threshold(monkeypatch):
    X = clustered(400, 4)
    exact = d2fast.knn_graph(X, 4, knn="exact")
    np.testing.assert_array_equal(d2fast.knn_graph(X, 4).indices, exact.indices)
    monkeypatch.setattr(knn, "EXACT_MAX_ROWS", 100)
    calls = []
    monkeypatch.setattr(knn, "_approximate", lambda *a: calls.append(a[3]) or
                        knn._exact(*a[:3], False, "auto"))
    d2fast.knn_graph(X, 4)
    assert calls == ["ivf"]


@pytest.mark.parametrize("cosine", [False, True])
def test_pair_keys_backends_agree(backend, cosine):
    rng = np.random.default_rng(7)
    X = knn.float32_rows(rng.normal(size=(300, 13)), normalize=cosine)
    rows = rng.permutation(300)[:50]
    cand = rng.integers(-1, 300, size=(50, 9))
    want = d2fast._backends.get("numpy").pair_keys(X, rows, cand, cosine)
    got = d2fast._backends.get(backend).pair_keys(X, rows, cand, cosine)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    i, j = rows[3], cand[3, 0]
    if j >= 0:
        diff = X[j].astype(float) - X[i].astype(float)
        direct = 1 - X[i].astype(float) @ X[j].astype(float) if cosine else diff @ diff
        assert abs(want[3, 0] - direct) <= 1e-12


def _resident_kib(path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:  # a mapping's header line
                inside = line.rstrip().endswith(str(path))
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_float32_rows_of_a_memmap_releases_its_pages(tmp_path, dtype):
    """A memmap read in blocks is not left resident beside its float32 copy, the copy is
    exact, and a copy-on-write map keeps its private changes."""
    path = tmp_path / "emb.npy"
    data = clustered(40_000, 64).astype(dtype)
    np.save(path, data)
    X = np.load(path, mmap_mode="r")
    out = knn.float32_rows(X, normalize=False)
    np.testing.assert_array_equal(out, data.astype(np.float32))
    assert _resident_kib(path) == 0
    np.testing.assert_array_equal(X, data)  # still readable after the release
    Xc = np.load(path, mmap_mode="c")
    Xc[0, 0] = 7
    assert knn.float32_rows(Xc, normalize=False)[0, 0] == 7 and Xc[0, 0] == 7
