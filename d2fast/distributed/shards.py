"""Sharded inputs: many ``.npy`` / ``.npz`` / parquet files read as one array by row ranges.

Global row id = position in the concatenation of the files in sorted path order. Each
file's rows, width and dtype come from its header (the ``.npy`` header, the ``.npz``
member's header, the parquet metadata), so opening a data set reads no rows; rows are
read by ranges (``read``) or by sorted ids (``take``), never whole into one process.

A ``.npy`` file is read with positioned reads (:func:`npy_rows`) or through a mapping
that is dropped after each block of rows (:func:`npy_take`): the file's pages do not
stay in the reading process's resident memory.
"""
from __future__ import annotations

import glob
import mmap
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from d2fast import io

EXTENSIONS = (".npy", ".npz", ".parquet")


@dataclass(frozen=True)
class ShardFiles:
    """Files read as one array of shape ``(n,)`` or ``(n, d)``.

    Attributes
    ----------
    paths : tuple of str
        The files, in sorted path order.
    rows : ndarray of int64, shape (files,)
        Rows of each file.
    width : int or None
        Columns (d) of a 2-D array; None for 1-D (scores).
    dtype : numpy dtype
        The common dtype of the files.
    name : str
        The argument's name, for error messages ('emb', 'scores').
    """

    paths: tuple
    rows: np.ndarray
    width: int | None
    dtype: np.dtype
    name: str

    @property
    def n(self) -> int:
        return int(self.rows.sum())

    @property
    def offsets(self) -> np.ndarray:
        """int64 (files + 1,): file f holds the global rows ``offsets[f]:offsets[f + 1]``."""
        return np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Global rows ``start:stop`` (a copy, the files' dtype)."""
        offsets = self.offsets
        parts = []
        first = int(np.searchsorted(offsets, start, "right")) - 1
        for f in range(max(first, 0), len(self.paths)):
            lo, hi = max(start, offsets[f]), min(stop, offsets[f + 1])
            if lo >= hi:
                if offsets[f] >= stop:
                    break
                continue
            parts.append(_read_range(self.paths[f], self.name, int(lo - offsets[f]),
                                     int(hi - offsets[f])))
        if not parts:
            return np.empty((0,) if self.width is None else (0, self.width), self.dtype)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def take(self, ids: np.ndarray, block: int = 1 << 16) -> np.ndarray:
        """Rows at the sorted global ids ``ids`` (int64): from a ``.npy`` file only those
        rows (:func:`npy_take`), from other files by reads of at most ``block`` rows."""
        shape = (ids.size,) if self.width is None else (ids.size, self.width)
        out = np.empty(shape, self.dtype)
        offsets = self.offsets
        cuts = np.searchsorted(ids, offsets)
        for f in np.flatnonzero(np.diff(cuts)):
            a, b = int(cuts[f]), int(cuts[f + 1])
            local = ids[a:b] - offsets[f]
            if _plain_npy(self.paths[f]):
                out[a:b] = npy_take(self.paths[f], local)
                continue
            while a < b:  # runs of ids that fit one read of at most `block` rows
                stop = max(a + 1, min(b, int(np.searchsorted(ids, ids[a] + block, "left"))))
                lo, hi = int(ids[a]), int(ids[stop - 1]) + 1
                out[a:stop] = self.read(lo, hi)[ids[a:stop] - lo]
                a = stop
        return out


_TAKE_BLOCK = 1 << 14  # rows gathered through one mapping (it touches at most one page each)


def npy_layout(path: str) -> tuple[int, np.dtype, tuple, bool]:
    """(data offset in bytes, dtype, shape, C order) of a ``.npy`` file, from its header."""
    with open(path, "rb") as f:
        shape, fortran, dtype = io.read_npy_header(f)
        return f.tell(), dtype, shape, not fortran or len(shape) < 2


def _plain_npy(path: str) -> bool:
    """A ``.npy`` file of plain (not object) data in C order: :func:`npy_rows` reads it."""
    if not path.lower().endswith(".npy"):
        return False
    _, dtype, _, c_order = npy_layout(path)
    return c_order and not dtype.hasobject


def npy_rows(path: str, start: int, stop: int, layout: tuple | None = None) -> np.ndarray:
    """Rows ``start:stop`` of a C-order ``.npy`` file (``layout``: its :func:`npy_layout`,
    when known), read into a new array (no mapping)."""
    offset, dtype, shape, _ = layout or npy_layout(path)
    row = int(np.prod(shape[1:], dtype=np.int64))
    stop = max(start, stop)
    with open(path, "rb") as f:
        f.seek(offset + start * row * dtype.itemsize)
        out = np.fromfile(f, dtype=dtype, count=(stop - start) * row)
    if out.size != (stop - start) * row:
        raise ValueError(f"{path} is shorter than its header says")
    return out.reshape((stop - start,) + tuple(shape[1:]))


def npy_take(path: str, ids: np.ndarray, layout: tuple | None = None) -> np.ndarray:
    """Rows ``ids`` (int array, any order) of a C-order ``.npy`` file (``layout``: its
    :func:`npy_layout`, when known), a new array.

    The rows are copied out of a read-only mapping of the file that is closed after each
    block of ``_TAKE_BLOCK`` ids, so at most that many pages of the file are resident in
    this process at a time, whatever the file's size."""
    offset, dtype, shape, _ = layout or npy_layout(path)
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty(ids.shape + tuple(shape[1:]), dtype=dtype)
    if ids.size == 0:
        return out
    flat = out.reshape((ids.size,) + tuple(shape[1:]))
    items = int(np.prod(shape, dtype=np.int64))
    with open(path, "rb") as f:
        for a in range(0, ids.size, _TAKE_BLOCK):
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                arr = np.frombuffer(mapped, dtype=dtype, count=items, offset=offset)
                flat[a:a + _TAKE_BLOCK] = arr.reshape(shape)[ids.ravel()[a:a + _TAKE_BLOCK]]
                del arr  # the mapping closes only when no array views it
    return out


def list_files(spec: Any, name: str) -> list[str]:
    """The shard files of ``spec`` (a list of paths, a glob or a directory), sorted.

    Raises
    ------
    FileNotFoundError
        When a listed file is missing or a glob / directory matches no shard file.
    ValueError
        When a file's extension is not one of .npy, .npz, .parquet.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            paths = [os.path.join(spec, f) for f in os.listdir(spec)
                     if f.lower().endswith(EXTENSIONS)]
            where = f"directory {spec}"
        elif any(c in spec for c in "*?["):
            paths = glob.glob(spec)
            where = f"glob {spec!r}"
        else:
            paths, where = [spec], spec
        if not paths:
            raise FileNotFoundError(f"{name}: {where} matches no .npy, .npz or .parquet file")
    elif isinstance(spec, Sequence) and spec and all(
            isinstance(p, (str, os.PathLike)) for p in spec):
        paths = [os.fspath(p) for p in spec]
    else:
        raise TypeError(f"{name} must be an array, a list of files, a glob or a directory, "
                        f"got {type(spec).__name__}")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: shard file {path} does not exist")
        if not path.lower().endswith(EXTENSIONS):
            raise ValueError(f"{name}: shard file {path} is not .npy, .npz or .parquet")
    if len(set(paths)) != len(paths):
        raise ValueError(f"{name}: a shard file is listed twice")
    return sorted(paths)


def open_shards(spec: Any, name: str, ndim: int) -> ShardFiles:
    """Read the headers of the shard files of ``spec`` and check they form one array.

    Every file must hold a real ``ndim``-D array of the first file's width and dtype;
    otherwise a ValueError names the file.
    """
    paths = list_files(spec, name)
    rows, width, dtype = [], None, None
    for path in paths:
        shape, dt = _header(path, name)
        if len(shape) != ndim:
            raise ValueError(f"{name}: {path} holds a {len(shape)}-D array, expected {ndim}-D")
        if dt.kind not in "fiu":
            raise TypeError(f"{name}: {path} holds {dt} data, expected real numbers")
        if dtype is None:
            width, dtype = (shape[1] if ndim == 2 else None), dt
        elif ndim == 2 and shape[1] != width:
            raise ValueError(f"{name}: {path} has {shape[1]} columns, the other shards "
                             f"{width} ({paths[0]})")
        elif dt != dtype:
            raise ValueError(f"{name}: {path} holds {dt}, the other shards {dtype} "
                             f"({paths[0]})")
        rows.append(shape[0])
    out = ShardFiles(tuple(paths), np.asarray(rows, dtype=np.int64), width, dtype, name)
    if out.n < (2 if ndim == 2 else 1):
        raise ValueError(f"{name}: the shards hold {out.n} rows")
    return out


def check_matching(scores: ShardFiles, emb: ShardFiles) -> None:
    """Score shards must match the embedding shards file by file (row counts)."""
    if len(scores.paths) != len(emb.paths):
        raise ValueError(f"scores: {len(scores.paths)} shard files for {len(emb.paths)} "
                         "embedding shards; give one scores array or one file per shard")
    for path, rows, emb_path, emb_rows in zip(scores.paths, scores.rows, emb.paths, emb.rows):
        if rows != emb_rows:
            raise ValueError(f"scores: {path} has {rows} rows, its embedding shard "
                             f"{emb_path} has {emb_rows}")


def _header(path: str, name: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype of a shard file, from its header or metadata only."""
    if path.lower().endswith(".parquet"):
        col, pf = _parquet_column(path, name)
        field = pf.schema_arrow.field(col)
        pa, _ = io.pyarrow_modules()
        rows = pf.metadata.num_rows
        if pa.types.is_fixed_size_list(field.type):
            return (rows, field.type.list_size), np.dtype(field.type.value_type.to_pandas_dtype())
        if io.is_list_type(field.type):
            first = _list_rows(pf, col, path, name, 0, min(rows, 1))
            return (rows, first.shape[1] if rows else 0), first.dtype
        return (rows,), np.dtype(field.type.to_pandas_dtype())
    arr = _open_array(path, name)
    return arr.shape, arr.dtype


def _open_array(path: str, name: str) -> np.ndarray:
    """A ``.npy`` / ``.npz`` shard memory-mapped (a compressed npz member is read whole)."""
    return io.load_array(path, None, name=name)


def _parquet_column(path: str, name: str):
    """The one column of a parquet shard to read: the embedding list column (``emb``) or
    the single numeric column (``scores``); a column called ``name`` wins."""
    pa, pq = io.pyarrow_modules()
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise ValueError(f"{name}: cannot read {path} as parquet ({exc})") from None
    schema = pf.schema_arrow
    if name in schema.names:
        return name, pf
    lists = [f.name for f in schema if io.is_list_type(f.type)]
    numbers = [f.name for f in schema if pa.types.is_integer(f.type) or
               pa.types.is_floating(f.type)]
    found = lists if name == "emb" else numbers
    if len(found) != 1:
        raise ValueError(f"{name}: {path} has {len(found)} candidate columns "
                         f"({', '.join(found) or 'none'}); name the column {name!r}")
    return found[0], pf


def _list_rows(pf, col: str, path: str, name: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a parquet list column, reading only the row groups needed."""
    meta = pf.metadata
    parts, offset = [], 0
    for g in range(meta.num_row_groups):
        size = meta.row_group(g).num_rows
        lo, hi = max(start, offset), min(stop, offset + size)
        if lo < hi:
            column = pf.read_row_group(g, columns=[col]).column(0).combine_chunks()
            if io.is_list_type(column.type):
                arr = io._list_column(column, path, name)
            else:
                if column.null_count:
                    raise ValueError(f"{name}: column {col!r} of {path} has missing values")
                arr = column.to_numpy()
            parts.append(arr[lo - offset:hi - offset])
        offset += size
        if offset >= stop:
            break
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _read_range(path: str, name: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one shard file, as a new array."""
    if path.lower().endswith(".parquet"):
        col, pf = _parquet_column(path, name)
        return np.array(_list_rows(pf, col, path, name, start, stop))
    if _plain_npy(path):
        return npy_rows(path, start, stop)
    return np.array(_open_array(path, name)[start:stop])
