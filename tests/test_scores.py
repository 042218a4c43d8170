"""d2fast.scores.Recorder against direct computations from the full logit history (SPEC 6)."""
from __future__ import annotations

import io
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

import d2fast

torch = pytest.importorskip("torch", reason="d2fast.scores needs the torch extra")
from d2fast.scores import SCORES, IndexedDataset, Recorder  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-9, 1e-12  # logits are float32 (stored exactly); both sides compute in float64


# ---------------------------------------------------------------- reference (straight from SPEC)
def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_scores(Z: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """forgetting, el2n, aum, entropy from the full history Z (E, n, C), loops over samples."""
    E, n, C = Z.shape
    Z = Z.astype(np.float64)
    out = {name: np.zeros(n) for name in ("forgetting", "el2n", "aum", "entropy")}
    for i in range(n):
        correct = [int(np.argmax(Z[t, i])) == y[i] for t in range(E)]
        events = sum(correct[t - 1] and not correct[t] for t in range(1, E))
        out["forgetting"][i] = events if any(correct) else E
        for t in range(E):
            z, p = Z[t, i], softmax(Z[t, i])
            onehot = np.eye(C)[y[i]]
            out["el2n"][i] += np.sqrt(((p - onehot) ** 2).sum()) / E
            out["aum"][i] += (z[y[i]] - max(z[c] for c in range(C) if c != y[i])) / E
            out["entropy"][i] += -sum(pc * np.log(pc) for pc in p if pc > 0) / E
    return out


def ref_dynamic_uncertainty(Z: np.ndarray, y: np.ndarray, J: int) -> np.ndarray:
    E, n, _ = Z.shape
    p_y = np.array([[softmax(Z[t, i].astype(np.float64))[y[i]] for i in range(n)]
                    for t in range(E)])
    u = [np.std(p_y[i:i + J], axis=0, ddof=0) for i in range(E - J + 1)]
    return np.mean(u, axis=0)


def ref_tdds(Z: np.ndarray, W: int, T: int, beta: float) -> np.ndarray:
    E, n, _ = Z.shape
    P = softmax(Z[E - T:].astype(np.float64))  # the last T epochs
    out = np.zeros(n)
    for i in range(n):
        kappa = [np.abs(P[t + 1, i] * (np.log(P[t + 1, i] + 1e-8) - np.log(P[t, i] + 1e-8))).sum()
                 for t in range(T - 1)]
        for k in range(T - W + 1):
            part = np.array(kappa[k:k + W - 1])
            R = np.sqrt(((part - part.mean()) ** 2).sum())
            out[i] += beta * (1 - beta) ** (T - W - k) * R
    return out


# ---------------------------------------------------------------- synthetic training runs
def synthetic_history(rng: np.random.Generator, E: int, n: int, C: int):
    """Logits drifting towards the labels (some samples never learnt), float32 (E, n, C)."""
    y = rng.integers(0, C, n)
    drift = rng.normal(0.4, 0.5, n)
    drift[: n // 8] = -1.0  # never correct: forgetting == E, negative AUM
    Z = rng.normal(size=(E, n, C)).astype(np.float32)
    for t in range(E):
        Z[t, np.arange(n), y] += (drift * t).astype(np.float32)
    Z[:, : n // 8, :] += np.where(np.arange(C) == y[: n // 8, None], -50, 0).astype(np.float32)
    return Z, y


def record(Z: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, history: int,
           rec: Recorder | None = None, epochs: range | None = None, as_numpy: bool = False,
           decoys: bool = True) -> Recorder:
    """Feed epochs of Z in shuffled batches of varying size; with ``decoys``, some samples
    are first updated with wrong logits earlier in the epoch, and some batches repeat an id
    (garbage first, true logits last), so only "the last update wins" gives the reference."""
    E, n, C = Z.shape
    rec = rec or Recorder(n, C, history=history)
    for t in epochs if epochs is not None else range(E):
        if decoys:
            early = rng.choice(n, size=n // 3, replace=False)
            rec.update(torch.from_numpy(early), torch.randn(early.size, C) * 5,
                       torch.from_numpy(y[early]))
        perm = rng.permutation(n)
        start = 0
        while start < n:
            b = int(rng.integers(1, 17))
            ids = perm[start:start + b]
            logits, labels = Z[t, ids], y[ids]
            if decoys and ids.size > 1:
                ids = np.concatenate([ids[:1], ids])  # ids[0] twice: garbage, then the truth
                logits = np.concatenate([logits[:1] + 7.0, logits])
                labels = np.concatenate([labels[:1], labels])
            if as_numpy:
                rec.update(ids, logits, labels)
            else:
                rec.update(torch.from_numpy(ids), torch.from_numpy(logits),
                           torch.from_numpy(labels))
            start += b
        rec.end_epoch()
    return rec


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- scores vs reference
@pytest.mark.parametrize("E,C,history,as_numpy", [(1, 2, 2, False), (4, 3, 4, True),
                                                   (9, 5, 6, False), (13, 4, 10, False)])
def test_scores_match_reference(E, C, history, as_numpy):
    rng = np.random.default_rng(E)
    Z, y = synthetic_history(rng, E, 40, C)
    rec = record(Z, y, rng, history=history, as_numpy=as_numpy)
    assert rec.epochs == E
    want = ref_scores(Z, y)
    for name in ("forgetting", "el2n", "aum", "entropy"):
        assert_close(getattr(rec, name)(), want[name])
    assert (rec.forgetting()[:5] == E).all()  # never correct
    assert (rec.aum()[:5] < 0).all()
    assert (rec.forgetting()[5:] < E).any()  # learnt samples are not all at E
    for J in range(2, min(E, history) + 1):  # includes E == window
        assert_close(rec.dynamic_uncertainty(window=J), ref_dynamic_uncertainty(Z, y, J))
    for T in range(2, min(E, history) + 1):
        for W in range(2, T + 1):
            for beta in (0.9, 0.5, 1.0, 0.0):
                assert_close(rec.tdds(window=W, horizon=T, beta=beta), ref_tdds(Z, W, T, beta))


def test_defaults_and_difficulty():
    rng = np.random.default_rng(1)
    Z, y = synthetic_history(rng, 12, 30, 3)
    rec = record(Z, y, rng, history=10, decoys=False)
    assert_close(rec.dynamic_uncertainty(), ref_dynamic_uncertainty(Z, y, 10))
    assert_close(rec.tdds(), ref_tdds(Z, 10, 10, 0.9))
    assert rec.tdds().std() > 0 and rec.dynamic_uncertainty().std() > 0
    aum = rec.aum()
    assert_close(rec.difficulty("aum"), aum.max() - aum)
    for name in ("forgetting", "el2n", "entropy"):
        assert_close(rec.difficulty(name), getattr(rec, name)())
    assert_close(rec.difficulty("dynamic_uncertainty", window=4), rec.dynamic_uncertainty(4))
    assert_close(rec.difficulty("tdds", window=3, horizon=5, beta=0.5),
                 rec.tdds(window=3, horizon=5, beta=0.5))
    with pytest.raises(ValueError, match="name='margin'"):
        rec.difficulty("margin")
    assert set(SCORES) == {"forgetting", "el2n", "aum", "entropy", "dynamic_uncertainty", "tdds"}


def test_last_update_wins_and_duplicates_in_batch():
    C = 3
    z_final = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    rec = Recorder(2, C)
    rec.update([0, 1, 0], torch.tensor([[5.0, 0.0, 0.0], [9.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),
               [1, 0, 1])
    rec.update(np.array([0]), z_final[:1].numpy(), np.array([1]))  # later batch overrides
    rec.update(torch.tensor([1, 1]), torch.stack([z_final[0], z_final[1]]), torch.tensor([0, 0]))
    rec.end_epoch()
    want = ref_scores(z_final[None].numpy(), np.array([1, 0]))
    for name in want:
        assert_close(getattr(rec, name)(), want[name])


def test_grad_and_no_grad_inputs():
    lin = torch.nn.Linear(4, 3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    a, b = Recorder(6, 3), Recorder(6, 3)
    logits = lin(x)
    assert logits.requires_grad
    a.update(torch.arange(6), logits, y)
    with torch.inference_mode():
        b.update(torch.arange(6), lin(x), y)
    a.end_epoch()
    b.end_epoch()
    assert_close(a.aum(), b.aum())
    logits.sum().backward()  # the recorder did not disturb autograd


# ---------------------------------------------------------------- errors
def test_missing_sample_is_an_error_and_epoch_stays_open():
    rec = Recorder(10, 2)
    z = torch.randn(10, 2)
    rec.update(torch.arange(7), z[:7], torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"3 of n=10 samples were not updated in epoch 0 "
                                         r"\(first ids \[7, 8, 9\]\)"):
        rec.end_epoch()
    assert rec.epochs == 0
    rec.update(torch.arange(7, 10), z[7:], torch.zeros(3, dtype=torch.long))
    rec.end_epoch()
    assert rec.epochs == 1
    assert_close(rec.aum(), ref_scores(z[None].numpy(), np.zeros(10, int))["aum"])
    with pytest.raises(ValueError, match="none of the n=3 samples"):
        Recorder(3, 2).end_epoch()


def test_too_few_epochs_and_window_larger_than_history():
    rec = Recorder(5, 3, history=6)
    kwargs = {"dynamic_uncertainty": {"window": 2}, "tdds": {"window": 2, "horizon": 2}}
    for name in SCORES:
        with pytest.raises(ValueError, match="0 recorded"):
            rec.difficulty(name, **kwargs.get(name, {}))
    rng = np.random.default_rng(0)
    Z, y = synthetic_history(rng, 3, 5, 3)
    record(Z, y, rng, history=6, rec=rec)
    with pytest.raises(ValueError, match=r"dynamic_uncertainty\(window=4\) needs at least 4 "
                                         "completed epochs, 3 recorded"):
        rec.dynamic_uncertainty(window=4)
    with pytest.raises(ValueError, match=r"tdds\(horizon=5\) needs at least 5 completed "
                                         "epochs, 3 recorded"):
        rec.tdds(window=3, horizon=5)
    with pytest.raises(ValueError, match="history >= 10"):
        rec.dynamic_uncertainty()  # default window 10 > history 6
    with pytest.raises(ValueError, match="horizon == 7.*history >= 7"):
        rec.tdds(window=3, horizon=7)
    with pytest.raises(ValueError, match=r"window == 4, must satisfy 2 <= window <= 3"):
        rec.tdds(window=4, horizon=3)
    with pytest.raises(ValueError, match="window == 1"):
        rec.dynamic_uncertainty(window=1)
    with pytest.raises(ValueError, match="beta == 1.5"):
        rec.tdds(window=2, horizon=3, beta=1.5)
    with pytest.raises(TypeError, match="window must be an int"):
        rec.dynamic_uncertainty(window=2.0)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(n=0, num_classes=3), ValueError, "n == 0"),
    (dict(n=5, num_classes=1), ValueError, "num_classes == 1"),
    (dict(n=5, num_classes=3, history=1), ValueError, "history == 1"),
    (dict(n=5.0, num_classes=3), TypeError, "n must be an int"),
])
def test_constructor_validation(kwargs, err, match):
    with pytest.raises(err, match=match):
        Recorder(**kwargs)


@pytest.mark.parametrize("indices,logits,targets,err,match", [
    ([0, 5], torch.zeros(2, 3), [0, 1], ValueError, r"indices: 1 out of range .* first \[5\]"),
    ([0, -1], torch.zeros(2, 3), [0, 1], ValueError, r"indices: 1 out of range"),
    ([0, 1], torch.zeros(2, 3), [0, 3], ValueError, r"targets: 1 out of range"),
    ([0, 1], torch.zeros(2, 4), [0, 1], ValueError, r"logits.shape == \(2, 4\)"),
    ([0, 1], torch.zeros(3, 3), [0, 1], ValueError, r"logits.shape == \(3, 3\)"),
    ([0, 1], torch.zeros(2, 3), [0, 1, 2], ValueError, r"targets.shape == \(3,\)"),
    ([[0, 1]], torch.zeros(2, 3), [0, 1], ValueError, r"indices.shape == \(1, 2\)"),
    ([0, 1], torch.tensor([[0.0, float("nan"), 0.0], [0, 0, 0]]), [0, 1], ValueError,
     r"logits contain NaN or inf in 1 rows, first at batch positions \[0\]"),
    ([0, 1], torch.tensor([[0.0, float("inf"), 0.0], [0, 0, 0]]), [0, 1], ValueError, "logits"),
    ([0.0, 1.0], torch.zeros(2, 3), [0, 1], TypeError, "indices must have an integer dtype"),
    ([0, 1], torch.zeros(2, 3, dtype=torch.long), [0, 1], TypeError, "logits must have a float"),
    ([0, 1], torch.zeros(2, 3), np.array([True, False]), TypeError, "targets must have"),
    ([0, 0], torch.zeros(2, 3), [0, 1], ValueError, r"label of 1 samples differs .*\[0\]"),
])
def test_update_validation_leaves_state_unchanged(indices, logits, targets, err, match):
    rec = Recorder(5, 3)
    rec.update([0, 1, 2, 3, 4], torch.ones(5, 3), [0, 1, 2, 0, 1])
    before = rec.state_dict()
    with pytest.raises(err, match=match):
        rec.update(indices, logits, targets)
    after = rec.state_dict()
    for key, buf in before["state"].items():
        assert torch.equal(buf, after["state"][key]), key


def test_label_change_across_epochs_is_an_error():
    rec = Recorder(3, 2)
    rec.update([0, 1, 2], torch.zeros(3, 2), [0, 1, 1])
    rec.end_epoch()
    with pytest.raises(ValueError, match=r"label of 1 samples differs .*first ids \[2\]"):
        rec.update([2, 1], torch.zeros(2, 2), [0, 1])


def test_empty_batch_is_a_no_op():
    rec = Recorder(3, 2)
    nothing = torch.zeros(0, dtype=torch.long)
    rec.update(nothing, torch.zeros(0, 2), nothing)
    assert rec.device is None and rec.epochs == 0


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("mid_epoch", [False, True])
def test_state_dict_round_trip_continues_identically(mid_epoch):
    E, n, C, history = 9, 25, 4, 5
    Z, y = synthetic_history(np.random.default_rng(3), E, n, C)
    full = record(Z, y, np.random.default_rng(4), history=history, decoys=False)

    rng = np.random.default_rng(4)
    part = record(Z, y, rng, history=history, epochs=range(4), decoys=False)
    if mid_epoch:  # half of epoch 4 before the checkpoint
        part.update(torch.arange(n // 2), torch.from_numpy(Z[4, : n // 2]),
                    torch.from_numpy(y[: n // 2]))
    buffer = io.BytesIO()
    torch.save(part.state_dict(), buffer)
    part.update(torch.arange(n), torch.zeros(n, C), torch.from_numpy(y))  # lost after load
    buffer.seek(0)
    resumed = Recorder(n, C, history=history)
    resumed.load_state_dict(torch.load(buffer))
    assert resumed.epochs == 4
    record(Z, y, rng, history=history, rec=resumed, epochs=range(4, E), decoys=False)
    for name in ("forgetting", "el2n", "aum", "entropy"):
        np.testing.assert_array_equal(getattr(resumed, name)(), getattr(full, name)())
    for J in range(2, history + 1):
        np.testing.assert_array_equal(resumed.dynamic_uncertainty(J), full.dynamic_uncertainty(J))
    np.testing.assert_array_equal(resumed.tdds(3, 5, 0.7), full.tdds(3, 5, 0.7))


def test_state_dict_mismatch_is_an_error():
    rec = Recorder(4, 3, history=3)
    rec.update([0, 1, 2, 3], torch.zeros(4, 3), [0, 1, 2, 0])
    state = rec.state_dict()
    for other in (Recorder(5, 3, history=3), Recorder(4, 2, history=3), Recorder(4, 3)):
        with pytest.raises(ValueError, match="state_dict is for n=4, num_classes=3, history=3"):
            other.load_state_dict(state)
    broken = rec.state_dict()
    broken["state"]["kappa"] = torch.zeros(7)
    with pytest.raises(ValueError, match=r"\['kappa'\] is missing or not torch.float64"):
        Recorder(4, 3, history=3).load_state_dict(broken)
    with pytest.raises(ValueError, match="not a d2fast.scores.Recorder"):
        rec.load_state_dict({"n": 4})
    fresh = Recorder(4, 3, history=3)
    fresh.load_state_dict(Recorder(4, 3, history=3).state_dict())  # never updated
    assert fresh.device is None and fresh.epochs == 0


# ---------------------------------------------------------------- memory, devices, imports
def test_buffers_are_online_not_history():
    n, C, history = 50, 7, 4
    rng = np.random.default_rng(5)
    Z, y = synthetic_history(rng, 12, n, C)
    rec = record(Z, y, rng, history=history)
    numel = sum(buf.numel() for buf in rec.state_dict()["state"].values())
    assert numel <= 2 * n * C + 3 * history * n + 10 * n  # O(n (C + history)), not O(E n C)


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(6)
    Z, y = synthetic_history(rng, 5, 20, 3)
    a = record(Z, y, np.random.default_rng(0), history=5, as_numpy=True)
    b = record(Z, y, np.random.default_rng(0), history=5, as_numpy=False)
    kwargs = {"dynamic_uncertainty": {"window": 5}, "tdds": {"window": 3, "horizon": 5}}
    for name in SCORES:
        np.testing.assert_array_equal(a.difficulty(name, **kwargs.get(name, {})),
                                      b.difficulty(name, **kwargs.get(name, {})))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda)")
def test_cuda_state_matches_cpu():
    rng = np.random.default_rng(7)
    Z, y = synthetic_history(rng, 6, 30, 4)
    cpu = record(Z, y, np.random.default_rng(1), history=6)
    gpu = Recorder(30, 4, history=6)
    rng = np.random.default_rng(1)
    for t in range(6):
        perm = rng.permutation(30)
        gpu.update(torch.from_numpy(perm).cuda(), torch.from_numpy(Z[t, perm]).cuda(),
                   torch.from_numpy(y[perm]).cuda())
        gpu.end_epoch()
    assert gpu.device.type == "cuda"
    for name in ("forgetting", "el2n", "aum", "entropy"):
        np.testing.assert_allclose(getattr(gpu, name)(), getattr(cpu, name)(), rtol=1e-9)
    np.testing.assert_allclose(gpu.tdds(3, 6), cpu.tdds(3, 6), rtol=1e-9, atol=1e-12)


def test_import_d2fast_does_not_import_torch():
    code = "import sys, d2fast; assert 'torch' not in sys.modules; d2fast.scores.Recorder"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import d2fast.scores\nexcept ImportError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert 'pip install "d2fast[torch]"' in out.stdout


def test_memory_is_checked_before_allocating():
    rec = Recorder(10**12, 1000)
    with pytest.raises(MemoryError, match=r"Recorder\(n=1000000000000, num_classes=1000"):
        rec.update([0], torch.zeros(1, 1000), [0])
    assert rec.device is None


# ---------------------------------------------------------------- subset runs (global row ids)
def tiny_problem(n: int = 200, d: int = 8, C: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = (x[:, :C].argmax(dim=1) + (torch.rand(n, generator=gen) < 0.2)) % C
    return torch.utils.data.TensorDataset(x, y)


def train(loader, rec, epochs: int = 4, seed: int = 0, to_rows=None):
    """A real training loop (linear model, SGD) recording every batch."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(epochs):
        for idx, x, y in loader:
            logits = model(x)
            rec.update(idx if to_rows is None else to_rows[idx], logits, y)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        rec.end_epoch()


def test_indexed_dataset_yields_global_row_ids():
    data = tiny_problem(50)
    subset = np.array([7, 3, 41, 0])
    wrapped = IndexedDataset(data, indices=subset)
    assert len(wrapped) == 4 and len(IndexedDataset(data)) == 50
    idx, x, y = wrapped[2]
    assert idx == 41 and torch.equal(x, data[41][0]) and y == data[41][1]
    assert IndexedDataset(data)[9][0] == 9
    batch = next(iter(torch.utils.data.DataLoader(wrapped, batch_size=4)))
    assert batch[0].dtype == torch.int64 and batch[0].tolist() == [7, 3, 41, 0]
    assert IndexedDataset(list("abc"))[1] == (1, "b")  # a dataset of single values
    with pytest.raises(ValueError, match=r"indices must lie in \[0, n\) with n=50"):
        IndexedDataset(data, indices=[3, 50])
    with pytest.raises(TypeError, match="map-style dataset with a length"):
        IndexedDataset(iter(data))


def test_subset_run_records_under_global_ids():
    data = tiny_problem()
    subset = np.random.default_rng(0).choice(200, 20, replace=False)
    loader = torch.utils.data.DataLoader(IndexedDataset(data, indices=subset), batch_size=6,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    rec = Recorder(200, 3, ids=subset, history=4)
    train(loader, rec)
    np.testing.assert_array_equal(rec.ids, np.sort(subset))
    # the same run recorded by hand: global id -> position in the sorted subset
    by_hand = Recorder(20, 3, history=4)
    to_rows = torch.full((200,), -1, dtype=torch.int64)
    to_rows[np.sort(subset)] = torch.arange(20)
    loader.generator.manual_seed(0)
    train(loader, by_hand, to_rows=to_rows)
    for name in SCORES:
        kwargs = {"window": 3, "horizon": 4} if name == "tdds" else \
            {"window": 4} if name == "dynamic_uncertainty" else {}
        got = rec.difficulty(name, **kwargs)
        assert got.shape == (20,)
        np.testing.assert_array_equal(got, by_hand.difficulty(name, **kwargs))
    # straight into extrapolation: known rows keep their scores
    scores = rec.difficulty("aum")
    emb = data.tensors[0].numpy()
    full = d2fast.extrapolate(emb, rec.ids, scores, method="knn", k=3)
    assert full.shape == (200,)
    np.testing.assert_array_equal(full[rec.ids], scores)


def test_subset_recorder_errors_name_global_ids():
    rec = Recorder(100, 3, ids=[10, 20, 30, 40])
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"1 row ids are not among the 4 recorded ids "
                                         r"\(first \[11\]\)"):
        rec.update([10, 11], z, [0, 0])
    with pytest.raises(ValueError, match=r"indices: 1 out of range \[0, n\) \(n=100\), "
                                         r"first \[100\]"):
        rec.update([10, 100], z, [0, 0])
    assert rec.device is None  # nothing was recorded
    rec.update([40, 10], z, [1, 0])
    with pytest.raises(ValueError, match=r"2 of 4 recorded ids were not updated in "
                                         r"epoch 0 \(first ids \[20, 30\]\)"):
        rec.end_epoch()
    with pytest.raises(ValueError, match=r"differs from another update \(first ids \[40\]\)"):
        rec.update([40], torch.zeros(1, 3), [2])
    with pytest.raises(ValueError, match="ids repeats row id 10"):
        Recorder(100, 3, ids=[10, 10])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, n\) with n=100"):
        Recorder(100, 3, ids=[5, 100])
    with pytest.raises(ValueError, match="ids is empty"):
        Recorder(100, 3, ids=[])
    assert "ids=<4 rows>" in repr(rec)


def test_subset_state_dict_keeps_the_ids():
    rec = Recorder(100, 3, ids=[10, 20])
    rec.update([20, 10], torch.randn(2, 3), [1, 2])
    rec.end_epoch()
    again = Recorder(100, 3, ids=[20, 10])
    again.load_state_dict(rec.state_dict())
    np.testing.assert_array_equal(again.aum(), rec.aum())
    for other in (Recorder(100, 3, ids=[10, 21]), Recorder(100, 3)):
        with pytest.raises(ValueError, match="ids must be the same"):
            other.load_state_dict(rec.state_dict())
    with pytest.raises(ValueError, match="ids must be the same"):
        rec.load_state_dict(Recorder(100, 3).state_dict())


def test_readme_training_loop_runs(tmp_path, monkeypatch):
    """The README's PyTorch loop, executed as written on a small data set."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("# training-dynamics scores")
    end = readme.index("\n", readme.index("full = d2fast.extrapolate(emb, rec.ids", start))
    data = tiny_problem(300, C=3)
    torch.manual_seed(0)
    namespace = {"d2fast": d2fast, "train_set": data, "model": torch.nn.Linear(8, 10),
                 "epochs": 3, "emb": data.tensors[0].numpy()}
    monkeypatch.chdir(tmp_path)
    exec(compile(readme[start:end], "README.md", "exec"), namespace)
    full, rec = namespace["full"], namespace["rec"]
    assert full.shape == (300,) and rec.ids.shape == (30,) and rec.epochs == 3
    np.testing.assert_array_equal(full[rec.ids], namespace["scores"])
    assert (tmp_path / "scores.pt").exists()
