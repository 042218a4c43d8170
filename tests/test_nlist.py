"""nlist='auto' (d2fast._nlist): 2 sqrt(n) lists, or fixed-size lists where they cost half.

Above 1M rows only; here the fixed list size is made small (LIST_ROWS = 10, so 40000 rows
weigh 400 against 4000 lists)."""
import logging

import faiss
import numpy as np
import pytest

import d2fast
from d2fast import _nlist, knn
from d2fast.partition import train_centroids


def _data(kind: str, n: int = 40000, d: int = 8, seed: int = 0) -> np.ndarray:
    """'small': clusters of 10 rows, far apart (fixed-size lists fit them); 'big': 20
    clusters of 2000 rows (a query's neighbours spread over its cluster)."""
    rng = np.random.default_rng(seed)
    if kind == "small":
        centres = rng.normal(size=(n // 10, d)) * 10
        return (np.repeat(centres, 10, axis=0) + rng.normal(size=(n, d)) * 0.1).astype(np.float32)
    centres = rng.normal(size=(20, d)) * 6
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture
def small_lists(monkeypatch):
    monkeypatch.setattr(_nlist, "LIST_ROWS", 10)


def test_nlist_choices():
    """One choice up to 1M rows (2 sqrt(n) >= n / 500), two above, the fixed-size one
    capped at FINE_MAX lists, and one again where 2 sqrt(n) passes the cap."""
    assert _nlist.nlist_choices(1_000_000) == [2000]
    assert _nlist.nlist_choices(4_000_000) == [4000, 8000]
    assert _nlist.nlist_choices(10_000_000) == [6324, 20000]
    assert _nlist.nlist_choices(10**9) == [63245, _nlist.FINE_MAX]
    assert _nlist.nlist_choices(2 * 10**9) == [89442]


@pytest.mark.parametrize("kind,k,chosen", [("small", 10, 4000), ("small", 5, 400),
                                           ("big", 10, 400)])
def test_choice_follows_the_estimate(kind, k, chosen, small_lists):
    """Small separated clusters, k = 10: the fixed-size lists (4000) cost less than half;
    k = 5: less, but not half (2 sqrt(n) = 400 lists stay); big clusters: 400. The
    centroids are those of the chosen partition."""
    X = _data(kind)
    C, info = _nlist.choose_nlist(X, k, False, 0.99)
    assert info["nlist"] == chosen and info["choices"] == [400, 4000]
    work = info["work"]
    assert (_nlist.MARGIN * work[1] <= work[0]) == (chosen == 4000)
    assert work[1] < work[0] or kind == "big"  # the fine lists' estimate is lower
    np.testing.assert_array_equal(C, train_centroids(X, chosen, normalize=False))


@pytest.mark.parametrize("kind", ["small", "big"])
def test_search_reports_and_reproduces_the_choice(kind, small_lists):
    """knn.search with nlist 'auto' reports the choice, and knn_params={'nlist': chosen}
    gives the same neighbours; resolve says 'auto'."""
    X = _data(kind)
    report: dict = {}
    ids, keys = knn.search(X, 10, cosine=False, method="ivf", report=report)
    assert report["nlist"] in (400, 4000) and set(report["nlist_auto"]) == {"choices", "work"}
    again, keys2 = knn.search(X, 10, cosine=False, method="ivf",
                              params={"nlist": report["nlist"]})
    np.testing.assert_array_equal(ids, again)
    np.testing.assert_array_equal(keys, keys2)
    assert knn.resolve(len(X), 8, 10, "ivf", None)[1]["nlist"] == "auto"
    assert knn.resolve(len(X), 8, 10, "ivf", {"nlist": "auto"})[1]["nlist"] == "auto"


def test_graph_meta_and_prebuilt_check(small_lists):
    """knn_graph records the chosen nlist in knn_params and the estimate in knn_auto; the
    recorded knn_params rebuild the same graph; a prebuilt graph agrees with 'auto'."""
    X = _data("small")
    g = d2fast.knn_graph(X, k=10, knn="ivf")
    assert g.meta["knn_params"]["nlist"] == 4000
    assert g.meta["knn_auto"]["nlist"] == 4000 and g.meta["knn_auto"]["nlist_auto"]["choices"]
    params = {p: v for p, v in g.meta["knn_params"].items() if p != "partition"}
    again = d2fast.knn_graph(X, k=10, knn="ivf", knn_params=params)
    np.testing.assert_array_equal(g.indices, again.indices)
    np.testing.assert_array_equal(g.indptr, again.indptr)
    scores = np.random.default_rng(1).random(len(X))
    d2fast.prune(X, scores, k=10, rate=0.5, graph=g, knn="ivf", knn_params={"nlist": "auto"})
    with pytest.raises(ValueError, match="contradicts"):
        d2fast.prune(X, scores, k=10, rate=0.5, graph=g, knn="ivf", knn_params={"nlist": 400})


@pytest.mark.parametrize("params", [{"nprobe": 4}, {"pca": 4}, {"nlist": 400},
                                    {"nlist": None, "nprobe": 2}])
def test_no_choice_with_fixed_settings(params, small_lists):
    """nlist is 2 sqrt(n) (or as given) with a fixed nprobe, with PCA, or given."""
    n = 40000
    assert knn.resolve(n, 8, 10, "ivf", params)[1]["nlist"] == (params.get("nlist") or 400)
    assert not knn._nlist_auto(n, 8, knn._check_params("ivf", params))


def test_search_of_a_subset_uses_2_sqrt_n(small_lists):
    """Queries against a database subset: no choice (the estimate samples all rows)."""
    X = _data("small", n=20000)
    report: dict = {}
    knn.search_database(X, np.arange(0, 20000, 7), np.arange(0, 20000, 2), 5, cosine=False,
                        method="ivf", report=report)
    assert "nlist" not in report and report["nprobe"] >= 1


def test_nlist_parameter_validation():
    with pytest.raises(ValueError, match=r"knn_params\['nlist'\] == 'some'"):
        knn._check_params("ivf", {"nlist": "some"})
    assert knn._check_params("ivf", {"nlist": "auto"})["nlist"] == "auto"


def test_index_bytes_counts_the_larger_choice(small_lists):
    """Memory is estimated for the larger list count weighed (its pool table)."""
    n, d = 40000, 8
    auto = knn.index_bytes(n, d, "ivf", None)
    assert auto == knn.index_bytes(n, d, "ivf", {"nlist": 4000})
    assert auto > knn.index_bytes(n, d, "ivf", {"nlist": 400})


def test_cli_log_line(caplog):
    """`d2fast prune -v` names the choice and the estimates."""
    from d2fast import cli

    a = {"nlist": 4000, "nlist_auto": {"choices": [400, 4000], "work": [1264.0, 604.8]},
         "nprobe": 2, "pool": None, "recall_sampled": 0.995, "queries_sampled": 256,
         "recall_target": 0.99}
    with caplog.at_level(logging.INFO, logger="d2fast"):
        cli._log_knn_auto(a)
    assert "nlist auto: 4000 of [400, 4000] lists (estimated distance computations a row: " \
        "[1264.0, 604.8])" in caplog.text
    assert "nprobe auto: 2 lists among 8 x 2 centroids" in caplog.text


@pytest.mark.parametrize("cosine", [False, True])
def test_sample_neighbours_are_exact(cosine, monkeypatch):
    """The estimate's brute-force sample search equals the exact search, chunked finely
    (many chunks merged) and on tied rows."""
    monkeypatch.setattr(_nlist, "_CHUNK", 256 * 700)
    X = _data("big", n=6000)
    X[3000:3100] = X[:100]  # duplicated rows: ties to the lower id
    if cosine:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    q = np.sort(np.random.default_rng(0).choice(len(X), 256, replace=False))
    want = knn._exact(X, 10, cosine, False, "auto", queries=q)[0]
    before = faiss.omp_get_max_threads()
    try:
        for threads in (1, 2):  # each thread merges its own chunks: the same result
            faiss.omp_set_num_threads(threads)
            np.testing.assert_array_equal(_nlist.sample_neighbours(X, q, 10, cosine), want)
    finally:
        faiss.omp_set_num_threads(before)
