"""Training-dynamics difficulty scores (SPEC 6), recorded online from any PyTorch loop.

>>> rec = Recorder(n=len(train_set), num_classes=10)            # doctest: +SKIP
>>> for epoch in range(epochs):                                   # doctest: +SKIP
...     for idx, x, y in loader:            # idx: dataset row ids of the batch
...         logits = model(x)
...         rec.update(idx, logits, y)
...     rec.end_epoch()
>>> scores = rec.difficulty("dynamic_uncertainty", window=10)    # doctest: +SKIP

A subset run keeps the data set's row ids: ``IndexedDataset(train_set, indices=subset)``
yields ``(idx, x, y)`` with ``idx`` the row in ``train_set``, and
``Recorder(n=len(train_set), num_classes=10, ids=subset)`` records those rows only; its
scores follow ``rec.ids``, ready for ``d2fast.extrapolate(emb, rec.ids, scores)``.

Memory is O(n * (num_classes + history)), never O(epochs * n * num_classes):
two (n, num_classes) float32 logit matrices (this epoch and the previous one, the latter
for TDDS), float64 rings of the last ``history`` epochs, float64 running sums.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from d2fast._validate import (check_choice, check_ids, check_int, check_memory, check_real,
                               to_numpy)

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError('d2fast.scores needs PyTorch: pip install "d2fast[torch]"') from exc

SCORES = ("forgetting", "el2n", "aum", "entropy", "dynamic_uncertainty", "tdds")
_FORMAT = "d2fast.scores.Recorder/1"  # tag stored in state_dict()
_CHUNK = 1 << 20  # logits per block in end_epoch (bounds the float64 temporaries)
_EPS = 1e-8  # TDDS: log(p + 1e-8)


class Recorder:
    """Online recorder of per-sample training dynamics, pluggable into any PyTorch loop.

    Call :meth:`update` for every batch and :meth:`end_epoch` after every epoch; each
    recorded sample (all ``n``, or the ``ids``) must be updated at least once per epoch. The LAST update of a sample
    in an epoch defines its logits z_t for that epoch; within one batch, the last
    occurrence of a repeated index wins. A sample's label must never change.

    Parameters
    ----------
    n : int
        Number of samples in the data set; ``update`` takes their row ids in ``[0, n)``.
    num_classes : int
        Number of classes C >= 2.
    history : int, default=10
        Largest ``window`` of :meth:`dynamic_uncertainty` and ``horizon`` of :meth:`tdds`
        that can be asked for, >= 2. Memory grows by 24 bytes per sample per unit.
    ids : int array-like of shape (m,), optional
        Record only these rows of the data set (a subset run), distinct, in ``[0, n)``:
        ``update`` takes these global row ids (any other id is an error), every score has
        shape (m,) in the order of :attr:`ids` (sorted) and memory is O(m). Default: all
        n rows (m = n).

    Notes
    -----
    State lives on the device of the first ``update`` (later inputs are moved there).
    Logits are stored as float32: exact for float32/float16/bfloat16 logits, float64 logits
    are rounded to float32. Probabilities and all accumulators are float64. Scores cover
    the completed epochs only (an open epoch does not count).
    """

    def __init__(self, n: int, num_classes: int, *, history: int = 10,
                 ids: Any = None) -> None:
        self.n = check_int(n, "n", 1, 2**62, "a positive number of samples")
        self.num_classes = check_int(num_classes, "num_classes", 2, 2**31 - 1,
                                     "at least two classes")
        self.history = check_int(history, "history", 2, 2**20, "a window spans >= 2 epochs")
        self._ids = None if ids is None else np.sort(check_ids(ids, self.n, "ids", unique=True))
        if self._ids is not None and self._ids.size == 0:
            raise ValueError("ids is empty; pass the row ids to record, or ids=None for all")
        self._rows = self.n if self._ids is None else self._ids.size  # rows of the state
        self._ids_on: torch.Tensor | None = None  # ids on the state's device (subset runs)
        self.epochs = 0
        self._state: dict[str, torch.Tensor] | None = None  # allocated on the first update

    def __repr__(self) -> str:
        subset = "" if self._ids is None else f", ids=<{self._rows} rows>"
        return (f"Recorder(n={self.n}, num_classes={self.num_classes}, history={self.history}"
                f"{subset}, epochs={self.epochs}, device={self.device})")

    @property
    def ids(self) -> np.ndarray:
        """int64 of shape (m,): the data set rows recorded, sorted (``arange(n)`` by
        default); row i of every score is the score of row ``ids[i]``."""
        return np.arange(self.n, dtype=np.int64) if self._ids is None else self._ids.copy()

    @property
    def device(self) -> torch.device | None:
        """Device holding the state (None before the first update)."""
        return None if self._state is None else self._state["labels"].device

    # ------------------------------------------------------------------ recording
    @torch.no_grad()
    def update(self, indices: Any, logits: Any, targets: Any) -> None:
        """Record one batch.

        Parameters
        ----------
        indices : int tensor or array of shape (b,)
            Dataset row ids of the batch in ``[0, n)`` (not positions within the batch),
            each one of :attr:`ids` in a subset run.
        logits : float tensor or array of shape (b, num_classes)
            Model outputs before softmax, finite; detached (may require grad).
        targets : int tensor or array of shape (b,)
            Labels in ``[0, num_classes)``; must equal earlier labels of the same rows.

        Raises
        ------
        TypeError, ValueError
            On a wrong dtype, shape, out-of-range id or label, NaN/inf logit or a label
            that changed; the recorder is then left unchanged.
        """
        device = self.device
        if device is None:
            device = logits.device if isinstance(logits, torch.Tensor) else torch.device("cpu")
        idx = _tensor(indices, "indices", integer=True, device=device)
        tgt = _tensor(targets, "targets", integer=True, device=device)
        z = _tensor(logits, "logits", integer=False, device=device)
        if idx.ndim != 1:
            raise ValueError(f"indices.shape == {tuple(idx.shape)}, expected 1-D (b,)")
        b = idx.shape[0]
        if z.ndim != 2 or z.shape != (b, self.num_classes):
            raise ValueError(f"logits.shape == {tuple(z.shape)}, expected (b, num_classes) == "
                             f"({b}, {self.num_classes}) (b = len(indices))")
        if tgt.shape != (b,):
            raise ValueError(f"targets.shape == {tuple(tgt.shape)}, expected ({b},) "
                             "(b = len(indices))")
        if b == 0:
            return
        idx = self._local(idx)
        if self._state is None:
            self._allocate(device)
        last = self._check_batch(idx, z, tgt)
        if last is not None:  # keep the last occurrence of each repeated id
            idx, z, tgt = idx[last], z[last], tgt[last]
        s = self._state
        s["logits"].index_copy_(0, idx, z.to(torch.float32))
        s["labels"].index_copy_(0, idx, tgt)
        s["seen"].index_fill_(0, idx, True)

    def _local(self, idx: torch.Tensor) -> torch.Tensor:
        """Global row ids -> state rows (the ids themselves without a subset).

        An id outside the data set or, in a subset run, outside :attr:`ids` is an error.
        """
        if self._ids is None:
            return idx
        if self._ids_on is None or self._ids_on.device != idx.device:
            self._ids_on = torch.from_numpy(self._ids).to(idx.device)
        ids = self._ids_on
        local = torch.searchsorted(ids, idx).clamp_(max=ids.numel() - 1)
        found = ids[local] == idx
        if not bool(found.all()):
            bad = idx[~found]
            inside = bad[(bad >= 0) & (bad < self.n)]
            if inside.numel() < bad.numel():
                raise ValueError(f"indices: {bad.numel() - inside.numel()} out of range "
                                 f"[0, n) (n={self.n}), first {_first(bad)}")
            raise ValueError(f"indices: {bad.numel()} row ids are not among the {ids.numel()} "
                             f"recorded ids (first {_first(bad)}); this Recorder was made "
                             "with ids=... and records only those rows")
        return local

    def _check_batch(self, idx: torch.Tensor, z: torch.Tensor,
                     tgt: torch.Tensor) -> torch.Tensor | None:
        """All value checks with one device sync; details are worked out only on failure.

        Returns the batch positions of the last occurrence of each id if ids repeat, else None.
        """
        n, C, labels = self._rows, self.num_classes, self._state["labels"]
        idx_ok = (idx >= 0) & (idx < n)
        tgt_ok = (tgt >= 0) & (tgt < C)
        known = labels[idx.clamp(0, n - 1)]
        same = (known < 0) | (known == tgt) | ~idx_ok
        order = torch.sort(idx, stable=True)
        repeat = order.values[1:] == order.values[:-1]  # position i+1 repeats position i
        tgt_sorted = tgt[order.indices]
        conflict = repeat & (tgt_sorted[1:] != tgt_sorted[:-1])
        finite = torch.isfinite(z).all(dim=1)
        flags = torch.stack([idx_ok.all(), tgt_ok.all(), finite.all(), same.all(),
                             ~conflict.any(), ~repeat.any()]).tolist()
        if all(flags[:5]):
            return None if flags[5] else order.indices[torch.cat([~repeat, repeat.new_ones(1)])]
        if not flags[0]:
            bad = idx[~idx_ok]
            raise ValueError(f"indices: {bad.numel()} out of range [0, n) (n={n}), "
                             f"first {_first(bad)}")
        if not flags[1]:
            bad = tgt[~tgt_ok]
            raise ValueError(f"targets: {bad.numel()} out of range [0, num_classes) "
                             f"(num_classes={C}), first {_first(bad)}")
        if not flags[2]:
            bad = torch.nonzero(~finite).flatten()
            raise ValueError(f"logits contain NaN or inf in {bad.numel()} rows, first at batch "
                             f"positions {_first(bad)}")
        bad = self._global(torch.cat([idx[~same], order.values[1:][conflict]]).unique())
        raise ValueError(f"targets: the label of {bad.numel()} samples differs from another "
                         f"update (first ids {_first(bad)}); indices must be dataset row ids, "
                         "the same sample always with the same label")

    def _global(self, rows: torch.Tensor) -> torch.Tensor:
        """State rows -> the data set's row ids (for messages)."""
        return rows if self._ids is None else torch.from_numpy(self._ids[rows.cpu().numpy()])

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Close the epoch: fold this epoch's logits into every score.

        Raises
        ------
        ValueError
            If some sample was not updated in this epoch (SPEC 6: not a silent zero). The
            epoch then stays open and nothing is lost: update the missing samples and call
            ``end_epoch()`` again.
        """
        t = self.epochs
        if self._state is None:
            raise ValueError(f"end_epoch: none of the {self._what()} was updated in epoch "
                             f"{t}; call update(indices, logits, targets) for every batch")
        s = self._state
        missing = torch.nonzero(~s["seen"]).flatten()
        if missing.numel():
            raise ValueError(f"end_epoch: {missing.numel()} of {self._what()} were not "
                             f"updated in epoch {t} (first ids {_first(self._global(missing))}); every "
                             "sample must be seen each epoch. The epoch stays open: update "
                             "them and call end_epoch() again")
        per_sample = self._epoch_stats(t >= 1)
        H = self.history
        if t >= 1:
            s["forget"] += (s["correct"] & ~per_sample["correct"]).to(torch.float64)
            s["kappa"][(t - 1) % (H - 1)] = per_sample["kappa"]
        s["ever_correct"] |= per_sample["correct"]
        s["correct"] = per_sample["correct"]
        for name in ("el2n", "aum", "entropy"):
            s[name] += per_sample[name]
        s["p_label"][t % H] = per_sample["p_label"]
        newest_first = s["p_label"][[(t - j) % H for j in range(min(t + 1, H))]]
        for J in range(2, newest_first.shape[0] + 1):  # the windows ending at epoch t
            s["du"][J - 2] += newest_first[:J].var(dim=0, correction=0).sqrt()
        s["logits"], s["prev_logits"] = s["prev_logits"], s["logits"]
        s["seen"].zero_()
        self.epochs = t + 1

    def _what(self) -> str:
        return f"n={self.n} samples" if self._ids is None else f"{self._rows} recorded ids"

    def _epoch_stats(self, with_kappa: bool) -> dict[str, torch.Tensor]:
        """Per-sample quantities of the epoch's logits, in row blocks of float64."""
        s, n = self._state, self._rows
        f64 = dict(dtype=torch.float64, device=self.device)
        out = {name: torch.empty(n, **f64) for name in ("el2n", "aum", "entropy", "p_label")}
        out["correct"] = torch.empty(n, dtype=torch.bool, device=self.device)
        if with_kappa:
            out["kappa"] = torch.empty(n, **f64)
        rows = max(1, _CHUNK // self.num_classes)
        for a in range(0, n, rows):
            z = s["logits"][a:a + rows].to(torch.float64)
            y = s["labels"][a:a + rows, None]
            log_p = torch.log_softmax(z, dim=1)
            p = log_p.exp()
            p_y = p.gather(1, y)
            out["p_label"][a:a + rows] = p_y[:, 0]
            out["correct"][a:a + rows] = z.argmax(dim=1) == y[:, 0]
            runner_up = z.scatter(1, y, -torch.inf).amax(dim=1)
            out["aum"][a:a + rows] = z.gather(1, y)[:, 0] - runner_up
            out["el2n"][a:a + rows] = torch.linalg.vector_norm(p.scatter(1, y, p_y - 1), dim=1)
            out["entropy"][a:a + rows] = -(p * log_p).sum(dim=1)
            if with_kappa:
                q = torch.softmax(s["prev_logits"][a:a + rows].to(torch.float64), dim=1)
                change = p * (torch.log(p + _EPS) - torch.log(q + _EPS))
                out["kappa"][a:a + rows] = change.abs().sum(dim=1)
        return out

    def _allocate(self, device: torch.device) -> None:
        self._check_room(device)
        with torch.inference_mode(False):  # normal tensors even if the loop is in inference mode
            self._state = {key: torch.full(shape, fill, dtype=dtype, device=device)
                           for key, (shape, dtype, fill) in self._layout().items()}

    def _layout(self) -> dict[str, tuple[tuple[int, ...], torch.dtype, float]]:
        """Every state buffer: shape, dtype, initial value."""
        n, C, H = self._rows, self.num_classes, self.history
        f64, flag = torch.float64, torch.bool
        return {
            "logits": ((n, C), torch.float32, 0),  # z_t of the open epoch
            "prev_logits": ((n, C), torch.float32, 0),  # z_{t-1}, for TDDS kappa
            "labels": ((n,), torch.int64, -1),  # -1: never updated
            "seen": ((n,), flag, False),  # updated in the open epoch
            "correct": ((n,), flag, False),  # argmax z_{t-1} == y
            "ever_correct": ((n,), flag, False),
            "forget": ((n,), f64, 0), "el2n": ((n,), f64, 0), "aum": ((n,), f64, 0),
            "entropy": ((n,), f64, 0),  # running sums over the epochs
            "p_label": ((H, n), f64, 0),  # ring: p_t[y] of the last H epochs
            "kappa": ((H - 1, n), f64, 0),  # ring: TDDS kappa of the last H-1 transitions
            "du": ((H - 1, n), f64, 0),  # du[J-2]: sum of the window-J stds so far
        }

    def _check_room(self, device: torch.device) -> None:
        """Refuse buffers (and end_epoch temporaries) that cannot fit on ``device``."""
        nbytes = sum(np.prod(shape) * dtype.itemsize for shape, dtype, _ in self._layout().values())
        nbytes += 8 * min(self._rows * self.num_classes, _CHUNK) * 8 + self.history * self._rows * 8
        what = (f"Recorder(n={self.n}, num_classes={self.num_classes}, history={self.history}"
                f"{'' if self._ids is None else f', {self._rows} ids'}) on {device}")
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
            if nbytes > free:
                raise MemoryError(f"{what} needs about {nbytes / 2**30:.1f} GiB but only "
                                  f"{free / 2**30:.1f} GiB are free on the GPU; pass CPU "
                                  "tensors to update() to keep the state in host memory")
        else:
            check_memory(nbytes, what, "record fewer samples or a shorter history")

    # ------------------------------------------------------------------ scores
    def forgetting(self) -> np.ndarray:
        """Forgetting events: epochs t >= 1 where a correct sample became incorrect.

        A sample never classified correctly gets ``epochs``. Higher = harder.

        Returns
        -------
        ndarray of float64, shape (m,)
        """
        s = self._completed("forgetting")
        return _numpy(torch.where(s["ever_correct"], s["forget"], float(self.epochs)))

    def el2n(self) -> np.ndarray:
        """EL2N: mean over epochs of ``||softmax(z_t) - onehot(y)||_2``. Higher = harder.

        Returns
        -------
        ndarray of float64, shape (m,), in [0, sqrt(2)]
        """
        return _numpy(self._completed("el2n")["el2n"] / self.epochs)

    def aum(self) -> np.ndarray:
        """Area Under the Margin: mean over epochs of ``z_{t,y} - max_{c != y} z_{t,c}``.

        **LOWER = HARDER** (negative = usually misclassified), unlike every other score
        here; ``difficulty("aum")`` returns ``max(aum) - aum`` (higher = harder).

        Returns
        -------
        ndarray of float64, shape (m,), in logit units
        """
        return _numpy(self._completed("aum")["aum"] / self.epochs)

    def entropy(self) -> np.ndarray:
        """Mean over epochs of the prediction entropy ``-sum_c p_c log p_c``. Higher = harder.

        Returns
        -------
        ndarray of float64, shape (m,), in nats, in [0, log(num_classes)]
        """
        return _numpy(self._completed("entropy")["entropy"] / self.epochs)

    def dynamic_uncertainty(self, window: int = 10) -> np.ndarray:
        """Dynamic Uncertainty: mean over sliding windows of the std of ``p_t[y]``.

        ``u_i`` = population std (ddof=0) of ``p_t[y]`` over epochs ``[i, i + window)``,
        DU = mean of ``u_i`` over ``i = 0 .. epochs - window``. Higher = harder.

        Parameters
        ----------
        window : int, default=10
            ``2 <= window <= history``; needs ``epochs >= window``.

        Returns
        -------
        ndarray of float64, shape (m,)
        """
        window = self._window(window, "window")
        s = self._completed("dynamic_uncertainty", window, f"window={window}")
        return _numpy(s["du"][window - 2] / (self.epochs - window + 1))

    def tdds(self, window: int = 10, horizon: int = 10, beta: float = 0.9) -> np.ndarray:
        """Temporal Dual-Depth Scoring over the last ``horizon`` epochs (SPEC 6).

        ``kappa_t = sum_c |p_{t+1,c} (log(p_{t+1,c} + 1e-8) - log(p_{t,c} + 1e-8))|`` for
        the ``horizon - 1`` transitions; for each window ``k = 0 .. horizon - window`` of
        ``window - 1`` transitions, ``R_k`` = sqrt of the summed squared deviations of kappa
        from its window mean; TDDS = ``sum_k beta (1 - beta)^(horizon - window - k) R_k``.
        Higher = harder.

        Parameters
        ----------
        window : int, default=10
            ``2 <= window <= horizon``.
        horizon : int, default=10
            ``window <= horizon <= history``; needs ``epochs >= horizon``.
        beta : float, default=0.9
            Decay, ``0 <= beta <= 1``; the latest window has weight ``beta``.

        Returns
        -------
        ndarray of float64, shape (m,)
        """
        horizon = self._window(horizon, "horizon")
        window = check_int(window, "window", 2, horizon, f"horizon={horizon}")
        beta = check_real(beta, "beta", 0.0)
        if beta > 1:
            raise ValueError(f"beta == {beta}, must satisfy 0 <= beta <= 1")
        s = self._completed("tdds", horizon, f"horizon={horizon}")
        E, H = self.epochs, self.history
        kappa = s["kappa"][[(t - 1) % (H - 1) for t in range(E - horizon + 1, E)]]
        out = torch.zeros(self._rows, dtype=torch.float64, device=self.device)
        for k in range(horizon - window + 1):
            part = kappa[k:k + window - 1]
            spread = ((part - part.mean(dim=0)) ** 2).sum(dim=0).sqrt()
            out += beta * (1 - beta) ** (horizon - window - k) * spread
        return _numpy(out)

    def difficulty(self, name: str, **kwargs: Any) -> np.ndarray:
        """Any score oriented higher = harder, for ``d2fast.prune``.

        Parameters
        ----------
        name : {'forgetting', 'el2n', 'aum', 'entropy', 'dynamic_uncertainty', 'tdds'}
            ``'aum'`` gives ``max(aum) - aum`` (AUM itself is lower = harder).
        **kwargs
            Passed to the score (``window``, ``horizon``, ``beta``).

        Returns
        -------
        ndarray of float64, shape (m,)
        """
        check_choice(name, "name", SCORES)
        values = getattr(self, name)(**kwargs)
        return values.max() - values if name == "aum" else values

    def _window(self, value: Any, name: str) -> int:
        """A DU window or TDDS horizon, ``2 <= value <= history``."""
        hint = f"history={self.history}"
        if isinstance(value, int) and value > self.history:
            hint += f"; construct the Recorder with history >= {value} to use {name}={value}"
        return check_int(value, name, 2, self.history, hint)

    def _completed(self, score: str, need: int = 1, why: str = "") -> dict[str, torch.Tensor]:
        if self.epochs < need or self._state is None:
            raise ValueError(f"{score}{'(' + why + ')' if why else ''} needs at least {need} "
                             f"completed epoch{'s' if need > 1 else ''}, {self.epochs} "
                             "recorded; call end_epoch() after each epoch")
        return self._state

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (copies) for ``torch.save``, including an open epoch's updates."""
        d: dict[str, Any] = {"format": _FORMAT, "n": self.n, "num_classes": self.num_classes,
                             "history": self.history, "epochs": self.epochs}
        if self._state is not None:
            d["state"] = {k: v.clone() for k, v in self._state.items()}
        if self._ids is not None:
            d["ids"] = self._ids.copy()
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (copied; state goes to the device of its tensors).

        Raises
        ------
        ValueError
            If ``d`` is not a Recorder state or was saved with another n, num_classes,
            history or ids.
        """
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"state_dict is not a {_FORMAT} state (format="
                             f"{d.get('format') if isinstance(d, dict) else type(d).__name__!r})")
        saved = (d["n"], d["num_classes"], d["history"])
        if saved != (self.n, self.num_classes, self.history):
            raise ValueError(f"state_dict is for n={saved[0]}, num_classes={saved[1]}, "
                             f"history={saved[2]}; this Recorder has n={self.n}, num_classes="
                             f"{self.num_classes}, history={self.history}")
        saved_ids = d.get("ids")
        if (saved_ids is None) != (self._ids is None) or (
                saved_ids is not None and not np.array_equal(saved_ids, self._ids)):
            def rows(ids):
                return "all rows" if ids is None else f"{len(ids)} ids"
            raise ValueError(f"state_dict records {rows(saved_ids)}, this Recorder "
                             f"{rows(self._ids)} (ids must be the same)")
        if "state" not in d:
            self._state, self.epochs = None, int(d["epochs"])
            return
        saved = d["state"]
        for key, (shape, dtype, _) in self._layout().items():
            buf = saved.get(key) if isinstance(saved, dict) else None
            if not isinstance(buf, torch.Tensor) or tuple(buf.shape) != shape or buf.dtype != dtype:
                raise ValueError(f"state_dict['state'][{key!r}] is missing or not {dtype} of "
                                 f"shape {shape}")
        self._check_room(saved["labels"].device)
        self._state = {key: saved[key].detach().clone() for key in self._layout()}
        self.epochs = int(d["epochs"])


class IndexedDataset(torch.utils.data.Dataset):
    """A map-style dataset that also yields each sample's row id in the wrapped dataset.

    ``IndexedDataset(train_set)[i]`` is ``(i, x, y)`` where ``train_set[i] == (x, y)``;
    with ``indices``, item i is ``(indices[i], x, y)`` of row ``indices[i]``: a subset
    that keeps the GLOBAL row ids, as :meth:`Recorder.update` and
    :func:`d2fast.extrapolate` take them. The default DataLoader collation turns the ids
    of a batch into an int64 tensor.

    Parameters
    ----------
    dataset : map-style dataset of length n
        ``dataset[j]`` is a tuple ``(x, y, ...)`` (its items follow the id) or one value.
        Pass the full data set, not a ``torch.utils.data.Subset`` (whose positions are not
        the data set's row ids).
    indices : int array-like of shape (m,), optional
        Rows of ``dataset`` to serve, in this order, each in ``[0, n)``. Default: all rows.

    Examples
    --------
    >>> data = IndexedDataset(train_set, indices=subset)          # doctest: +SKIP
    >>> rec = Recorder(len(train_set), 10, ids=data.indices)     # doctest: +SKIP
    >>> for idx, x, y in DataLoader(data, batch_size=128):     # doctest: +SKIP
    ...     rec.update(idx, model(x), y)
    """

    def __init__(self, dataset: Any, indices: Any = None) -> None:
        try:
            n = len(dataset)
        except TypeError:
            raise TypeError(f"dataset must be a map-style dataset with a length, got "
                            f"{type(dataset).__name__}") from None
        self.dataset = dataset
        self.indices = (np.arange(n, dtype=np.int64) if indices is None
                        else check_ids(indices, n, "indices"))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> tuple:
        row = int(self.indices[i])
        item = self.dataset[row]
        return (row, *item) if isinstance(item, tuple) else (row, item)

    def __repr__(self) -> str:
        return f"IndexedDataset({type(self.dataset).__name__}, {len(self)} of {len(self.dataset)} rows)"


def _tensor(x: Any, name: str, *, integer: bool, device: torch.device) -> torch.Tensor:
    """``x`` (tensor, ndarray or list) as a detached tensor on ``device``, dtype checked."""
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.ascontiguousarray(to_numpy(x, name)))
    if x.dtype == torch.bool or x.is_complex() or x.is_floating_point() == integer:
        kind = "an integer" if integer else "a floating-point"
        raise TypeError(f"{name} must have {kind} dtype, got {x.dtype}")
    x = x.detach().to(device, non_blocking=True)
    return x.to(torch.int64) if integer else x


def _first(ids: torch.Tensor, count: int = 5) -> str:
    return str(ids[:count].tolist())


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.to(torch.float64).cpu().numpy().copy()
