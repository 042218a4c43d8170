"""d2fast.distributed.prune: the same picks, in the same order, as one machine."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import d2fast
from conftest import typical_by_hand
from d2fast import budgets, distributed
from d2fast.distributed import engines, graph as graph_stage, partition
from d2fast.distributed import passing as passing_stage
from d2fast.distributed.layout import load_npz
from d2fast.passing import auto_gamma_r

N = 300


def _data(seed=0, n=N, d=6):
    """Rows and scores that grow with the distance from the centre: the hard rows are the
    atypical ones, so hard_prune='auto' drops nothing up to rate 0.5 (no hard task)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, np.linalg.norm(X, axis=1) + rng.random(n)


def _single(X, s, k=5, n_keep=None, rate=0.5, graph="union", reverse="weighted", **kw):
    """One machine: exact graph, forward, heap select with gamma_r='auto'."""
    g = d2fast.knn_graph(X, k, graph=graph, knn="exact", **kw)
    passed = d2fast.forward(g, s)
    n_keep = int((1 - rate) * X.shape[0]) if n_keep is None else n_keep
    return d2fast.select(g, passed, n_keep, gamma_r=auto_gamma_r(g, n_keep)[0],
                         reverse=reverse, algorithm="heap")


@pytest.mark.parametrize("graph", ["union", "directed"])
@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_same_picks_and_order_as_heap(graph, shards, monkeypatch):
    if shards == 3:  # CSRs built, read and transposed a few rows at a time
        monkeypatch.setattr(graph_stage, "_CSR_EDGES", 40)
        monkeypatch.setattr(passing_stage, "_EDGE_BLOCK", 50)
        monkeypatch.setattr(passing_stage, "_NODE_BLOCK", 7)
    X, s = _data()
    got = distributed.prune(X, s, 5, 0.5, knn="exact", graph=graph, shards=shards,
                            engine="local")
    np.testing.assert_array_equal(got, _single(X, s, graph=graph))


@pytest.mark.filterwarnings("ignore:.*duplicate rows")  # the tie case repeats points
@pytest.mark.parametrize("kind", ["aum", "mixed", "ties"])
@pytest.mark.parametrize("reverse", ["weighted", "absolute"])
def test_negative_scores_ties_and_n_keep(kind, reverse, monkeypatch):
    monkeypatch.setattr(passing_stage, "_EDGE_BLOCK", 50)  # graph read, transposed and
    monkeypatch.setattr(passing_stage, "_NODE_BLOCK", 7)  # updated in small blocks
    rng = np.random.default_rng(1)
    X, _ = _data(1)
    if kind == "aum":  # AUM-like: mostly negative margins
        s = rng.normal(-1.0, 0.5, N)
    elif kind == "mixed":
        s = rng.normal(size=N)
    else:  # exact ties in the scores and in the distances (repeated points)
        s = rng.integers(-1, 3, N).astype(float)
        X = np.round(rng.normal(size=(N, 2))).astype(np.float32)
    for graph in ("union", "directed"):
        for n_keep in (0, 1, 97, N):
            want = d2fast.prune(X, s, 4, n_keep=n_keep, knn="exact", graph=graph,
                                reverse=reverse)
            got = distributed.prune(X, s, 4, n_keep=n_keep, knn="exact", graph=graph,
                                    reverse=reverse, shards=3, engine="local")
            np.testing.assert_array_equal(got, want, err_msg=f"{graph} n_keep={n_keep}")
            assert got.dtype == np.int64


def test_equals_prune_exact_with_options():
    X, s = _data(2)
    kw = dict(k=6, rate=0.7, gamma_f=0.5, gamma_r=0.3, metric="cosine", mode="product",
              knn="exact", hard_prune=0.15)
    want = d2fast.prune(X, s, **kw)
    np.testing.assert_array_equal(distributed.prune(X, s, shards=4, engine="local", **kw),
                                  want)


@pytest.mark.parametrize("graph", ["union", "directed"])
@pytest.mark.parametrize("shards", [1, 2, 3])
def test_gamma_r_auto_equals_prune(graph, shards):
    """gamma_r='auto' (the default of both): the same value, reason and picks."""
    X, s = _data(15)
    for rate in (0.3, 0.7, 0.95):
        want, wi = d2fast.prune(X, s, 5, rate, knn="exact", hard_prune=0.0, graph=graph,
                                return_info=True)
        got, gi = distributed.prune(X, s, 5, rate, knn="exact", hard_prune=0.0, graph=graph,
                                    shards=shards, engine="local", return_info=True)
        np.testing.assert_array_equal(got, want, err_msg=f"rate={rate}")
        assert (gi["gamma_r"], gi["gamma_r_reason"]) == (wi["gamma_r"], wi["gamma_r_reason"])
    assert gi["gamma_r"] == 0.0 and wi["gamma_r"] == 0.0  # 95 %: m above the degree
    assert distributed.prune(X, s, 5, 0.3, knn="exact", graph=graph, shards=shards,
                             engine="local", gamma_r=0.25, return_info=True)[1][
        "gamma_r_reason"] == "given: 0.25"


@pytest.mark.parametrize("graph", ["union", "directed"])
def test_gamma_r_auto_on_a_sample_of_the_edges(graph, monkeypatch):
    """Above the sample size the shards read the one-machine sample: evenly spaced
    positions of its CSR order, which cut the shards' rows anywhere."""
    X, s = _data(16)
    full = distributed.prune(X, s, 5, 0.5, knn="exact", hard_prune=0.0, graph=graph,
                             shards=3, engine="local", return_info=True)[1]["gamma_r"]
    monkeypatch.setattr(d2fast.passing, "_GAMMA_EDGES", 101)
    want, wi = d2fast.prune(X, s, 5, 0.5, knn="exact", hard_prune=0.0, graph=graph,
                            return_info=True)
    assert wi["gamma_r"] != full  # the sample changes the value
    for shards in (2, 3, 7):
        got, gi = distributed.prune(X, s, 5, 0.5, knn="exact", hard_prune=0.0, graph=graph,
                                    shards=shards, engine="local", return_info=True)
        np.testing.assert_array_equal(got, want)
        assert gi["gamma_r"] == wi["gamma_r"], shards


def test_nothing_kept_reports_gamma_r_as_prune():
    X, s = _data()
    for gamma_r in ("auto", 0.1):
        want = d2fast.prune(X, s, n_keep=0, knn="exact", hard_prune=0.0, gamma_r=gamma_r,
                            return_info=True)[1]
        got = distributed.prune(X, s, n_keep=0, knn="exact", gamma_r=gamma_r, engine="local",
                                return_info=True)[1]
        assert (got["gamma_r"], got["gamma_r_reason"]) == (want["gamma_r"],
                                                           want["gamma_r_reason"])


def _outliers(seed=17):
    """Data whose scores have a separate mode of 40 high-score rows (auto drops them)."""
    X, s = _data(seed)
    s[np.random.default_rng(seed).choice(N, 40, replace=False)] += 10.0
    return X, s


@pytest.mark.parametrize("graph", ["union", "directed"])
@pytest.mark.parametrize("shards", [1, 2, 3])
def test_hard_prune_auto_equals_prune(graph, shards):
    """hard_prune='auto' (the default of both) drops the same rows before the graph; with
    gamma_r='auto' on the graph of the rows left: the same picks and info."""
    X, s = _outliers()
    X2, s2 = _data(17)[0], np.random.default_rng(17).random(N)  # unrelated to atypicality
    # the outlier mode; the rate term; a hard task (scores unrelated to atypicality): the
    # rate term from rate 0 with its floor of about half the rows (all 90 of the drop
    # budget at rate 0.3; more than floor(270 / 2) at 0.9)
    hard = min(N, int(N * budgets.hard_task_floor(budgets.sample_atypicality(
        X2, s2, 5, "euclidean")[0])))
    assert 135 < hard <= 150
    # at 0.9 the rate term's 60 rows are the mode's 40 and 20 more, scaled by their
    # typical share (the scores grow with atypicality: few are typical)
    share = typical_by_hand(X, 5)[np.argsort(-s)[40:60]].mean()
    rate_drop = 40 + int(20 * min(1.0, 2 * share))
    assert 40 <= rate_drop < 60
    for X, s, rate, drops in ((X, s, 0.3, 40), (X, s, 0.9, rate_drop), (X2, s2, 0.3, 90),
                              (X2, s2, 0.9, hard)):
        want, wi = d2fast.prune(X, s, 5, rate, knn="exact", graph=graph, return_info=True)
        got, gi = distributed.prune(X, s, 5, rate, knn="exact", graph=graph, shards=shards,
                                    engine="local", return_info=True)
        np.testing.assert_array_equal(got, want, err_msg=f"rate={rate}")
        keys = ("hard_prune", "hard_prune_reason", "hard_prune_atypicality", "hard_pruned",
                "gamma_r", "gamma_r_reason")
        assert [gi[key] for key in keys] == [wi[key] for key in keys]
        assert gi["hard_pruned"] == drops
        assert ("hard task" in gi["hard_prune_reason"]) == (drops in (90, hard))
    kw = dict(knn="exact", graph=graph, n_keep=120, hard_prune=0.25, gamma_r=0.1)
    got, gi = distributed.prune(X, s, 5, shards=shards, engine="local", return_info=True,
                                **kw)
    np.testing.assert_array_equal(got, d2fast.prune(X, s, 5, **kw))
    assert gi["hard_pruned"] == 75 and gi["hard_prune_reason"] == "given: 0.25"


def test_hard_prune_over_shard_files_ivf_and_resume(tmp_path, monkeypatch):
    """Shard files read through the pool (IVF trained on the rows left, as one machine);
    a resumed run and a run of another hard_prune in the same workdir."""
    X, s = _outliers(18)
    X = np.concatenate([X] * 4) + np.random.default_rng(0).normal(
        0, 0.1, (4 * N, X.shape[1])).astype(np.float32)
    s = np.concatenate([s] * 4)
    for i, (a, b) in enumerate([(0, 500), (500, 700), (700, 4 * N)]):
        np.save(tmp_path / f"emb-{i}.npy", X[a:b])
        np.save(tmp_path / f"s-{i}.npy", s[a:b])
    kw = dict(knn="ivf", knn_params={"nlist": 6, "recall": 0.9}, rate=0.8)  # nprobe 'auto'
    want, wi = d2fast.prune(X, s, 5, return_info=True, **kw)
    # the rate term, 0.15 of 1200 rows: the mode's 160 and 20 more scaled by their typical
    # share (exact, as every sample's graph)
    share = typical_by_hand(X, 5)[np.argsort(-s, kind="stable")[160:180]].mean()
    assert wi["hard_pruned"] == 160 + int(20 * min(1.0, 2 * share)) and 0 < share < 0.5
    files = dict(emb=sorted(str(p) for p in tmp_path.glob("emb-*.npy")),
                 scores=sorted(str(p) for p in tmp_path.glob("s-*.npy")))
    wd = str(tmp_path / "wd")
    with monkeypatch.context() as m:
        _interrupt(m, "forward_run", 1)
        with pytest.raises(KeyboardInterrupt):
            distributed.prune(files["emb"], files["scores"], 5, engine="local", workdir=wd,
                              **kw)
    got, gi = distributed.prune(files["emb"], files["scores"], 5, engine="local", workdir=wd,
                                return_info=True, **kw)
    np.testing.assert_array_equal(got, want)
    assert gi["shards"] == 3 and gi["resumed"] == ["partition", "rows", "graph"]
    assert (gi["hard_prune"], gi["gamma_r"]) == (wi["hard_prune"], wi["gamma_r"])
    assert gi["knn_auto"] == wi["knn_auto"] and gi["knn_auto"]["recall_target"] == 0.9
    assert gi["knn_params"] == {key: wi["knn_params"][key]  # the choice, read back
                                for key in ("nlist", "nprobe", "pool", "candidates")}
    with pytest.raises(ValueError, match="holds a run of other inputs"):
        distributed.prune(files["emb"], files["scores"], 5, engine="local", workdir=wd,
                          **{**kw, "rate": 0.8, "hard_prune": 0.3})


def _assembled(workdir):
    """The global graph (node = global row id) and forward scores from a run's files."""
    rows, cols, dist, passed = [], [], [], {}
    for name in sorted(os.listdir(os.path.join(workdir, "graph"))):
        f = load_npz(os.path.join(workdir, "graph", name))
        rows.append(np.repeat(f["gid"], np.diff(f["indptr"])))
        cols.append(f["nbr_gid"])
        dist.append(f["distances"])
        fwd = np.load(os.path.join(workdir, "forward", name.replace(".npz", ".npy")))
        passed.update(zip(f["gid"].tolist(), fwd.tolist()))
    from scipy import sparse

    r, c, d = np.concatenate(rows), np.concatenate(cols), np.concatenate(dist)
    n = len(passed)
    csr = sparse.csr_matrix((d, (r, c)), shape=(n, n))
    return csr, np.array([passed[i] for i in range(n)])


@pytest.mark.parametrize("csr_edges", [40, 1 << 22])
def test_shard_files_hold_the_single_machine_graph_and_forward(tmp_path, monkeypatch,
                                                                csr_edges):
    monkeypatch.setattr(graph_stage, "_CSR_EDGES", csr_edges)  # 4 rows a block, or all
    X, s = _data(3)
    distributed.prune(X, s, 5, 0.5, knn="exact", shards=3, engine="local",
                      workdir=str(tmp_path))
    csr, passed = _assembled(str(tmp_path))
    g = d2fast.knn_graph(X, 5, knn="exact")
    np.testing.assert_array_equal(csr.indptr, g.indptr)
    np.testing.assert_array_equal(csr.indices, g.indices)
    np.testing.assert_array_equal(csr.data, g.distances)
    np.testing.assert_array_equal(passed, d2fast.forward(g, s))


def test_range_files_read_slices_and_ids_across_files(tmp_path):
    from d2fast.distributed.layout import RangeFiles

    full = np.arange(40, dtype=np.int64).reshape(20, 2) * 3
    ranges = [0, 5, 5, 12, 20]  # one empty file
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.npy"))
        np.save(paths[-1], full[ranges[i]:ranges[i + 1]])
    rf = RangeFiles(paths, ranges)
    assert rf.shape == (20, 2) and len(rf) == 20 and rf.dtype == np.int64
    for a, b in ((0, 20), (3, 14), (5, 12), (5, 5), (12, 13), (19, 20), (20, 20), (7, 3)):
        np.testing.assert_array_equal(rf[a:b], full[a:b], err_msg=f"{a}:{b}")
    np.testing.assert_array_equal(rf[:], full)
    ids = np.array([19, 0, 5, 4, 12, 11, 5])
    np.testing.assert_array_equal(rf[ids], full[ids])
    np.testing.assert_array_equal(rf[ids.reshape(7, 1)], full[ids.reshape(7, 1)])
    assert rf[np.empty(0, dtype=np.int64)].shape == (0, 2)
    got = rf[ids]
    got[:] = -1  # a new array, not a view of the files
    np.testing.assert_array_equal(rf[ids], full[ids])
    with pytest.raises(IndexError):
        rf[np.array([20])]
    with pytest.raises(IndexError):
        rf[0:10:2]


def test_range_files_given_to_numpy_are_read_in_one_pass(tmp_path, monkeypatch):
    """numpy reads a RangeFiles through __array__, one read a file: not item by item (a
    file opened an item: minutes for the 2M-row mapping nprobe='auto' read)."""
    from d2fast.distributed import layout
    from d2fast.distributed.layout import RangeFiles

    full = np.arange(30, dtype=np.int64)[::-1].copy()
    paths = []
    for i, (a, b) in enumerate([(0, 10), (10, 30)]):
        paths.append(str(tmp_path / f"{i}.npy"))
        np.save(paths[-1], full[a:b])
    rf, reads = RangeFiles(paths, [0, 10, 30]), []
    for name in ("npy_rows", "npy_take"):
        real = getattr(layout, name)
        monkeypatch.setattr(layout, name, lambda *a, real=real: reads.append(1) or real(*a))
    np.testing.assert_array_equal(np.searchsorted(np.arange(0, 40, 4), rf),
                                  np.searchsorted(np.arange(0, 40, 4), full))
    target = np.zeros(30)
    target[rf] = np.arange(30)
    np.testing.assert_array_equal(target[full], np.arange(30))
    assert 0 < len(reads) <= 8  # a read a file a conversion (item by item: 60)


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_partition_mapping_is_kept_per_shard(tmp_path, shards):
    """No file (and no driver array) over all n rows: the mapping is in per-shard files,
    node ids are contiguous per shard, by (list, global id) within it, and the two
    mappings are inverse permutations."""
    X, s = _data(13, n=500)
    wd = str(tmp_path)
    distributed.prune(X, s, 5, 0.5, knn="ivf", shards=shards, engine="local", workdir=wd,
                      knn_params={"nlist": 12, "nprobe": 3})
    saved = load_npz(os.path.join(wd, "partition.npz"))
    assert sorted(saved) == ["bounds", "centroids", "cuts", "list_offsets"]
    assert saved["bounds"].size == saved["cuts"].size == shards + 1
    order = [np.load(os.path.join(wd, "order", f"shard-{p:05d}.npy")) for p in range(shards)]
    node_of = [np.load(os.path.join(wd, "node_of", f"shard-{p:05d}.npy"))
               for p in range(shards)]
    assert max(a.size for a in order + node_of) < 500 or shards == 1
    order, node_of = np.concatenate(order), np.concatenate(node_of)
    np.testing.assert_array_equal(node_of[order], np.arange(500))
    part = partition.load(wd)
    offsets, rows = part.lists()
    np.testing.assert_array_equal(order, rows)  # by list, then by global row id
    np.testing.assert_array_equal(offsets, saved["list_offsets"])
    from d2fast.partition import assign_rows

    np.testing.assert_array_equal(part.assign, assign_rows(X, part.centroids, False))
    np.testing.assert_array_equal(np.diff(saved["bounds"]) > 0, True)
    assert np.isin(saved["bounds"], saved["list_offsets"]).all()  # whole lists per shard


def test_ranking_is_written_in_pieces_one_a_round(tmp_path):
    X, s = _data(14)
    got, info = distributed.prune(X, s, 5, 0.5, knn="exact", shards=3, engine="local",
                                  workdir=str(tmp_path), return_info=True)
    pieces = [load_npz(str(tmp_path / "rounds" / f"picks-{r:06d}.npz"))
              for r in range(info["rounds"])]
    gids = np.concatenate([f["gids"] for f in pieces])
    assert len(pieces) >= 2 and all(f["gids"].size for f in pieces)
    by_stage = info["bytes_by_stage"]
    assert sum(by_stage.values()) == info["bytes_sent"] and by_stage["graph"] > 0
    assert set(by_stage) <= {"partition", "rows", "graph", "forward", "select"}
    assert gids.size == np.unique(gids).size
    scores = np.concatenate([f["scores"] for f in pieces])
    first = min(got.size, gids.size)  # the rest: the negative phase
    np.testing.assert_array_equal(gids[np.lexsort((gids, -scores))][:first], got[:first])


def test_ivf_probing_every_list_is_exact():
    X, s = _data(4)
    got = distributed.prune(X, s, 5, 0.5, knn="ivf", shards=3, engine="local",
                            knn_params={"nlist": 8, "nprobe": 8})
    np.testing.assert_array_equal(got, _single(X, s))


def test_ivf_graph_is_ivf_knn_on_the_same_partition_for_any_shard_count(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(graph_stage, "_SEARCH_BLOCK", 37)  # queries searched in blocks
    monkeypatch.setattr(graph_stage, "_CSR_EDGES", 100)
    X, s = _data(5, n=400)
    params = {"nlist": 10, "nprobe": 2}
    runs = {}
    for shards in (1, 3, 5):
        wd = str(tmp_path / str(shards))
        runs[shards] = distributed.prune(X, s, 5, 0.5, knn="ivf", shards=shards,
                                         engine="local", workdir=wd, knn_params=params)
    np.testing.assert_array_equal(runs[1], runs[3])
    np.testing.assert_array_equal(runs[1], runs[5])
    # one machine: knn_graph(knn='ivf') on the run's partition (centroids and lists)
    part = partition.load(str(tmp_path / "3"))
    want = d2fast.knn_graph(X, 5, knn="ivf", knn_params={"partition": part, "nprobe": 2,
                                                        "pca": 0})
    csr, passed = _assembled(str(tmp_path / "3"))
    np.testing.assert_array_equal(csr.indptr, want.indptr)
    np.testing.assert_array_equal(csr.indices, want.indices)
    np.testing.assert_array_equal(csr.data, want.distances)
    np.testing.assert_array_equal(passed, d2fast.forward(want, s))
    np.testing.assert_array_equal(runs[3], d2fast.select(
        want, passed, 200, gamma_r=auto_gamma_r(want, 200)[0], algorithm="heap"))


def test_ivf_equals_prune_ivf(monkeypatch):
    """The same k-means sample and seed: the same centroids, lists, graph and picks; no
    worker reads a node <-> row id mapping whole (nprobe 'auto' reads it at its rows)."""
    from d2fast.distributed.layout import RangeFiles

    def whole(self, dtype=None, copy=None):
        raise AssertionError("a RangeFiles read whole")

    monkeypatch.setattr(RangeFiles, "__array__", whole)
    X, s = _data(12, n=3000, d=8)
    for metric in ("euclidean", "cosine"):
        want = d2fast.prune(X, s, 5, 0.5, knn="ivf", metric=metric, hard_prune=0.0)
        got = distributed.prune(X, s, 5, 0.5, knn="ivf", metric=metric, shards=3,
                                engine="local", hard_prune=0.0)
        np.testing.assert_array_equal(got, want, err_msg=metric)


def test_parquet_and_npz_shards_end_to_end(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, s = _data(6)
    cuts = [0, 80, 81, 200, N]
    for i in range(4):
        part = X[cuts[i]:cuts[i + 1]]
        col = pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), X.shape[1])
        pq.write_table(pa.table({"emb": col, "scores": s[cuts[i]:cuts[i + 1]]}),
                       tmp_path / f"{i}.parquet", row_group_size=50)
        np.savez(tmp_path / f"{i}.npz", scores=s[cuts[i]:cuts[i + 1]])
    got = distributed.prune(str(tmp_path / "*.parquet"), str(tmp_path / "*.npz"), 5, 0.5,
                            knn="exact", engine="local", shards=2)
    np.testing.assert_array_equal(got, _single(X, s))


def test_bad_inputs_and_unsupported_parameters(tmp_path):
    X, s = _data()
    np.save(tmp_path / "a.npy", X[:100])
    np.save(tmp_path / "b.npy", X[100:, :5])
    with pytest.raises(ValueError, match="b.npy has 5 columns"):
        distributed.prune(str(tmp_path), s, engine="local")
    np.save(tmp_path / "b.npy", X[100:])
    with pytest.raises(ValueError, match="scores.shape"):
        distributed.prune(str(tmp_path), s[:-1], engine="local")
    with pytest.raises(FileNotFoundError, match="c.npy does not exist"):
        distributed.prune([str(tmp_path / "a.npy"), str(tmp_path / "c.npy")], s[:100],
                          engine="local")
    for kw, match in (({"labels": np.zeros(N)}, "labels is not supported"),
                      ({"hard_prune": "most"}, r"hard_prune must be a float in \[0, 1\)"),
                      ({"hard_prune": 1.0}, "must satisfy 0 <= hard_prune < 1"),
                      ({"gamma_r": "fast"}, "gamma_r must be a float >= 0 or 'auto'"),
                      ({"dedup": 0.0}, "dedup is not supported"),
                      ({"class_budget": "even"}, "class_budget='even'"),
                      ({"graph": d2fast.knn_graph(X)}, "prebuilt Graph is not supported"),
                      ({"knn": "hnsw"}, "knn='hnsw' is not supported"),
                      ({"knn_params": {"codes": "sq8"}}, "not supported"),
                      ({"knn_params": {"pca": 8}}, "'pca'.* is not supported"),
                      ({"engine": "spark"}, "engine='spark'"),
                      ({"shards": 0}, "shards == 0")):
        with pytest.raises(ValueError, match=match):
            distributed.prune(X, s, **{"engine": "local", **kw})
    with pytest.raises(ValueError, match="only 2 IVF lists hold rows"):
        distributed.prune(X, s, engine="local", shards=3, knn_params={"nlist": 2})


def test_negative_phase_that_does_not_fit_is_a_memory_error(monkeypatch):
    X, s = _data()
    monkeypatch.setattr(d2fast._validate, "available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match="negative phase"):
        distributed.prune(X, -s, knn="exact", hard_prune=0.0, engine="local", shards=2)
    with pytest.raises(MemoryError, match="hard_prune='auto' .the scores of all 300 rows"):
        distributed.prune(X, -s, knn="exact", engine="local", shards=2)


def _interrupt(monkeypatch, name, at_call):
    """Make step ``name`` raise KeyboardInterrupt on its ``at_call``-th call (1-based)."""
    real, calls = engines.STEPS[name], []

    def step(state, inbox, **args):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return real(state, inbox, **args)

    monkeypatch.setitem(engines.STEPS, name, step)


def test_resume_after_the_driver_is_interrupted(tmp_path, monkeypatch):
    X, s = _data(7)
    s = s - 0.3  # a negative phase too
    want = _single(X, s, n_keep=200)
    kw = dict(n_keep=200, knn="exact", shards=3, engine="local", workdir=str(tmp_path))
    with monkeypatch.context() as m:
        _interrupt(m, "forward_run", 1)  # between the graph and forward stages
        with pytest.raises(KeyboardInterrupt):
            distributed.prune(X, s, **kw)
    with open(tmp_path / "manifest.json") as f:
        assert json.load(f)["done"] == ["partition", "rows", "graph"]
    with monkeypatch.context() as m:
        _interrupt(m, "search", 1)  # the graph must not be built again
        _interrupt(m, "update", 5)  # in the second round (3 shards a round)
        with pytest.raises(KeyboardInterrupt):
            distributed.prune(X, s, **kw)
    with open(tmp_path / "manifest.json") as f:
        assert json.load(f)["round"] == 0
    with monkeypatch.context() as m:  # gamma_r='auto' is read back with the graph stage
        _interrupt(m, "gamma_degrees", 1)
        got, info = distributed.prune(X, s, return_info=True, **kw)
    np.testing.assert_array_equal(got, want)
    assert info["resumed"] == ["partition", "rows", "graph", "forward", "round 0"]
    gamma = auto_gamma_r(d2fast.knn_graph(X, 5, knn="exact"), 200)
    assert (info["gamma_r"], info["gamma_r_reason"]) == gamma
    got, info = distributed.prune(X, s, return_info=True, **kw)  # finished: read back
    np.testing.assert_array_equal(got, want)
    assert "select" in info["resumed"] and info["gamma_r"] == gamma[0]
    assert info["nnz"] == d2fast.knn_graph(X, 5, knn="exact").nnz  # read back too
    with pytest.raises(ValueError, match="holds a run of other inputs"):
        distributed.prune(X, s, **{**kw, "n_keep": 10})


def test_cli_prune_over_a_directory_of_shards(tmp_path):
    from d2fast.cli import main

    X, s = _data(8)
    (tmp_path / "emb").mkdir()
    for i, (a, b) in enumerate([(0, 100), (100, 250), (250, N)]):
        np.save(tmp_path / "emb" / f"{i}.npy", X[a:b])
    np.save(tmp_path / "s.npy", s)
    out = str(tmp_path / "keep.npy")
    assert main(["prune", str(tmp_path / "emb"), str(tmp_path / "s.npy"), "-o", out, "-q",
                 "--engine", "local", "--knn", "exact", "--workdir",
                 str(tmp_path / "wd")]) == 0
    np.testing.assert_array_equal(np.load(out), _single(X, s))
    with open(out + ".json") as f:
        record = json.load(f)["output"]["distributed"]
    assert record["shards"] == 3 and record["rounds"] > 0 and record["bytes_sent"] > 0
    assert record["gamma_r_reason"].startswith("auto: ")
    assert record["hard_prune_reason"].startswith("auto: ")
    assert set(record["timings_s"]) == {"partition", "rows", "graph", "forward", "select"}
    assert main(["prune", str(tmp_path / "emb"), str(tmp_path / "s.npy"), "-o", out, "-q",
                 "--force", "--engine", "local", "--labels", str(tmp_path / "s.npy")]) == 2


# Ray: one local cluster for the session (conftest.ray_cluster)

def test_ray_equals_local_and_one_machine(ray_cluster):
    X, s = _data(9)
    s = s - 0.5
    got, info = distributed.prune(X, s, 5, 0.4, knn="exact", graph="directed", shards=3,
                                  engine="ray", return_info=True)
    local = distributed.prune(X, s, 5, 0.4, knn="exact", graph="directed", shards=3,
                              engine="local")
    np.testing.assert_array_equal(got, local)
    np.testing.assert_array_equal(got, _single(X, s, rate=0.4, graph="directed"))
    assert info["engine"] == "ray" and info["shards"] == 3 and info["bytes_sent"] > 0
    g = d2fast.knn_graph(X, 5, graph="directed", knn="exact")
    assert (info["gamma_r"], info["gamma_r_reason"]) == auto_gamma_r(g, 180)
    peaks, by_stage = info["worker_peak_rss_bytes"], info["worker_peak_rss_by_stage"]
    assert list(by_stage) == ["partition", "rows", "graph", "forward", "select"]
    assert len(peaks) == 3 and min(peaks) > 0
    assert peaks == [max(stage[p] for stage in by_stage.values()) for p in range(3)]
    kw = dict(knn="exact", graph="directed", hard_prune=0.2)  # the rows left, on Ray
    np.testing.assert_array_equal(
        distributed.prune(X, s, 5, 0.4, shards=3, engine="ray", **kw),
        d2fast.prune(X, s, 5, 0.4, **kw))
    # IVF with nprobe='auto' chosen on a Ray worker from every shard's rows
    got, info = distributed.prune(X, s, 5, 0.4, knn="ivf", shards=3, engine="ray",
                                  return_info=True)
    want, wi = d2fast.prune(X, s, 5, 0.4, knn="ivf", return_info=True)
    np.testing.assert_array_equal(got, want)
    assert info["knn_auto"] == wi["knn_auto"] and info["knn_auto"]["queries_sampled"] > 0


def test_ray_on_two_nodes(ray_cluster, monkeypatch):
    node = ray_cluster.add_node(num_cpus=1)
    placed = []
    real_close = engines.RayEngine.close

    def close(self):
        placed.extend(self.where())
        real_close(self)

    monkeypatch.setattr(engines.RayEngine, "close", close)
    try:
        X, s = _data(10)
        got = distributed.prune(X, s, 5, 0.5, knn="exact", shards=3, engine="ray")
    finally:
        ray_cluster.remove_node(node)
    np.testing.assert_array_equal(got, _single(X, s))
    assert len({node_id for node_id, _ in placed}) == 2


def test_ray_resumes_after_a_killed_actor(ray_cluster, monkeypatch, tmp_path):
    import ray

    X, s = _data(11)
    real_step, calls = engines.RayEngine.step, []

    def step(self, name, inboxes=None, args=None):
        calls.append(name)
        if calls.count("pick") == 3 and name == "pick":  # in round 2
            ray.kill(self.actors[1])
        return real_step(self, name, inboxes, args)

    monkeypatch.setattr(engines.RayEngine, "step", step)
    got, info = distributed.prune(X, s, 5, 0.5, knn="exact", shards=2, engine="ray",
                                  workdir=str(tmp_path), return_info=True)
    np.testing.assert_array_equal(got, _single(X, s))
    assert info["restarts"] == 1 and info["resumed"][-1] == "round 1"


def test_nlist_auto_is_weighed_above_1m_rows():
    """The distributed build weighs nlist='auto' where one machine does (above 1M rows,
    nprobe 'auto'); a given nlist or nprobe is taken as given."""
    from d2fast.distributed import _ivf_params

    for params in (None, {"nlist": "auto"}, {"nlist": None}):
        assert _ivf_params(params, 10_000_000)["nlist_auto"]
        assert not _ivf_params(params, 1_000_000)["nlist_auto"]
    assert not _ivf_params({"nlist": 20000}, 10_000_000)["nlist_auto"]
    assert not _ivf_params({"nprobe": 8}, 10_000_000)["nlist_auto"]
    assert _ivf_params({"nlist": 20000}, 10_000_000)["nlist"] == 20000


@pytest.mark.parametrize("margin, chosen", [(0.0, 1), (1e9, 0)])
def test_nlist_auto_equals_prune(monkeypatch, tmp_path, margin, chosen):
    """nlist='auto' with both choices (small lists made the fine ones, the margin forcing
    each): the same choice, estimate and picks as one machine, over shard files."""
    from d2fast import _nlist

    monkeypatch.setattr(_nlist, "LIST_ROWS", 8)  # 6000 rows: 150 or 750 lists
    monkeypatch.setattr(_nlist, "MARGIN", margin)
    rng = np.random.default_rng(12)
    X = np.concatenate([rng.normal(c, 1.0, (600, 6)) for c in range(0, 50, 5)]).astype(
        np.float32)
    s = rng.random(X.shape[0])
    kw = dict(knn="ivf", metric="cosine", hard_prune=0.0)  # all 6000 rows in the graph
    want, wi = d2fast.prune(X, s, 5, 0.5, return_info=True, **kw)
    for i, (a, b) in enumerate([(0, 2500), (2500, 4000), (4000, 6000)]):
        np.save(tmp_path / f"emb-{i}.npy", X[a:b])
    got, gi = distributed.prune(sorted(str(p) for p in tmp_path.glob("emb-*.npy")), s, 5,
                                0.5, engine="local", return_info=True, **kw)
    np.testing.assert_array_equal(got, want)
    assert wi["knn_auto"]["nlist_auto"]["choices"] == [150, 750]
    assert gi["knn_params"]["nlist"] == wi["knn_params"]["nlist"] == [150, 750][chosen]
    assert gi["knn_auto"] == wi["knn_auto"]
    if chosen:  # the choice is read back when the partition stage is resumed
        wd = str(tmp_path / "wd")
        with monkeypatch.context() as m:
            _interrupt(m, "write_rows", 1)
            with pytest.raises(KeyboardInterrupt):
                distributed.prune(X, s, 5, 0.5, engine="local", shards=2, workdir=wd, **kw)
        got, gi = distributed.prune(X, s, 5, 0.5, engine="local", shards=2, workdir=wd,
                                    return_info=True, **kw)
        np.testing.assert_array_equal(got, want)
        assert gi["resumed"] == ["partition"] and gi["knn_auto"] == wi["knn_auto"]


def test_ray_nlist_auto_equals_prune(ray_cluster, monkeypatch):
    """The sampled queries' neighbours searched on Ray workers: one machine's choice."""
    from d2fast import _nlist

    monkeypatch.setattr(_nlist, "LIST_ROWS", 8)
    monkeypatch.setattr(_nlist, "MARGIN", 0.0)
    rng = np.random.default_rng(13)
    X = np.concatenate([rng.normal(c, 1.0, (400, 6)) for c in range(0, 50, 5)])
    s = rng.random(X.shape[0])
    want, wi = d2fast.prune(X, s, 5, 0.5, knn="ivf", hard_prune=0.0, return_info=True)
    got, gi = distributed.prune(X, s, 5, 0.5, knn="ivf", hard_prune=0.0, shards=2,
                                engine="ray", return_info=True)
    np.testing.assert_array_equal(got, want)
    assert gi["knn_auto"] == wi["knn_auto"] and gi["knn_params"]["nlist"] == 500
