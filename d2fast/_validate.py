"""Input validation at the Python boundary (SPEC 1): the only place that checks arguments.

Every public function calls these helpers; backends trust what they return. Messages
name the argument and the problem, e.g. ``"k == 0, must satisfy 1 <= k < n (n=10)"``.
"""
from __future__ import annotations

import numbers
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

BLOCK_ROWS = 65536  # rows per block when scanning large (memmap) inputs
# Rows longer than this overflow the float32 squared distances of the kNN search
# (|x|^2 + |y|^2 - 2 x.y <= 4 * 1e36, below float32's 3.4e38).
EMB_MAX_NORM = 1e18


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A NumPy view of an array-like: ndarray, memmap, torch tensor (any device) or list.

    bfloat16 tensors are upcast to float32 (NumPy has no bfloat16).

    Nothing is copied when ``x`` already is an ndarray (memmaps stay memmaps).
    """
    if isinstance(x, np.ndarray):
        arr = x
    elif _is_torch(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: upcast, as float16 is
            x = x.float()
        arr = x.numpy()
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be array-like, got {type(x).__name__} ({exc})") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    return arr


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise ValueError if ``arr`` holds NaN or inf (scanned in row blocks)."""
    if not np.issubdtype(arr.dtype, np.floating):
        return
    for start in range(0, max(arr.shape[0], 1), BLOCK_ROWS):
        block = arr[start:start + BLOCK_ROWS]
        if not np.isfinite(block).all():
            bad = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise ValueError(f"{name} contains NaN or inf (first at row {bad})")


def check_emb(emb: Any, name: str = "emb") -> np.ndarray:
    """Embeddings of shape (n, d), n >= 2, d >= 1, finite, rows of L2 norm <= 1e18
    (``EMB_MAX_NORM``). Returns a view, not a copy."""
    arr = to_numpy(emb, name)
    if arr.ndim != 2:
        raise ValueError(f"{name}.shape == {arr.shape}, expected 2-D (n, d)")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name}.shape == {arr.shape}, expected at least 2 rows and 1 column")
    for start in range(0, arr.shape[0], BLOCK_ROWS):  # one pass: a memmap is read once
        block = arr[start:start + BLOCK_ROWS]
        with np.errstate(over="ignore", invalid="ignore"):  # NaN, inf or a huge norm
            sq = np.einsum("ij,ij->i", block, block, dtype=np.float64, casting="unsafe")
        if not (sq <= EMB_MAX_NORM**2).all():
            bad = start + int(np.flatnonzero(~(sq <= EMB_MAX_NORM**2))[0])
            if not np.isfinite(arr[bad]).all():
                raise ValueError(f"{name} contains NaN or inf (first at row {bad})")
            raise ValueError(f"{name} row {bad} has L2 norm {np.sqrt(sq[bad - start]):.3g}, "
                             f"above {EMB_MAX_NORM:.0e}: its float32 distances would overflow; "
                             "rescale the embeddings")
    return arr


def check_scores(scores: Any, n: int | None = None, name: str = "scores") -> np.ndarray:
    """Scores of shape (n,), finite; returns a new C-contiguous float64 array (never a view)."""
    arr = to_numpy(scores, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}.shape == {arr.shape}, expected 1-D (n,)")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}.shape == {arr.shape}, expected ({n},) to match the other input")
    out = np.array(arr, dtype=np.float64, order="C", copy=True)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or inf (first at index "
                         f"{int(np.flatnonzero(~np.isfinite(out))[0])})")
    return out


def _whole_numbers(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    """int64 copy of an integer array, or of floats holding whole numbers (as text files
    are read); TypeError naming ``name`` otherwise."""
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise TypeError(f"{name} must be {what} (integers), got {arr.dtype} values")
    return arr.astype(np.int64)


def check_ids(ids: Any, n: int, name: str, *, unique: bool = False) -> np.ndarray:
    """Row ids: 1-D whole numbers in ``[0, n)`` (no repeats when ``unique``); int64 copy."""
    arr = to_numpy(ids, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}.shape == {arr.shape}, expected 1-D")
    arr = _whole_numbers(arr, name, "row ids")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} must lie in [0, n) with n={n} "
                         f"(found {arr.min()} .. {arr.max()})")
    if unique:
        sorted_ids = np.sort(arr)
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if repeated.size:
            count = np.unique(repeated).size
            more = f" ({count} ids are repeated)" if count > 1 else ""
            raise ValueError(f"{name} repeats row id {int(repeated[0])}{more}")
    return arr


def check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Class ids of the n rows, shape (n,); int64 copy.

    Whole numbers are kept as they are (any values). Strings and other objects become
    ids ``0 .. C-1`` in the order of their sorted unique values; ``label_names`` gives
    the names back.
    """
    names, codes = _label_codes(labels, name)
    if codes is None:
        arr = to_numpy(labels, name)
        if arr.shape != (n,):
            raise ValueError(f"{name}.shape == {arr.shape}, expected ({n},)")
        return _whole_numbers(arr, name, "class ids")
    if codes.shape != (n,):
        raise ValueError(f"{name}.shape == {codes.shape}, expected ({n},)")
    return codes


def label_names(labels: Any) -> np.ndarray | None:
    """The sorted unique names of string/object labels (index = class id), else None."""
    return _label_codes(labels, "labels")[0]


def _label_codes(labels: Any, name: str):
    if _is_torch(labels):
        return None, None
    arr = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    if arr.dtype.kind not in "USO":
        return None, None
    try:
        names, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        raise TypeError(f"{name} mixes values that cannot be sorted against each other "
                        f"(e.g. strings and numbers); give one type") from None
    return names, codes.reshape(arr.shape).astype(np.int64)


def check_int(value: Any, name: str, lo: int, hi: int, hi_text: str) -> int:
    """An integer (not bool) with ``lo <= value <= hi``; ``hi_text`` explains the upper bound."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} == {value}, must satisfy {lo} <= {name} <= {hi} ({hi_text})")
    return value


def check_k(k: Any, n: int) -> int:
    """Neighbours per node: ``1 <= k < n``."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= int(k) < n:
        raise ValueError(f"k == {int(k)}, must satisfy 1 <= k < n (n={n})")
    return int(k)


def check_real(value: Any, name: str, lo: float = 0.0) -> float:
    """A finite real number ``>= lo``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < lo:
        raise ValueError(f"{name} == {value}, must be finite and >= {lo}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r}, must be one of {', '.join(map(repr, choices))}")
    return value


def resolve_n_keep(n: int, rate: Any, n_keep: Any) -> int:
    """Kept count: ``n_keep`` if given, else ``floor((1 - rate) * n)``.

    The product is computed exactly on the decimal value of ``rate`` (``0.9`` is 9/10),
    so ``rate=0.9, n=10`` keeps 1, not 0.
    """
    if n_keep is not None:
        return check_int(n_keep, "n_keep", 0, n, f"n={n}")
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise TypeError(f"rate must be a real number, got {type(rate).__name__}")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate == {rate}, must satisfy 0 <= rate < 1 (the fraction removed)")
    return int((1 - Fraction(repr(rate))) * n)  # int() of a non-negative Fraction = floor


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


_GRAPH_HINT = ("use fewer rows, a smaller k, or build the graph once and reuse it "
               "(Graph.save / Graph.load)")


def check_memory(nbytes: float, what: str, hint: str = _GRAPH_HINT) -> None:
    """Refuse, before allocating, work that needs more memory than is available.

    Raises
    ------
    MemoryError
        Naming the step, what it needs and what is free, and what to do about it.
    """
    free = available_memory()
    if free is not None and nbytes > free:
        raise MemoryError(f"{what} needs about {nbytes / 2**30:.1f} GiB but only "
                          f"{free / 2**30:.1f} GiB are available; {hint}")
