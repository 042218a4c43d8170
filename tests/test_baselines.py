"""d2fast.baselines against direct / brute-force computations."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import d2fast
from d2fast import baselines as B
from d2fast._ties import tie_keys

FUNCS = {"random": B.random, "topk": B.topk, "ccs": B.ccs, "moderate": B.moderate,
         "kcenter": B.kcenter}


def data(n: int = 200, d: int = 5, seed: int = 0, classes: int = 4):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d))
    scores = np.round(rng.random(n), 2)  # ties on purpose
    labels = rng.choice(classes, size=n, p=np.linspace(1, 3, classes) / np.linspace(
        1, 3, classes).sum())
    return emb, scores, labels


def call(name: str, emb, scores, **kw):
    if name == "ccs":
        kw.setdefault("hard_prune", 0.0)
    return FUNCS[name](emb, scores, **kw)


def assert_ids(out: np.ndarray, n: int, n_keep: int) -> None:
    assert out.dtype == np.int64 and out.shape == (n_keep,)
    assert np.unique(out).size == n_keep
    assert n_keep == 0 or (out.min() >= 0 and out.max() < n)


# --- sizes, ids, n_keep = 0 -----------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n_keep", [0, 1, 7, 199, 200])
def test_sizes_by_n_keep(name, n_keep):
    emb, scores, _ = data()
    assert_ids(call(name, emb, scores, n_keep=n_keep), 200, n_keep)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n,rate,want", [(10, 0.9, 1), (10, 0.7, 3), (10, 0.0, 10),
                                         (100, 0.29, 71), (7, 0.99, 0), (200, 0.5, 100)])
def test_sizes_by_rate(name, n, rate, want):
    emb, scores, _ = data(n)
    assert_ids(call(name, emb, scores, rate=rate), n, want)


def test_n_keep_zero_matches_prune():
    emb, scores, labels = data()
    want = d2fast.prune(emb, scores, k=3, n_keep=0)
    assert want.dtype == np.int64 and want.shape == (0,)
    for name in FUNCS:
        out = call(name, emb, scores, n_keep=0)
        assert out.dtype == want.dtype and out.shape == want.shape
    for name in ("random", "topk", "moderate"):
        assert call(name, emb, scores, n_keep=0, labels=labels).shape == (0,)


# --- class budgets --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["random", "topk", "moderate"])
@pytest.mark.parametrize("n_keep", [0, 5, 37, 120, 200])
def test_proportional_budgets(name, n_keep):
    emb, scores, labels = data(classes=5)
    out = call(name, emb, scores, n_keep=n_keep, labels=labels)
    assert_ids(out, 200, n_keep)
    sizes = np.bincount(labels, minlength=5)
    counts = np.bincount(labels[out], minlength=5)
    assert counts.sum() == n_keep and (counts <= sizes).all()
    assert (np.abs(counts - sizes * n_keep / 200) < 1).all()  # floor or ceil of the share


@pytest.mark.parametrize("name", ["random", "topk"])
@pytest.mark.parametrize("n_keep", [3, 20, 60, 150, 250])
def test_uniform_budgets(name, n_keep):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), [5, 40, 200, 5])
    emb, scores = rng.normal(size=(250, 3)), rng.random(250)
    out = call(name, emb, scores, n_keep=n_keep, labels=labels, class_budget="uniform")
    assert_ids(out, 250, n_keep)
    sizes, counts = np.bincount(labels), np.bincount(labels[out], minlength=4)
    assert counts.sum() == n_keep and (counts <= sizes).all()
    open_classes = counts < sizes  # classes not exhausted get equal shares (+-1)
    if open_classes.any():
        assert counts[open_classes].max() - counts[open_classes].min() <= 1
        assert counts.max() <= counts[open_classes].max()  # exhausted ones got less


def test_labels_merge_keeps_prefixes_balanced():
    emb, scores, _ = data(400)
    labels = np.arange(400) % 2
    out = B.random(emb, scores, n_keep=100, labels=labels)
    for t in range(2, 101, 2):
        assert (labels[out[:t]] == 0).sum() == t // 2


# --- topk -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n_keep", [1, 13, 100, 200])
def test_topk_against_argsort(n_keep):
    emb, scores, labels = data()
    keys = tie_keys(np.arange(scores.size))  # ties: lower tie key first, not row order
    np.testing.assert_array_equal(B.topk(emb, scores, n_keep=n_keep),
                                  np.lexsort((keys, -scores))[:n_keep])
    np.testing.assert_array_equal(B.topk(emb, scores, n_keep=n_keep, hardest=False),
                                  np.lexsort((keys, scores))[:n_keep])


def test_topk_per_class_is_each_class_top():
    emb, scores, labels = data(classes=3)
    out = B.topk(emb, scores, n_keep=60, labels=labels)
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        mine = out[labels[out] == c]  # in the merged ranking, each class keeps its order
        np.testing.assert_array_equal(mine, rows[np.lexsort((tie_keys(rows), -scores[rows]))]
                                      [:mine.size])


# --- ccs ------------------------------------------------------------------------------------

def ccs_brute(scores: np.ndarray, hard_prune: float, n_strata: int, n_keep: int):
    """Pool, stratum of each pool row and budgets, by direct loops (the paper's Alg. 1)."""
    n = scores.size
    drop = int(np.floor(hard_prune * n + 1e-9))
    order = sorted(range(n), key=lambda i: (-scores[i], int(tie_keys([i])[0])))
    pool = np.array(sorted(order[drop:]), dtype=np.int64)
    s = scores[pool]
    lo, hi = s.min(), s.max()
    step = (hi - lo) / n_strata
    stratum = np.zeros(pool.size, dtype=np.int64)
    if step > 0:
        for k in range(n_strata):
            start, end = lo + k * step, (lo + (k + 1) * step if k < n_strata - 1 else np.inf)
            stratum[(s >= start) & (s < end)] = k
    sizes = [int((stratum == k).sum()) for k in range(n_strata)]
    budgets, left, todo = [0] * n_strata, n_keep, list(range(n_strata))
    while todo:
        k = min(todo, key=lambda j: (sizes[j], j))  # fewest rows first, lower stratum on ties
        budgets[k] = min(sizes[k], left // len(todo))
        left -= budgets[k]
        todo.remove(k)
    return pool, stratum, np.array(budgets)


@pytest.mark.parametrize("dist", ["uniform", "skewed", "ties", "constant", "negative"])
@pytest.mark.parametrize("hard_prune,n_strata,n_keep", [(0.0, 7, 40), (0.2, 50, 100),
                                                        (0.1, 10, 180), (0.3, 3, 1)])
def test_ccs_against_brute_force(dist, hard_prune, n_strata, n_keep):
    rng = np.random.default_rng(3)
    n = 300
    scores = {"uniform": rng.random(n), "skewed": rng.exponential(size=n) ** 3,
              "ties": rng.integers(0, 6, n).astype(float), "constant": np.full(n, 0.5),
              "negative": -rng.exponential(size=n)}[dist]
    emb = rng.normal(size=(n, 2))
    out = B.ccs(emb, scores, n_keep=n_keep, hard_prune=hard_prune, n_strata=n_strata, seed=5)
    assert_ids(out, n, n_keep)
    assert (np.diff(out) > 0).all()
    pool, stratum, budgets = ccs_brute(scores, hard_prune, n_strata, n_keep)
    assert budgets.sum() == n_keep
    where = np.searchsorted(pool, out)
    assert (pool[np.minimum(where, pool.size - 1)] == out).all(), "a hard-pruned row was kept"
    np.testing.assert_array_equal(np.bincount(stratum[where], minlength=n_strata), budgets)


def test_ccs_budgets_are_equalised():
    sizes = np.array([0, 2, 50, 3, 40, 9])
    np.testing.assert_array_equal(B.ccs_budgets(sizes, 40), [0, 2, 13, 3, 13, 9])
    # visiting order 0, 1, 3, 5, 4, 2: 40//6=6->0, 40//5=8->2, 38//4=9->3, 35//3=11->9,
    # 26//2=13 -> 13 for stratum 4, 13 left for stratum 2
    np.testing.assert_array_equal(B.ccs_budgets(sizes, 180), [0, 2, 50, 3, 40, 9])
    # equal sizes: the remainder goes to the stratum visited last (the highest)
    np.testing.assert_array_equal(B.ccs_budgets(np.array([10, 10, 10]), 10), [3, 3, 4])


def test_ccs_random_within_strata_and_seeded():
    emb, scores, _ = data(500)
    a = B.ccs(emb, scores, rate=0.8, seed=1)
    np.testing.assert_array_equal(a, B.ccs(emb, scores, rate=0.8, seed=1))
    assert not np.array_equal(a, B.ccs(emb, scores, rate=0.8, seed=2))


def test_ccs_errors():
    emb, scores, _ = data(100)
    with pytest.raises(ValueError, match="hard_prune"):
        B.ccs(emb, scores, n_keep=95)  # default hard_prune=0.1 leaves 90
    with pytest.raises(ValueError, match="hard_prune"):
        B.ccs(emb, scores, rate=0.5, hard_prune=1.0)
    with pytest.raises(ValueError, match="n_strata"):
        B.ccs(emb, scores, n_strata=0)
    with pytest.raises(TypeError, match="n_strata"):
        B.ccs(emb, scores, n_strata=2.5)
    assert B.ccs(emb, scores, n_keep=90).size == 90


# --- moderate -------------------------------------------------------------------------------

def moderate_direct(emb, rows, budget):
    feats = emb[rows]
    dist = np.sqrt(((feats - np.median(feats, axis=0)) ** 2).sum(axis=1))
    ranked = rows[np.argsort(dist, kind="stable")]
    start = (rows.size - budget) // 2
    return set(ranked[start:start + budget].tolist())


@pytest.mark.parametrize("n_keep", [1, 2, 33, 100, 199, 200])
def test_moderate_against_direct(n_keep):
    emb, scores, _ = data()
    out = B.moderate(emb, scores, n_keep=n_keep)
    assert set(out.tolist()) == moderate_direct(emb, np.arange(200), n_keep)
    # most moderate first: every prefix is again the centred band of its size
    for t in (1, n_keep // 2, n_keep):
        assert set(out[:t].tolist()) == moderate_direct(emb, np.arange(200), t)


def test_moderate_matches_official_band():
    """The official code keeps sorted[round(n (1 - f) / 2) : round(n (1 + f) / 2)]."""
    emb, scores, _ = data(1000)
    dist = np.linalg.norm(emb - np.median(emb, axis=0), axis=1)
    ranked = np.argsort(dist)
    out = B.moderate(emb, scores, rate=0.7)
    assert set(out.tolist()) == set(ranked[round(1000 * 0.35):round(1000 * 0.65)].tolist())


def test_moderate_per_class_and_ignores_scores():
    emb, scores, labels = data(classes=3)
    out = B.moderate(emb, scores, n_keep=50, labels=labels)
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        mine = set(out[labels[out] == c].tolist())
        assert mine == moderate_direct(emb, rows, len(mine))
    other = np.random.default_rng(9).random(200)
    np.testing.assert_array_equal(out, B.moderate(emb, other, n_keep=50, labels=labels))


# --- kcenter --------------------------------------------------------------------------------

def pair_dist(X: np.ndarray, metric: str) -> np.ndarray:
    X = X.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1)
        U = np.divide(X, norms[:, None], out=np.zeros_like(X), where=norms[:, None] > 0)
        D = 1.0 - U @ U.T
        D[norms == 0, :] = 1.0
        D[:, norms == 0] = 1.0
        return D
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return D if metric == "sqeuclidean" else np.sqrt(D)


def kcenter_brute(X: np.ndarray, n_keep: int, metric: str, seed: int) -> np.ndarray:
    D = pair_dist(X, metric)
    picks = [int(np.random.default_rng(seed).integers(X.shape[0]))]
    while len(picks) < n_keep:
        near = D[:, picks].min(axis=1)
        near[picks] = -1.0
        picks.append(int(np.argmax(near)))  # first maximum = lowest index
    return np.array(picks[:n_keep], dtype=np.int64)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 3])
def test_kcenter_against_brute_force(metric, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(150, 4))
    if metric == "cosine":
        X[17] = 0.0  # a zero row: distance 1 to everything
    out = B.kcenter(X, np.zeros(150), n_keep=150, metric=metric, seed=seed)
    np.testing.assert_array_equal(out, kcenter_brute(X, 150, metric, seed))


def test_kcenter_ties_and_duplicates_lowest_index():
    """Small integer coordinates: exact float32 distances, many exact ties, duplicates."""
    rng = np.random.default_rng(4)
    X = rng.integers(0, 3, size=(120, 2)).astype(np.float32)
    out = B.kcenter(X, np.zeros(120), n_keep=120, seed=2)
    np.testing.assert_array_equal(out, kcenter_brute(X, 120, "euclidean", 2))


def test_kcenter_euclidean_equals_sqeuclidean():
    emb, scores, _ = data(300)
    np.testing.assert_array_equal(B.kcenter(emb, scores, n_keep=100),
                                  B.kcenter(emb, scores, n_keep=100, metric="sqeuclidean"))


def test_kcenter_covering_radius():
    emb, scores, _ = data(300, 3)
    out = B.kcenter(emb, scores, n_keep=60)
    D = pair_dist(emb, "euclidean")
    radii = [D[:, out[:k]].min(axis=1).max() for k in range(1, 60)]
    for k in range(1, 60):
        r = radii[k - 1]  # covering radius of the first k picks
        # the next pick is a farthest row, so it attains r ...
        assert D[out[k], out[:k]].min() == pytest.approx(r, rel=1e-5)
        # ... and the first k + 1 picks are r-separated (hence OPT_k >= r / 2)
        sub = D[np.ix_(out[:k + 1], out[:k + 1])]
        np.fill_diagonal(sub, np.inf)
        assert sub.min() >= r * (1 - 1e-5)
    assert all(a >= b for a, b in zip(radii, radii[1:]))


def test_kcenter_two_approximation():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(12, 2))
    D = pair_dist(X, "euclidean")
    for k in (2, 3, 4):
        greedy = D[:, B.kcenter(X, np.zeros(12), n_keep=k)].min(axis=1).max()
        best = min(D[:, list(c)].min(axis=1).max() for c in itertools.combinations(range(12), k))
        assert greedy <= 2 * best + 1e-12


def test_kcenter_progress_bar(capsys):
    emb, scores, _ = data()
    out = B.kcenter(emb, scores, n_keep=20, progress=True)
    np.testing.assert_array_equal(out, B.kcenter(emb, scores, n_keep=20))
    assert "k-center" in capsys.readouterr().err


# --- determinism, input kinds, bad inputs, no mutation ---------------------------------------

@pytest.mark.parametrize("name", ["random", "ccs", "kcenter"])
def test_seeded(name):
    emb, scores, _ = data(300)
    a = call(name, emb, scores, rate=0.7, seed=11)
    np.testing.assert_array_equal(a, call(name, emb, scores, rate=0.7, seed=11))
    assert not np.array_equal(a, call(name, emb, scores, rate=0.7, seed=12))


@pytest.mark.parametrize("name", FUNCS)
def test_torch_and_memmap_inputs(name, tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    emb, scores, labels = data()
    emb32 = emb.astype(np.float32)
    kw = {"labels": labels} if name in ("random", "topk", "moderate") else {}
    want = call(name, emb32, scores, rate=0.6, **kw)
    mm = np.memmap(tmp_path / "emb.f32", dtype=np.float32, mode="w+", shape=emb32.shape)
    mm[:] = emb32
    mm.flush()
    mm = np.memmap(tmp_path / "emb.f32", dtype=np.float32, mode="r", shape=emb32.shape)
    np.testing.assert_array_equal(call(name, mm, scores, rate=0.6, **kw), want)
    got = call(name, torch.from_numpy(emb32), torch.from_numpy(scores), rate=0.6,
               **{key: torch.from_numpy(v) for key, v in kw.items()})
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", FUNCS)
def test_bad_inputs(name):
    emb, scores, labels = data(50)
    nan_scores = scores.copy()
    nan_scores[3] = np.nan
    nan_emb = emb.copy()
    nan_emb[4, 1] = np.inf
    cases = [(ValueError, "scores", dict(scores=nan_scores)),
             (ValueError, "emb", dict(emb=nan_emb)),
             (ValueError, "scores", dict(scores=scores[:-1])),
             (ValueError, "emb", dict(emb=emb[:, 0])),
             (ValueError, "emb", dict(emb=emb[:1], scores=scores[:1])),
             (ValueError, "rate", dict(rate=1.0)),
             (ValueError, "rate", dict(rate=-0.1)),
             (TypeError, "rate", dict(rate="half")),
             (ValueError, "n_keep", dict(n_keep=51)),
             (ValueError, "n_keep", dict(n_keep=-1)),
             (TypeError, "n_keep", dict(n_keep=2.0)),
             (TypeError, "emb", dict(emb=emb.astype(complex)))]
    if name in ("random", "ccs", "kcenter"):
        cases += [(ValueError, "seed", dict(seed=-1)), (TypeError, "seed", dict(seed=0.5))]
    if name in ("random", "topk", "moderate"):
        cases += [(ValueError, "labels", dict(labels=labels[:-1])),
                  (TypeError, "labels", dict(labels=labels + 0.5))]
    if name in ("random", "topk"):
        cases += [(ValueError, "class_budget", dict(class_budget="equal"))]
    if name == "kcenter":
        cases += [(ValueError, "metric", dict(metric="manhattan")),
                  (TypeError, "progress", dict(progress="yes"))]
    if name == "topk":
        cases += [(TypeError, "hardest", dict(hardest="yes"))]
    for error, word, kw in cases:
        args = {"emb": emb, "scores": scores, **kw}
        with pytest.raises(error, match=word):
            call(name, args.pop("emb"), args.pop("scores"), **args)


@pytest.mark.parametrize("name", FUNCS)
def test_caller_arrays_unchanged(name):
    emb, scores, labels = data()
    emb32 = emb.astype(np.float32)  # the zero-copy float32 path
    kept = [a.copy() for a in (emb, emb32, scores, labels)]
    for a in (emb, emb32, scores, labels):
        a.setflags(write=False)
    kw = {"labels": labels} if name in ("random", "topk", "moderate") else {}
    for X in (emb, emb32):
        call(name, X, scores, rate=0.5, **kw)
        if name == "kcenter":
            call(name, X, scores, rate=0.5, metric="cosine")
    for a, b in zip((emb, emb32, scores, labels), kept):
        np.testing.assert_array_equal(a, b)
