"""A pool of threads each running faiss (and its BLAS) on one thread, for the IVF stages.

Many small independent faiss calls (a list scan, a group's k-means, a block's
nearest-centroid search) run in parallel on single-threaded faiss instead of one after
another on all cores: OpenMP's barriers stall when another process holds a core. Tasks
write disjoint outputs, so results do not depend on the number of threads.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import numpy as np


@contextmanager
def faiss_threads() -> Iterator[ThreadPoolExecutor]:
    """As many threads as faiss has (``faiss.omp_get_max_threads()``), each running faiss
    on one thread."""
    import faiss

    pool = ThreadPoolExecutor(max(1, faiss.omp_get_max_threads()),
                              initializer=faiss.omp_set_num_threads, initargs=(1,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run(pool: ThreadPoolExecutor, tasks: list) -> list:
    """Run ``(function, *args)`` tasks on ``pool``, wait, and return their results in
    order; on Ctrl-C or an error, drop those not started (the running ones finish) and
    raise."""
    futures = [pool.submit(*task) for task in tasks]
    try:
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.cancel()


def pairwise_sq(Q: np.ndarray, B: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 (len(Q), len(B)): squared L2 distances of C-contiguous float32 rows, by faiss
    (``pairwise_L2sqr``: one BLAS product and the norms), into ``out`` when given."""
    import faiss

    out = np.empty((Q.shape[0], B.shape[0]), dtype=np.float32) if out is None else out
    faiss.pairwise_L2sqr(Q.shape[1], Q.shape[0], faiss.swig_ptr(Q), B.shape[0],
                         faiss.swig_ptr(B), faiss.swig_ptr(out))
    return out
