"""Sharded inputs of d2fast.distributed: file lists, globs, directories; errors naming files."""
from __future__ import annotations

import os

import numpy as np
import pytest

from d2fast.distributed import shards
from d2fast.distributed.shards import check_matching, list_files, open_shards


def _write(folder, arrays, ext=".npy"):
    paths = []
    for i, arr in enumerate(arrays):
        path = os.path.join(folder, f"part-{i:02d}{ext}")
        if ext == ".npy":
            np.save(path, arr)
        elif ext == ".npz":
            np.savez(path, emb=arr)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            d = arr.shape[1]
            col = pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), d)
            pq.write_table(pa.table({"id": np.arange(len(arr)), "emb": col}), path,
                           row_group_size=7)
        paths.append(path)
    return paths


@pytest.mark.parametrize("ext", [".npy", ".npz", ".parquet"])
def test_rows_in_sorted_path_order(tmp_path, ext):
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(m, 3)).astype(np.float32) for m in (5, 17, 1, 9)]
    _write(tmp_path, parts, ext)
    whole = np.concatenate(parts)
    for spec in (str(tmp_path), str(tmp_path / f"*{ext}"),
                 [str(tmp_path / f"part-{i:02d}{ext}") for i in (3, 1, 0, 2)]):
        files = open_shards(spec, "emb", 2)
        assert files.n == 32 and files.width == 3 and files.dtype == np.float32
        np.testing.assert_array_equal(files.read(0, 32), whole)
        np.testing.assert_array_equal(files.read(4, 23), whole[4:23])  # across files
        ids = np.array([0, 4, 5, 21, 22, 23, 31])
        np.testing.assert_array_equal(files.take(ids), whole[ids])
        np.testing.assert_array_equal(files.take(ids, block=2), whole[ids])


def test_scores_shards_must_match_row_counts(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "s").mkdir()
    _write(tmp_path / "e", [np.zeros((4, 2)), np.zeros((6, 2))])
    bad = _write(tmp_path / "s", [np.zeros(4), np.zeros(5)])
    emb = open_shards(str(tmp_path / "e"), "emb", 2)
    with pytest.raises(ValueError, match=f"{bad[1]} has 5 rows"):
        check_matching(open_shards(str(tmp_path / "s"), "scores", 1), emb)


def test_errors_name_the_file(tmp_path):
    a, b = _write(tmp_path, [np.zeros((4, 3), np.float32), np.zeros((4, 5), np.float32)])
    with pytest.raises(ValueError, match=f"{b} has 5 columns"):
        open_shards([a, b], "emb", 2)
    np.save(b, np.zeros((4, 3), np.float64))
    with pytest.raises(ValueError, match=f"{b} holds float64"):
        open_shards([a, b], "emb", 2)
    np.save(b, np.zeros(4))
    with pytest.raises(ValueError, match=f"{b} holds a 1-D array"):
        open_shards([a, b], "emb", 2)
    missing = str(tmp_path / "gone.npy")
    with pytest.raises(FileNotFoundError, match="gone.npy does not exist"):
        open_shards([a, missing], "emb", 2)
    with pytest.raises(FileNotFoundError, match="matches no"):
        list_files(str(tmp_path / "*.parquet"), "emb")
    text = tmp_path / "x.txt"
    text.write_text("1")
    with pytest.raises(ValueError, match="x.txt is not .npy"):
        list_files([str(text)], "emb")
    with pytest.raises(TypeError, match="emb must be an array"):
        list_files(3, "emb")


def test_npy_rows_and_take_read_only_what_is_asked(tmp_path, monkeypatch):
    whole = np.arange(300, dtype=np.float32).reshape(100, 3)
    path = str(tmp_path / "a.npy")
    np.save(path, whole)
    np.testing.assert_array_equal(shards.npy_rows(path, 7, 31), whole[7:31])
    assert shards.npy_rows(path, 5, 5).shape == (0, 3)
    monkeypatch.setattr(shards, "_TAKE_BLOCK", 4)  # several mappings a call
    ids = np.array([99, 0, 7, 7, 50, 3, 98, 1, 2])
    np.testing.assert_array_equal(shards.npy_take(path, ids), whole[ids])
    square = ids.reshape(3, 3)
    np.testing.assert_array_equal(shards.npy_take(path, square), whole[square])
    assert shards.npy_take(path, np.empty(0, dtype=np.int64)).shape == (0, 3)
    np.save(path, np.asfortranarray(whole))  # Fortran order: read through numpy
    files = open_shards(path, "emb", 2)
    np.testing.assert_array_equal(files.take(np.array([1, 50, 99])), whole[[1, 50, 99]])
    np.testing.assert_array_equal(files.read(3, 9), whole[3:9])
