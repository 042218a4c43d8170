"""Real data that installs offline: Fashion-MNIST (Debian ``dataset-fashion-mnist``) and
scikit-learn's bundled digits. Nothing here downloads anything."""
from __future__ import annotations

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"
_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def read_idx(path: str) -> np.ndarray:
    """An IDX file (the MNIST format, gzipped or not) as a uint8 array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says shape {shape}")
    return data.reshape(shape)


def load_fashion_mnist(data_dir: str | None = None):
    """Fashion-MNIST as ``(x_train, y_train, x_test, y_test)``.

    Returns
    -------
    x_train : float32 of shape (60000, 784), pixels in [0, 1]
    y_train : int64 of shape (60000,), classes 0..9
    x_test : float32 of shape (10000, 784)
    y_test : int64 of shape (10000,)

    Raises
    ------
    FileNotFoundError
        When the files are missing; the message gives the install command.
    """
    data_dir = data_dir or FASHION_MNIST_DIR
    paths = [os.path.join(data_dir, f) for f in _FILES]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST not found ({missing[0]}); install it with "
                                f"'{FASHION_MNIST_INSTALL}' or pass its directory")
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    return (xtr.reshape(len(xtr), -1).astype(np.float32) / 255, ytr.astype(np.int64),
            xte.reshape(len(xte), -1).astype(np.float32) / 255, yte.astype(np.int64))


def load_digits(test_fraction: float = 0.25, seed: int = 0):
    """scikit-learn's bundled 8x8 digits (1797 images) split like :func:`load_fashion_mnist`.

    Returns ``(x_train, y_train, x_test, y_test)``: float32 of shape (m, 64) in [0, 1] and
    int64 labels 0..9; a seeded random split with ``test_fraction`` of the rows in the test set.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
