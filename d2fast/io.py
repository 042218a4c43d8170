"""Files for the ``d2fast`` command line: reading arrays, atomic writes, JSON sidecars.

Inputs: ``.npy`` (memory-mapped), ``.npz`` (a member by key; memory-mapped when stored
uncompressed), ``.pt`` (a tensor, or a dict of tensors by key), ``.parquet`` (columns,
via pyarrow) and ``.txt``/``.csv`` (numbers, e.g. row ids). Outputs are written to a
temporary file in the target's directory and renamed, so an interrupted run leaves no
partial file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from importlib import metadata
from typing import Any, Iterator

import numpy as np

INPUTS = (".npy", ".npz", ".pt", ".parquet", ".txt", ".csv")
ARRAY_OUTPUTS = (".npy", ".txt", ".csv")
_HASH_CHUNK = 1 << 22  # bytes read per step when hashing


def load_array(path: str, key: str | None = None, *, name: str = "input",
               ndim: int | None = None) -> np.ndarray:
    """Read one array from ``path``, without loading large ``.npy``/``.npz`` data whole.

    Parameters
    ----------
    path : str
        A ``.npy``, ``.npz``, ``.pt``, ``.parquet``, ``.txt`` or ``.csv`` file.
    key : str, optional
        The ``.npz`` member, ``.pt`` dict entry or ``.parquet`` column. Needed when the
        file holds several; without it a ``.parquet`` file gives all its numeric columns
        as a 2-D array (a single list column gives its rows).
    name : str, default='input'
        The argument's name, used in error messages (e.g. ``'scores'``).
    ndim : {1, 2}, optional
        Expected number of dimensions; a mismatch is an error naming ``name``.

    Returns
    -------
    ndarray
        A read-only memmap for ``.npy`` and stored ``.npz`` members, else an array.
        Text files give int64 when every value is an integer, else float64.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError, TypeError
        Unknown extension, unreadable file, missing key, non-numeric data (strings are
        allowed for ``name="labels"``: class names) or wrong ndim.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{name}: {path} is a directory, expected a file")
    ext = _extension(path, INPUTS, name)
    reader = {".npy": _read_npy, ".npz": _read_npz, ".pt": _read_pt,
              ".parquet": _read_parquet, ".txt": _read_text, ".csv": _read_text}[ext]
    if key is not None and ext in (".npy", ".txt", ".csv"):
        raise ValueError(f"{name}: a key ({key!r}) was given but {ext} files hold one array")
    arr = reader(path, key, name)
    if name == "labels" and arr.dtype.kind in "US":  # class names: mapped to ids later
        return _check_ndim(arr, path, name, ndim)
    if arr.dtype.hasobject or not (np.issubdtype(arr.dtype, np.integer)
                                   or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name}: {path} holds {arr.dtype} data, expected real numbers")
    return _check_ndim(arr, path, name, ndim)


def _check_ndim(arr: np.ndarray, path: str, name: str, ndim: int | None) -> np.ndarray:
    if ndim is not None and arr.ndim != ndim:
        want = "1-D (n,)" if ndim == 1 else "2-D (n, d)"
        raise ValueError(f"{name}: {path} holds an array of shape {arr.shape}, expected {want}")
    return arr


def load_graph(path: str, name: str = "graph"):
    """A :class:`d2fast.Graph` saved by ``Graph.save`` / ``d2fast graph`` (memory-mapped)."""
    from d2fast.graph import Graph

    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: {path} does not exist")
    try:
        return Graph.load(path)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _extension(path: str, allowed: tuple, name: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in allowed:
        raise ValueError(f"{name}: {path} has an unknown extension {ext or '(none)'!r}; "
                         f"expected one of {', '.join(allowed)}")
    return ext


def _read_npy(path: str, key: str | None, name: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # object arrays, bad header
        raise ValueError(f"{name}: cannot read {path} as .npy ({exc})") from None


def _read_npz(path: str, key: str | None, name: str) -> np.ndarray:
    from d2fast.graph import _read_npz as read_members

    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename[:-4] if info.filename.endswith(".npy") else info.filename:
                       info for info in zf.infolist()}
    except zipfile.BadZipFile:
        raise ValueError(f"{name}: {path} is not a valid .npz file") from None
    key = _pick_key(key, list(members), path, name)
    try:
        if all(info.compress_type == zipfile.ZIP_STORED for info in members.values()):
            return read_members(path, mmap=True)[key]
        # a compressed member (np.savez_compressed) cannot be memory-mapped: read it whole
        with np.load(path, allow_pickle=False) as npz:
            return npz[key]
    except ValueError as exc:
        raise ValueError(f"{name}: cannot read {key!r} from {path} ({exc})") from None


def _read_pt(path: str, key: str | None, name: str) -> np.ndarray:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{name}: cannot read {path} as a torch file ({exc})") from None
    except Exception as exc:
        raise ValueError(f"{name}: cannot read {path} as a torch file ({exc})") from None
    if isinstance(obj, dict):
        obj = obj[_pick_key(key, list(obj), path, name)]
    elif key is not None:
        raise ValueError(f"{name}: a key ({key!r}) was given but {path} holds a single tensor")
    if not isinstance(obj, torch.Tensor):
        raise TypeError(f"{name}: {path} holds a {type(obj).__name__}, expected a tensor")
    if obj.dtype in (torch.bfloat16, torch.complex64, torch.complex128, torch.bool):
        if obj.dtype != torch.bfloat16:
            raise TypeError(f"{name}: {path} holds {obj.dtype} data, expected real numbers")
        obj = obj.float()
    return obj.detach().numpy()


def pyarrow_modules():
    """``(pyarrow, pyarrow.parquet)``, or an ImportError that says how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading .parquet needs pyarrow: pip install 'd2fast[parquet]'") \
            from None
    return pa, pq


def is_list_type(t) -> bool:
    """Whether a pyarrow type is a (fixed-size, large or plain) list: an embedding column."""
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t)


def _read_parquet(path: str, key: str | None, name: str) -> np.ndarray:
    pa, pq = pyarrow_modules()
    try:
        columns = pq.read_schema(path).names
    except Exception as exc:
        raise ValueError(f"{name}: cannot read {path} as parquet ({exc})") from None
    if key is not None and key not in columns:
        raise ValueError(f"{name}: {path} has no column {key!r} (columns: {', '.join(columns)})")
    table = pq.read_table(path, columns=[key] if key is not None else None)
    arrays = []
    for col_name, col in zip(table.column_names, table.columns):
        col = col.combine_chunks()
        if is_list_type(col.type):
            if table.num_columns > 1:
                raise ValueError(f"{name}: {path} has a list column {col_name!r} among "
                                 f"others; choose one column with {_key_flag(name)}")
            return _list_column(col, path, name)
        if col.null_count:
            raise ValueError(f"{name}: column {col_name!r} of {path} has missing values")
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise TypeError(f"{name}: column {col_name!r} of {path} is {col.type}, "
                            "expected numbers")
        arrays.append(col.to_numpy())
    if not arrays:
        raise ValueError(f"{name}: {path} has no columns")
    return arrays[0] if len(arrays) == 1 else np.column_stack(arrays)


def _list_column(col, path: str, name: str) -> np.ndarray:
    """A list or fixed-size-list column of equal-length numeric lists as (n, d)."""
    import pyarrow as pa

    if col.null_count:
        raise ValueError(f"{name}: {path} has missing rows in its list column")
    if pa.types.is_fixed_size_list(col.type):
        d = col.type.list_size
    else:
        lengths = np.diff(col.offsets.to_numpy())
        if lengths.size and (lengths != lengths[0]).any():
            raise ValueError(f"{name}: {path} has lists of different lengths "
                             f"({lengths.min()} .. {lengths.max()})")
        d = int(lengths[0]) if lengths.size else 0
    values = col.flatten()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise TypeError(f"{name}: {path} holds lists of {values.type}, expected numbers")
    return values.to_numpy(zero_copy_only=False).reshape(len(col), d)


def _read_text(path: str, key: str | None, name: str) -> np.ndarray:
    delimiter = "," if path.lower().endswith(".csv") else None
    for skip in (0, 1):  # a first line that is not numbers is a header
        try:
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=1,
                             dtype=np.float64)
            break
        except ValueError as exc:
            error = exc
    else:
        raise ValueError(f"{name}: cannot read {path} as numbers ({error})")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.size and np.isfinite(arr).all() and (arr == np.round(arr)).all() and \
            np.abs(arr).max() < 2**53:
        return arr.astype(np.int64)
    return arr


def _pick_key(key: str | None, keys: list, path: str, name: str) -> str:
    if key is None:
        if len(keys) == 1:
            return keys[0]
        raise ValueError(f"{name}: {path} holds {len(keys)} arrays ({', '.join(map(str, keys))}); "
                         f"choose one with {_key_flag(name)}")
    if key not in keys:
        raise ValueError(f"{name}: {path} has no {key!r} (it holds {', '.join(map(str, keys))})")
    return key


def _key_flag(name: str) -> str:
    return f"--{name.replace('_', '-')}-key (or --key)"


def file_info(path: str) -> dict:
    """Size, modification time and sha256 of a file (hashed in 4 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "bytes": stat.st_size, "mtime": stat.st_mtime,
            "sha256": digest.hexdigest()}


def check_output(path: str, force: bool, allowed: tuple, name: str = "output") -> str:
    """Refuse, before any work, an output that exists (unless ``force``) or has a bad
    extension or directory. Returns the extension."""
    ext = _extension(path, allowed, name)
    if os.path.isdir(path):
        raise ValueError(f"{name}: {path} is a directory")
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name}: directory {folder} does not exist")
    return ext


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary file has the same extension as ``path`` (some writers add theirs) and
    is removed on any exception, KeyboardInterrupt included, so ``path`` is either the
    complete new file or untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{os.path.splitext(base)[1]}",
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def read_npy_header(f) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran order, dtype) from the ``.npy`` header at the position of the open
    binary file ``f``, which is left at the first byte of the data."""
    major, _ = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if major == 1 else \
        np.lib.format.read_array_header_2_0
    return read(f)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_array(path: str, arr: np.ndarray) -> None:
    """Write ``arr`` atomically as ``.npy`` or as text (``.txt``, ``.csv``: one value a line;
    integers as integers, floats with 17 significant digits so they read back exactly)."""
    ext = os.path.splitext(path)[1].lower()
    with atomic_write(path) as tmp:
        if ext == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        else:
            fmt = "%d" if np.issubdtype(arr.dtype, np.integer) else "%.17g"
            np.savetxt(tmp, arr, fmt=fmt, delimiter=",")


def write_sidecar(path: str, record: dict) -> str:
    """Write ``record`` as JSON to ``<path>.json`` atomically; returns that path."""
    out = f"{path}.json"
    with atomic_write(out) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
    return out


def _jsonable(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def versions() -> dict:
    """Installed versions of d2fast and the libraries it runs on (None if not installed)."""
    import platform

    out = {"python": platform.python_version()}
    for dist in ("d2fast", "numpy", "faiss-cpu", "faiss-gpu", "torch", "numba", "pyarrow",
                 "matplotlib", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:  # the library itself, whichever wheel (faiss-cpu, faiss-gpu, conda) installed it
        import faiss

        out["faiss"] = faiss.__version__
    except ImportError:
        out["faiss"] = None
    return out


def array_info(arr: np.ndarray) -> dict:
    """Shape and dtype of an array, for the sidecar."""
    return {"shape": list(arr.shape), "dtype": str(arr.dtype)}
