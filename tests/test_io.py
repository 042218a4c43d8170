"""d2fast.io: every input format, atomic writes, output checks, sidecars."""
from __future__ import annotations

import hashlib
import json
import os
import stat

import numpy as np
import pytest

from d2fast import io


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 6)).astype(np.float32), rng.random(50)


def test_npy_is_memory_mapped(tmp_path, data):
    emb, _ = data
    np.save(tmp_path / "e.npy", emb)
    out = io.load_array(str(tmp_path / "e.npy"), name="emb", ndim=2)
    assert isinstance(out, np.memmap) and not out.flags.writeable
    np.testing.assert_array_equal(out, emb)


def test_npz_stored_member_is_memory_mapped_compressed_is_read(tmp_path, data):
    emb, scores = data
    np.savez(tmp_path / "a.npz", emb=emb, scores=scores)
    np.savez_compressed(tmp_path / "c.npz", emb=emb, scores=scores)
    stored = io.load_array(str(tmp_path / "a.npz"), "emb", name="emb")
    assert isinstance(stored, np.memmap)
    np.testing.assert_array_equal(stored, emb)
    packed = io.load_array(str(tmp_path / "c.npz"), "scores", name="scores")
    assert not isinstance(packed, np.memmap)
    np.testing.assert_array_equal(packed, scores)
    np.savez(tmp_path / "one.npz", scores)
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "one.npz")), scores)


def test_npz_key_errors_name_the_option(tmp_path, data):
    emb, scores = data
    np.savez(tmp_path / "a.npz", emb=emb, scores=scores)
    with pytest.raises(ValueError, match=r"holds 2 arrays \(emb, scores\).*--known-idx-key"):
        io.load_array(str(tmp_path / "a.npz"), name="known_idx")
    with pytest.raises(ValueError, match="has no 'x'"):
        io.load_array(str(tmp_path / "a.npz"), "x")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a valid .npz"):
        io.load_array(str(tmp_path / "bad.npz"))


def test_pt_tensor_dict_and_bfloat16(tmp_path, data):
    import torch

    emb, scores = data
    torch.save(torch.from_numpy(emb), tmp_path / "e.pt")
    torch.save({"scores": torch.from_numpy(scores), "emb": torch.from_numpy(emb)},
               tmp_path / "d.pt")
    torch.save(torch.from_numpy(emb).to(torch.bfloat16), tmp_path / "b.pt")
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "e.pt"), ndim=2), emb)
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "d.pt"), "scores"), scores)
    bf = io.load_array(str(tmp_path / "b.pt"))
    assert bf.dtype == np.float32
    np.testing.assert_allclose(bf, emb, rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="holds a single tensor"):
        io.load_array(str(tmp_path / "e.pt"), "emb")
    torch.save({"a": 1}, tmp_path / "i.pt")
    with pytest.raises(TypeError, match="holds a int"):
        io.load_array(str(tmp_path / "i.pt"))


def test_parquet_columns_list_columns_and_named_column(tmp_path, data):
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb, scores = data
    table = pa.table({f"f{j}": emb[:, j] for j in range(emb.shape[1])})
    pq.write_table(table, tmp_path / "cols.parquet")
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "cols.parquet"), ndim=2), emb)
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "cols.parquet"), "f3"), emb[:, 3])
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])
    pq.write_table(pa.table({"emb": fixed, "scores": scores}), tmp_path / "fixed.parquet")
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "fixed.parquet"), "emb"), emb)
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "fixed.parquet"), "scores"),
                                  scores)
    with pytest.raises(ValueError, match="list column 'emb' among others"):
        io.load_array(str(tmp_path / "fixed.parquet"), name="emb")
    pq.write_table(pa.table({"emb": [list(r) for r in emb]}), tmp_path / "list.parquet")
    np.testing.assert_array_equal(io.load_array(str(tmp_path / "list.parquet")), emb)
    pq.write_table(pa.table({"emb": [[1.0, 2.0], [3.0]]}), tmp_path / "ragged.parquet")
    with pytest.raises(ValueError, match="different lengths"):
        io.load_array(str(tmp_path / "ragged.parquet"))
    pq.write_table(pa.table({"name": ["a", "b"]}), tmp_path / "str.parquet")
    with pytest.raises(TypeError, match="expected numbers"):
        io.load_array(str(tmp_path / "str.parquet"))
    with pytest.raises(ValueError, match="no column 'x'"):
        io.load_array(str(tmp_path / "cols.parquet"), "x")


def test_text_and_csv(tmp_path):
    (tmp_path / "i.txt").write_text("3\n1\n4\n")
    idx = io.load_array(str(tmp_path / "i.txt"), ndim=1)
    assert idx.dtype == np.int64 and idx.tolist() == [3, 1, 4]
    (tmp_path / "s.csv").write_text("score\n0.5\n-1.25\n2\n")
    s = io.load_array(str(tmp_path / "s.csv"))
    assert s.dtype == np.float64 and s.tolist() == [0.5, -1.25, 2.0]
    (tmp_path / "one.txt").write_text("7\n")
    assert io.load_array(str(tmp_path / "one.txt"), ndim=1).tolist() == [7]
    (tmp_path / "bad.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="cannot read .* as numbers"):
        io.load_array(str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="hold one array"):
        io.load_array(str(tmp_path / "i.txt"), "k")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="scores: .*nope.npy does not exist"):
        io.load_array(str(tmp_path / "nope.npy"), name="scores")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match="unknown extension '.json'"):
        io.load_array(str(tmp_path / "x.json"))
    with pytest.raises(ValueError, match="is a directory"):
        io.load_array(str(tmp_path))
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot read .* as .npy"):
        io.load_array(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    with pytest.raises(TypeError, match="holds <U1 data"):
        io.load_array(str(tmp_path / "str.npy"), name="scores")
    np.save(tmp_path / "m.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"shape \(3, 2\), expected 1-D"):
        io.load_array(str(tmp_path / "m.npy"), ndim=1)


def _listing(folder) -> list:
    return sorted(os.listdir(folder))


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.npy"
    for exc in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with io.atomic_write(str(target)) as tmp:
                assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".npy")
                with open(tmp, "wb") as f:
                    f.write(b"partial")
                raise exc
        assert _listing(tmp_path) == []


def test_atomic_write_keeps_old_file_until_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with io.atomic_write(str(target)) as tmp:
            open(tmp, "w").write("new, partial")
            raise ValueError
    assert target.read_text() == "old" and _listing(tmp_path) == ["out.txt"]
    with io.atomic_write(str(target)) as tmp:
        open(tmp, "w").write("new")
    assert target.read_text() == "new" and _listing(tmp_path) == ["out.txt"]
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & 0o044, f"mode {oct(mode)}: the temporary file's 0600 was kept"


def test_check_output(tmp_path):
    out = tmp_path / "k.npy"
    assert io.check_output(str(out), False, io.ARRAY_OUTPUTS) == ".npy"
    out.write_bytes(b"x")
    with pytest.raises(FileExistsError, match="--force"):
        io.check_output(str(out), False, io.ARRAY_OUTPUTS)
    assert io.check_output(str(out), True, io.ARRAY_OUTPUTS) == ".npy"
    with pytest.raises(ValueError, match="unknown extension '.png'"):
        io.check_output(str(tmp_path / "k.png"), False, io.ARRAY_OUTPUTS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.check_output(str(tmp_path / "no" / "k.npy"), False, io.ARRAY_OUTPUTS)


@pytest.mark.parametrize("ext", [".npy", ".txt", ".csv"])
def test_save_array_round_trips_exactly(tmp_path, ext):
    rng = np.random.default_rng(1)
    for arr in (rng.permutation(100).astype(np.int64), rng.normal(size=40) * 1e-7):
        path = str(tmp_path / f"a{ext}")
        io.save_array(path, arr)
        back = io.load_array(path)
        assert back.dtype == arr.dtype
        np.testing.assert_array_equal(back, arr)
    assert _listing(tmp_path) == [f"a{ext}"]


def test_file_info_and_sidecar(tmp_path):
    path = tmp_path / "f.bin"
    payload = os.urandom(5 * (1 << 20) + 3)  # more than one hashing chunk
    path.write_bytes(payload)
    info = io.file_info(str(path))
    assert info["sha256"] == hashlib.sha256(payload).hexdigest()
    assert info["bytes"] == len(payload) and info["path"] == str(path)
    side = io.write_sidecar(str(path), {"shape": (2, 3), "n": np.int64(4), "info": info})
    assert side == f"{path}.json"
    record = json.loads(open(side).read())
    assert record == {"shape": [2, 3], "n": 4, "info": info}
    versions = io.versions()
    assert versions["numpy"] == np.__version__ and versions["d2fast"]
