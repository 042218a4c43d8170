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


def test_ivf_exhaustive_is_exact_and_pca_reranks_in_full_space():
    """nprobe == nlist: every list is scanned, so the result is exact search's; with a PCA
    projection the candidates are re-ranked with exact full-space keys."""
    X = knn.float32_rows(clustered(4000, 32, seed=2), normalize=False)
    exact_ids, exact_keys = knn.search(X, 8, cosine=False, method="exact")
    ids, keys = knn.search(X, 8, cosine=False, method="ivf", params={"nlist": 16, "nprobe": 16})
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_array_equal(keys, exact_keys)
    ids, keys = knn.search(X, 8, cosine=False, method="ivf",
                           params={"nlist": 40, "pca": 16, "candidates": 60})
    assert recall(ids, exact_ids) >= 0.9
    assert (np.diff(keys, axis=1) >= 0).all()
    same = ids == exact_ids
    np.testing.assert_array_equal(keys[same], exact_keys[same])


def test_pca_is_opt_in():
    assert knn.pca_dims(768, None) == 0 and knn.pca_dims(768, 0) == 0
    assert knn.pca_dims(768, 32) == 32 and knn.pca_dims(8, 32) == 8


def test_index_bytes():
    """IVF keeps no copy of the rows: 24 B a row (lists; 4 more for nprobe='auto'), a PCA
    projection, the pool table (16 B an entry) and the larger of the assignment's
    temporaries and a query block's buffers."""
    from d2fast import _ivf
    from d2fast.partition import assign_bytes

    def table(n, pool):
        nlist = knn.default_nlist(n)
        return 16 * nlist * min(nlist, pool)

    n, d = 1_000_000, 64
    rest = max(assign_bytes(d), _ivf.block_bytes(d, 10, 0))
    assert rest < 2**28
    ivf = knn.index_bytes(n, d, "ivf", None)
    assert ivf == 28 * n + table(n, 8 * 128) + rest  # 'auto': the widest pool it tries
    assert knn.index_bytes(n, d, "ivf", {"nprobe": 8}) == 24 * n + table(n, 64) + rest
    assert knn.index_bytes(n, d, "ivf", {"nprobe": 8, "pool": 300}) == \
        24 * n + table(n, 300) + rest
    # 768-d: the assignment's row copies (measured peak 4.83 GiB at 1M x 768 float16
    # with the float32 rows, 2.86 GiB); before its near-tie blocks were bounded: 11.4 GiB
    assert knn.index_bytes(n, 768, "ivf", {"nprobe": 8}) - 24 * n - table(n, 64) == \
        assign_bytes(768) < 2**30
    assert knn.index_bytes(n, d, "auto", None) == ivf
    wide, full = (knn.index_bytes(2 * n, 768, "ivf", p) - knn.index_bytes(n, 768, "ivf", p)
                  - table(2 * n, 64) + table(n, 64)
                  for p in ({"pca": 64, "nprobe": 8}, {"nprobe": 8}))
    assert wide == (24 + 4 * 64) * n and full == 24 * n
    assert knn.index_bytes(1000, d, "auto", None) == 0.0  # exact


def test_params_are_checked():
    X = clustered(500, 4)
    with pytest.raises(ValueError, match=r"knn_params has \['nprobe'\]"):
        d2fast.knn_graph(X, 3, knn="hnsw", knn_params={"nprobe": 4})
    with pytest.raises(ValueError, match=r"knn_params\['M'\] == 0"):
        d2fast.knn_graph(X, 3, knn="hnsw", knn_params={"M": 0})
    with pytest.raises(ValueError, match=r"knn_params\['pca'\] == -1"):
        d2fast.knn_graph(X, 3, knn="ivf", knn_params={"pca": -1})
    with pytest.raises(TypeError, match=r"knn_params\['partition'\] must be a d2fast.Partition"):
        d2fast.knn_graph(X, 3, knn="ivf", knn_params={"partition": "lists"})
    with pytest.raises(ValueError, match="both 'partition' and 'nlist'"):
        d2fast.knn_graph(X, 3, knn="ivf",
                         knn_params={"partition": d2fast.ivf_partition(X, 4), "nlist": 4})
    with pytest.raises(ValueError, match="metric='cosine'"):
        d2fast.knn_graph(X, 3, knn="ivf",
                         knn_params={"partition": d2fast.ivf_partition(X, 4, metric="cosine")})
    with pytest.raises(ValueError, match="of 100 rows"):
        d2fast.knn_graph(X, 3, knn="ivf", knn_params={"partition": d2fast.ivf_partition(X[:100])})
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


def _topk_case(seed: int, per_entry: bool):
    """Distances with many exact ties, a NaN, and ids in no particular order."""
    rng = np.random.default_rng(seed)
    m, L, M, c = 40, 37, 60, 7
    D = rng.integers(0, 6, size=(m, L)).astype(np.float32)  # ties everywhere
    D[3, 5] = np.nan
    ids = rng.permutation(5000)[:m * L].reshape(m, L) if per_entry else rng.permutation(L) * 3
    dest = rng.permutation(M)[:m]
    outD = np.full((M, c), np.inf, dtype=np.float32)
    outI = np.full((M, c), -1, dtype=np.int64)
    return D, ids.astype(np.int64), dest.astype(np.int64), outD, outI


@pytest.mark.parametrize("per_entry", [False, True])
@pytest.mark.parametrize("bounded", [False, True])
def test_topk_merge_backends_agree(backend, per_entry, bounded):
    """Two merges into the same rows (the chunks of a list) equal one merge of all the
    candidates: the c smallest by (distance, id), ascending, NaN never taken, nor
    distances above the row's bound."""
    D, ids, dest, outD, outI = _topk_case(3, per_entry)
    bound = np.random.default_rng(5).integers(0, 6, D.shape[0]).astype(np.float32) \
        if bounded else None
    ref = d2fast._backends.get("numpy")
    kern = d2fast._backends.get(backend)
    half = D.shape[1] // 2
    got = outD.copy(), outI.copy()
    for part in (slice(0, half), slice(half, None)):
        kern.topk_merge(np.ascontiguousarray(D[:, part]),
                        np.ascontiguousarray(ids[:, part] if per_entry else ids[part]),
                        dest, *got, bound)
    want = outD.copy(), outI.copy()
    ref.topk_merge(D, ids, dest, *want, bound)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    full = np.broadcast_to(ids, D.shape)
    for r in (0, 3, 17):  # straight from the definition
        top = bound[r] if bounded else np.inf
        pairs = sorted((float(v), int(i)) for v, i in zip(D[r], full[r]) if v <= top)[:7]
        pairs += [(np.inf, -1)] * (7 - len(pairs))
        assert [(float(v), int(i)) for v, i in zip(want[0][dest[r]], want[1][dest[r]])] == pairs
    untouched = np.setdiff1d(np.arange(outD.shape[0]), dest)
    assert np.isinf(got[0][untouched]).all() and (got[1][untouched] == -1).all()


def test_topk_merge_binding_rejects_bad_rows():
    core = pytest.importorskip("d2fast._core")
    D, ids, dest, outD, outI = _topk_case(4, False)
    bad = dest.copy()
    bad[0] = outD.shape[0]
    with pytest.raises(ValueError, match="dest"):
        core.topk_merge(D, ids, bad, outD, outI)
    with pytest.raises(ValueError, match="ids"):
        core.topk_merge(D, ids[:-1], dest, outD, outI)
    with pytest.raises(ValueError, match="bound"):
        core.topk_merge(D, ids, dest, outD, outI, np.zeros(3, np.float32))
    outD.setflags(write=False)
    with pytest.raises(ValueError):
        core.topk_merge(D, ids, dest, outD, outI)


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
    del X, Xc
    X = np.load(path, mmap_mode="r")
    rows = np.sort(np.random.default_rng(0).choice(40_000, 30_000, replace=False))
    for normalize in (False, True):  # a subset, gathered block by block (prune's hard prune)
        np.testing.assert_array_equal(knn.float32_rows(X, normalize, rows=rows),
                                      knn.float32_rows(data[rows], normalize))
        assert _resident_kib(path) == 0


def test_graph_of_a_memmap_subset_is_the_graph_of_the_copy(tmp_path):
    """prune builds the graph of its hard-pruned rows from the rows' ids, without a copy
    of them in the input's dtype: the same graph as of the copied rows."""
    from d2fast.graph import graph_of_rows

    data = clustered(3000, 16, seed=9).astype(np.float16)
    np.save(tmp_path / "emb.npy", data)
    X = np.load(tmp_path / "emb.npy", mmap_mode="r")
    rows = np.sort(np.random.default_rng(1).choice(3000, 2500, replace=False))
    for metric, method in [("euclidean", "exact"), ("cosine", "ivf")]:
        got = graph_of_rows(X, rows, 5, metric=metric, graph="union", knn=method,
                            knn_params=None, progress=False, backend="auto")
        want = d2fast.knn_graph(data[rows], 5, metric=metric, knn=method)
        for a, b in zip((got.indptr, got.indices, got.distances),
                        (want.indptr, want.indices, want.distances)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ivf_knn_on_a_partition(tmp_path, monkeypatch, metric):
    """d2fast.ivf_knn: queries = rows (any order, repeats) or all rows; a memmap, float16
    rows read list by list and a list scanned in chunks give the same result; the graph
    of knn_graph(knn='ivf') on the same partition has these lists."""
    from d2fast import _ivf

    cosine = metric == "cosine"
    X = clustered(5000, 24, seed=4)
    part = d2fast.ivf_partition(X, 60, metric=metric)
    exact_ids, _ = knn.search(knn.float32_rows(X, cosine), 10, cosine=cosine, method="exact")
    ids, keys = d2fast.ivf_knn(X, 10, part, 6)
    assert recall(ids, exact_ids) >= 0.95
    assert (ids != np.arange(len(X))[:, None]).all() and (np.diff(keys, axis=1) >= 0).all()
    rows = np.array([17, 3, 17, 4999])
    sub = d2fast.ivf_knn(X, 10, part, 6, rows=rows)
    np.testing.assert_array_equal(sub[0], ids[rows])
    np.testing.assert_array_equal(sub[1], keys[rows])
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr(_ivf, "_LIST_CHUNK", 7)  # every list read in chunks of 7 rows
    monkeypatch.setattr(_ivf, "_QUERY_BLOCK", 999)
    mm = d2fast.ivf_knn(np.load(tmp_path / "x.npy", mmap_mode="r"), 10, part, 6)
    np.testing.assert_array_equal(mm[0], ids)
    np.testing.assert_array_equal(mm[1], keys)
    g = d2fast.knn_graph(X, 10, metric=metric, graph="directed", knn="ivf",
                         knn_params={"partition": part, "nprobe": 6})
    np.testing.assert_array_equal(g.indices.reshape(-1, 10), np.sort(ids, axis=1))


@pytest.mark.parametrize("metric,shift", [("euclidean", 0.0), ("euclidean", 300.0),
                                          ("cosine", 0.0)])
def test_ivf_cell_bound_skips_lists_without_changing_the_result(monkeypatch, metric, shift):
    """Lists whose Voronoi cell is beyond a query's c-th candidate are not read, and the
    graph is the one scanning them gives; also far from the origin (shift 300: norms ~ 50x
    the neighbour distances, where float32 rounding is largest)."""
    from d2fast import _ivf

    X = clustered(6000, 16, seed=6) + np.float32(shift)
    part = d2fast.ivf_partition(X, 80, metric=metric)
    skipped = []
    bound = _ivf._cannot_enter

    def counted(*args):
        out = bound(*args)
        skipped.append((out.sum(), out.size))
        return out

    monkeypatch.setattr(_ivf, "_cannot_enter", counted)
    ids, keys = d2fast.ivf_knn(X, 10, part, 8)
    done, total = np.sum(skipped, axis=0)
    assert 0.2 * total < done < total  # it fires, and not on every list
    monkeypatch.setattr(_ivf, "_cannot_enter", lambda *a: np.zeros(a[3].size, dtype=bool))
    every = d2fast.ivf_knn(X, 10, part, 8)
    np.testing.assert_array_equal(ids, every[0])
    np.testing.assert_array_equal(keys, every[1])


@pytest.mark.parametrize("shift", [0.0, 300.0])
def test_ivf_cell_bound_is_below_every_row_of_the_list(shift):
    """_Cells.probes' bound of list j never exceeds the exact distance from the query to
    a row of list j (the lists are exact nearest-centroid lists)."""
    from concurrent.futures import ThreadPoolExecutor

    from d2fast import _ivf

    X = clustered(4000, 12, seed=7) + np.float32(shift)
    part = d2fast.ivf_partition(X, 50)
    offsets, members = part.lists()
    queries = np.sort(np.random.default_rng(0).choice(4000, 300, replace=False))
    own = part.assign[queries]
    order = np.argsort(own, kind="stable")
    cells = _ivf._Cells(part.centroids, 40, voronoi=True)
    with ThreadPoolExecutor(2) as pool:
        probes, beyond = cells.probes(X[queries[order]], own[order], 6, pool)
    X64 = X.astype(np.float64)
    fired = 0
    for i, q in enumerate(queries[order]):
        for j, h in zip(probes[i], beyond[i]):
            rows = members[offsets[j]:offsets[j + 1]]
            nearest = np.sqrt(((X64[rows] - X64[q]) ** 2).sum(axis=1).min())
            assert h <= nearest
            fired += h > 0.5 * nearest
    assert fired > 0.3 * probes.size  # not a vacuous bound


def test_ivf_knn_checks_its_input():
    X = clustered(300, 8)
    part = d2fast.ivf_partition(X, 5)
    with pytest.raises(TypeError, match="partition must be a d2fast.Partition"):
        d2fast.ivf_knn(X, 3, "lists")
    with pytest.raises(ValueError, match="partition is of 300 rows of 8 dims"):
        d2fast.ivf_knn(X[:200], 3, part)
    with pytest.raises(ValueError, match="nprobe == 0"):
        d2fast.ivf_knn(X, 3, part, 0)
    with pytest.raises(ValueError, match="rows has ids outside"):
        d2fast.ivf_knn(X, 3, part, rows=[0, 300])
    with pytest.raises(ValueError, match="candidates == 3"):
        d2fast.ivf_knn(X, 3, part, candidates=3)


def test_ivf_is_the_same_on_1_and_2_threads():
    """The graph does not depend on the thread count (faiss and BLAS threads)."""
    import faiss

    X = clustered(6000, 48, seed=5)
    before = faiss.omp_get_max_threads()
    try:
        out = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            out.append(knn.search(X, 10, cosine=False, method="ivf",
                                  params={"nlist": 50, "nprobe": 4}))
            out.append(knn.search(X, 10, cosine=False, method="ivf",
                                  params={"nlist": 50, "nprobe": 4, "pca": 16}))
    finally:
        faiss.omp_set_num_threads(before)
    for a, b in zip(out[:2], out[2:]):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("cosine", [False, True])
def test_exact_search_in_small_faiss_calls_is_the_same(monkeypatch, cosine):
    # Ctrl-C is handled between faiss calls, so the exact search splits queries and
    # database into calls of about _CALL_MADDS multiply-adds and merges the candidates
    X = np.repeat(clustered(700, 12, seed=3), 2, axis=0)  # exact ties: ids decide
    X = knn.float32_rows(X[np.random.default_rng(1).permutation(len(X))], normalize=cosine)
    queries = np.arange(0, len(X), 3, dtype=np.int64)
    database = np.arange(1, len(X), 2, dtype=np.int64)
    one_call = knn.search(X, 7, cosine=cosine, method="exact")
    one_call_sub = knn.search_database(X, queries, database, 7, cosine=cosine, method="exact")
    import faiss

    monkeypatch.setattr(faiss.cvar, "distance_compute_blas_threshold", 20)
    monkeypatch.setattr(knn, "_EXACT_QUERY_ROWS", 50)
    monkeypatch.setattr(knn, "_EXACT_DB_ROWS", 90)
    monkeypatch.setattr(knn, "_CALL_MADDS", 50 * 12 * 90)
    assert knn._exact_blocks(len(X), 12) == (50, 90)  # 28 x 16 calls a pass
    for got, want in [(knn.search(X, 7, cosine=cosine, method="exact"), one_call),
                      (knn.search_database(X, queries, database, 7, cosine=cosine,
                                           method="exact"), one_call_sub)]:
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # and both are the float64 brute force with ties to the lower id
    X64 = X[queries].astype(np.float64)
    Y64 = X[database].astype(np.float64)
    full = 1 - X64 @ Y64.T if cosine else ((X64[:, None] - Y64[None]) ** 2).sum(-1)
    full[database[None, :] == queries[:, None]] = np.inf
    order = np.lexsort((np.broadcast_to(database, full.shape), full), axis=1)[:, :7]
    np.testing.assert_array_equal(one_call_sub[0], database[order])


def test_exact_blocks_keep_faiss_on_its_blas_path():
    import faiss

    threshold = faiss.cvar.distance_compute_blas_threshold
    for n_db, d in [(60_000, 784), (10**6, 64), (100, 3), (50_000, 4096)]:
        query_rows, db_rows = knn._exact_blocks(n_db, d)
        assert query_rows * d >= threshold
        assert query_rows * db_rows * d <= max(knn._CALL_MADDS, query_rows * d)
        assert 1 <= db_rows <= n_db
