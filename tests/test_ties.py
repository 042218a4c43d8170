"""tie_keys: splitmix64 of the row id, a total order unrelated to row order."""
from __future__ import annotations

import numpy as np

from d2fast._ties import tie_keys, tie_order


def test_tie_keys_are_splitmix64_and_distinct():
    # splitmix64's first outputs from state 0, 1, 2 (Vigna's reference generator)
    assert tie_keys(np.arange(3)).tolist() == [16294208416658607535, 10451216379200822465,
                                               10905525725756348110]
    keys = tie_keys(np.arange(200_000))
    assert keys.dtype == np.uint64 and np.unique(keys).size == keys.size
    np.testing.assert_array_equal(tie_keys(np.array([[5, 7]])), keys[[5, 7]][None])


def test_tie_order_is_not_row_order():
    order = tie_order(np.arange(10_000))
    np.testing.assert_array_equal(np.sort(order), np.arange(10_000))
    # unrelated to the id: the first tenth of the order holds about a tenth of each decile
    assert np.bincount(order[:1000] // 1000, minlength=10).min() > 60
    np.testing.assert_array_equal(tie_order(np.array([9, 3, 7])),
                                  np.argsort(tie_keys(np.array([9, 3, 7]))))
