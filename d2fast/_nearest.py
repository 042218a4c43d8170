"""Exact nearest-centroid search whose cost a row does not grow with the number of centroids.

The list of a row is its nearest centroid in exact arithmetic (ties to the lower index).
Below ``GROUP_MIN`` centroids a row is compared with all of them. From there on the
centroids are grouped (a k-means of the centroids, sqrt(nlist) groups, groups of more than
twice the mean size split again), and a row is compared with the group centres and with
the centroids of its ``PROBE_GROUPS`` nearest groups (BLAS products, the rows of a group
together). The nearest centroid found, ``c``, is then proved: with ``u`` an upper bound of
the row's exact distance to ``c``, every centroid at least as near to the row lies within
``2 u`` of ``c`` (triangle inequality). ``c``'s ``NEIGHBOURS`` nearest centroids are known
with their distances, and a lower bound of the distance to any other; those of them within
``2 u`` that no scanned group holds are compared one by one (faiss's
``pairwise_indexed_L2sqr``), and the row is proved when no other centroid can be within
``u + u'`` of ``c`` (``u'``: the bound for the final nearest). A row without a proof is
compared with every centroid. When more than ``UNPROVEN_MAX`` of the rows seen so far
(``SWITCH_ROWS`` at least) had no proof, the next rows are compared with every centroid
directly: the triangle inequality proves little where the centroids are evenly spread
(64-d rows around 10000 clusters, 6324 centroids: 69 % of the rows without a proof, and
the grouped search costs 1.7x the comparison with every centroid). The result is the same
either way.

The float32 distances (faiss, rows and centroids shifted by the centroids' mean) are
within ``err (|x| + |c|)^2`` of the exact ones, ``err = 2 (d + 4) 2^-24`` (twice the
standard bound of a float32 dot product of d terms with the norms and the shift). Every
bound above allows for that, and a row whose nearest two float32 distances are within
twice that error is decided by float64 distances to its candidates, ties to the lower
index. So every row gets what the float64 brute force gives (the first ``argmin`` of
``((x - C) ** 2).sum(1)`` over all centroids, x and C in float64).
"""
from __future__ import annotations

import hashlib
import threading

import numpy as np

from d2fast._threads import faiss_threads, pairwise_sq, run

GROUP_MIN = 1024  # from this many centroids on, rows scan centroid groups
NEIGHBOURS = 64  # centroid neighbours remembered for each centroid (the proof)
PROBE_GROUPS = 2  # nearest groups (by centre) whose centroids a row is compared with
UNPROVEN_MAX = 0.5  # above this share of rows without a proof, compare with every centroid
SWITCH_ROWS = 1 << 16  # rows seen before that share is trusted
_DIST_BLOCK = 1 << 22  # float32 distances computed at once (16 MiB)
_TIE_BLOCK = 1 << 21  # float64 entries of the near-ties' differences at once (16 MiB)
_F32 = 2.0 ** -24  # float32 unit roundoff


def f32_error(d: int) -> float:
    """``err`` of d-dimensional float32 squared distances (faiss's BLAS form, norms and a
    dot product): ``|float32 - exact| <= err (|x| + |c|)^2``."""
    return 2.0 * (d + 4) * _F32


def out_of_reach(h: np.ndarray, qn: np.ndarray, kth: np.ndarray, d: int) -> np.ndarray:
    """bool: whether no row at distance ``h`` or more (not squared) from a query of norm
    ``qn`` can get a float32 squared distance (faiss's BLAS form) at most ``kth``.

    Such a row x at exact squared distance t^2 >= h^2 gets a float32 value at least
    ``g(t) = t^2 - err (2 |q| + t)^2`` (as ``|x| <= |q| + t``), and g grows for
    ``t (1 - err) > 2 err |q|``; so ``g(h) > kth`` there rules it out. ``h = inf``: none."""
    err = f32_error(d)
    with np.errstate(invalid="ignore"):
        return np.isinf(h) | ((h * (1 - err) > 2 * err * qn) &
                              (h * h - err * (2 * qn + h) ** 2 > kth))


class NearestCentroid:
    """The exact nearest centroid of float32 rows (L2, ties to the lower index).

    Parameters
    ----------
    centroids : ndarray of float32, shape (nlist, d)
    """

    def __init__(self, centroids: np.ndarray):
        C = np.ascontiguousarray(centroids, dtype=np.float32)
        self.nlist, d = C.shape
        self.C64 = C.astype(np.float64)
        self.mean = C.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.Cc = np.ascontiguousarray(C - self.mean)  # shifted centroids, float32
        self.cmax = float(np.linalg.norm(self.Cc.astype(np.float64), axis=1).max())
        self.err = f32_error(d)  # |float32 - exact| <= err (|x| + |c|)^2
        self.grouped = self.nlist >= GROUP_MIN
        self.seen, self.unproven = 0, 0  # rows of grouped calls, and those without a proof
        self._count = threading.Lock()
        if self.grouped:
            self._group()

    def _group(self) -> None:
        """Groups (a k-means of all the centroids, sqrt(nlist) groups) and each centroid's
        nearest others."""
        n, C = self.nlist, self.Cc
        G = int(np.sqrt(n))
        group = _kmeans_groups(C, G, 0)
        size = n / G  # groups of more than twice that are split by their own k-means
        for g in np.flatnonzero(np.bincount(group) > 2 * size):
            ids = np.flatnonzero(group == g)
            sub = _kmeans_groups(C[ids], int(np.ceil(ids.size / size)), int(1 + g))
            group[ids] = np.where(sub == 0, g, group.max() + sub)
        used, group = np.unique(group, return_inverse=True)  # drop empty groups
        self.group_of = group.astype(np.int64)
        self.members = np.argsort(self.group_of, kind="stable")
        self.goff = np.zeros(used.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.group_of, minlength=used.size), out=self.goff[1:])
        self.gcent = np.ascontiguousarray(np.stack(
            [C[self.members[a:b]].mean(axis=0) for a, b in zip(self.goff[:-1], self.goff[1:])]))
        self.nbr, self.nbr_lo, self.out_lo = self._neighbours(min(NEIGHBOURS, n - 1))

    def _neighbours(self, K: int):
        """Each centroid's K nearest others, nearest first: ids (nlist, K), lower bounds
        of their exact distances (nlist, K) and of the distance to any other (nlist,);
        row blocks in parallel on single-threaded faiss."""
        n = self.nlist
        step = max(1, _DIST_BLOCK // n)
        with faiss_threads() as pool:
            parts = run(pool, [(self._neighbours_of, a, min(n, a + step), K)
                               for a in range(0, n, step)])
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _neighbours_of(self, a: int, b: int, K: int):
        """:meth:`_neighbours` of the centroids a:b."""
        n, C = self.nlist, self.Cc
        e_cc = self.err * (2 * self.cmax) ** 2
        D = pairwise_sq(np.ascontiguousarray(C[a:b]), C)
        D[np.arange(b - a), np.arange(a, b)] = np.inf  # not itself
        part = np.argpartition(D, K, axis=1) if K < n - 1 else np.argsort(D, axis=1)
        out_lo = np.full(b - a, np.inf)
        if K < n - 1:  # the (K+1)-th nearest: no nearer one outside the list
            rest = np.take_along_axis(D, part[:, K:K + 1], axis=1)[:, 0].astype(np.float64)
            out_lo = np.sqrt(np.maximum(0.0, rest - e_cc))
        part = part[:, :K]
        dk = np.take_along_axis(D, part, axis=1).astype(np.float64)
        order = np.argsort(dk, axis=1, kind="stable")
        return (np.take_along_axis(part, order, axis=1).astype(np.int64),
                np.sqrt(np.maximum(0.0, np.take_along_axis(dk, order, axis=1) - e_cc)),
                out_lo)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """int64 (m,): the nearest centroid of every float32 row of ``x`` (m, d)."""
        if not self.grouped or self.proofs_fail():
            return self._all(x, *self._shifted(x))
        out, unproven = self.proved(x)
        with self._count:
            self.seen += x.shape[0]
            self.unproven += unproven
        return out

    def _shifted(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows shifted by the centroids' mean (float32) and their float32 distance
        error bounds (float64, per row)."""
        xc = np.ascontiguousarray(x - self.mean, dtype=np.float32)
        norms = np.linalg.norm(xc.astype(np.float64), axis=1)
        return xc, self.err * (norms + self.cmax) ** 2

    def proved(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """The nearest centroid of every row of ``x`` by the grouped search (grouped
        centroids only), and the number of rows it found no proof for."""
        xc, e = self._shifted(x)
        m, G = x.shape[0], self.gcent.shape[0]
        at = np.arange(m)
        Dg = pairwise_sq(xc, self.gcent)
        top = np.empty((m, min(PROBE_GROUPS, G)), dtype=np.int64)
        for q in range(top.shape[1]):  # the nearest groups by centre, one at a time
            top[:, q] = Dg.argmin(axis=1)
            Dg[at, top[:, q]] = np.inf
        scanned = np.zeros((m, G), dtype=bool)
        scanned[at[:, None], top] = True
        b1, b2, i1 = self._scan(xc, np.repeat(at, top.shape[1]), top.ravel())
        # the proof, pivot c = i1: every centroid at most as far as the nearest is within
        # 2u of c (u >= exact d(x, c)); those c's list of neighbours names and no scanned
        # group holds are compared one by one
        c = i1.copy()
        u = np.sqrt(b1 + e)
        missing = (self.nbr_lo[c] <= 2 * u[:, None]) & \
            ~scanned[at[:, None], self.group_of[self.nbr[c]]]
        t, s = np.nonzero(missing)  # t ascending
        if t.size:
            dm = np.empty(t.size, dtype=np.float32)
            ids = self.nbr[c[t], s]
            faiss_pairs(xc, t, self.Cc, ids, dm)
            order = np.lexsort((dm, t))  # by row, nearest first
            t, dm, ids = t[order], dm[order].astype(np.float64), ids[order]
            first = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
            second = np.where(np.r_[first[1:], t.size] > first + 1,
                              dm[np.minimum(first + 1, t.size - 1)], np.inf)
            self._merge(t[first], dm[first], ids[first], second, b1, b2, i1)
        ok = self.out_lo[c] > u + np.sqrt(b1 + e)
        out = i1
        tie = np.flatnonzero(ok & (b2 <= b1 + 2 * e))  # float32 near-ties: float64
        step = max(1, _TIE_BLOCK // ((1 + NEIGHBOURS) * x.shape[1]))  # bounded temporaries
        for a in range(0, tie.size, step):
            rows = tie[a:a + step]
            cand = np.sort(np.concatenate([c[rows, None], self.nbr[c[rows]]], axis=1), axis=1)
            d2 = ((self.C64[cand] - x[rows, None, :].astype(np.float64)) ** 2).sum(axis=2)
            out[rows] = cand[np.arange(rows.size), d2.argmin(axis=1)]  # ties: the lower
        rest = np.flatnonzero(~ok)  # no proof: compare with every centroid
        if rest.size:
            out[rest] = self._all(x[rest], xc[rest], e[rest])
        return out, rest.size

    def proofs_fail(self) -> bool:
        """Whether more than ``UNPROVEN_MAX`` of the (at least ``SWITCH_ROWS``) rows seen
        had no proof: then comparing with every centroid is cheaper."""
        with self._count:
            return self.seen >= SWITCH_ROWS and self.unproven > UNPROVEN_MAX * self.seen

    def _scan(self, xc, rows, groups):
        """Compare row ``rows[t]`` with the centroids of group ``groups[t]`` (BLAS, the
        rows of a group together): the nearest and second nearest float32 distance of every
        row (float64, inf when none) and the index of the nearest."""
        m = xc.shape[0]
        b1, b2 = np.full(m, np.inf), np.full(m, np.inf)
        i1 = np.zeros(m, dtype=np.int64)
        order = np.argsort(groups, kind="stable")
        rows, groups = rows[order], groups[order]
        cuts = np.flatnonzero(np.diff(groups)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, groups.size]):
            g, r = groups[a], rows[a:b]
            ids = self.members[self.goff[g]:self.goff[g + 1]]
            D = pairwise_sq(np.ascontiguousarray(xc[r]), self.Cc[ids])
            at = np.arange(r.size)
            j = D.argmin(axis=1)
            m1 = D[at, j].astype(np.float64)
            D[at, j] = np.inf
            m2 = D.min(axis=1).astype(np.float64)
            self._merge(r, m1, ids[j], m2, b1, b2, i1)
        return b1, b2, i1

    @staticmethod
    def _merge(r, m1, j1, m2, b1, b2, i1) -> None:
        """Fold candidates (nearest distance ``m1``, its index ``j1``, second ``m2``) into
        the nearest two of the distinct rows ``r``."""
        o1, o2 = b1[r], b2[r]
        i1[r] = np.where(m1 < o1, j1, i1[r])
        b2[r] = np.minimum(np.maximum(o1, m1), np.minimum(o2, m2))
        b1[r] = np.minimum(o1, m1)

    def _all(self, x, xc, e) -> np.ndarray:
        """int64 (len(x),): nearest centroid by comparing with all of them (row blocks),
        float32 near-ties decided in float64."""
        out = np.empty(x.shape[0], dtype=np.int64)
        step = max(1, _DIST_BLOCK // self.nlist)
        for a in range(0, x.shape[0], step):
            D = pairwise_sq(np.ascontiguousarray(xc[a:a + step]), self.Cc)
            j = D.argmin(axis=1)
            out[a:a + step] = j
            b1 = D[np.arange(D.shape[0]), j].astype(np.float64)
            thr = b1 + 2 * e[a:a + step]
            for r in np.flatnonzero((D <= thr[:, None]).sum(axis=1) > 1):
                out[a + r] = self._float64(x[a + r], np.flatnonzero(D[r] <= thr[r]))
        return out

    def _float64(self, x: np.ndarray, cand: np.ndarray) -> int:
        """The candidate centroid nearest to row x in float64 (ties to the lower index)."""
        cand = np.unique(cand)
        d2 = ((self.C64[cand] - x.astype(np.float64)) ** 2).sum(axis=1)
        return int(cand[np.argmin(d2)])


def _kmeans_groups(C: np.ndarray, G: int, seed: int) -> np.ndarray:
    """int64 (len(C),): the nearest of G k-means centres (of all rows of C) of every row."""
    import faiss

    kmeans = faiss.Kmeans(C.shape[1], G, niter=20, seed=seed, min_points_per_centroid=1,
                          max_points_per_centroid=C.shape[0])
    kmeans.train(C)
    return pairwise_sq(C, np.ascontiguousarray(kmeans.centroids)).argmin(axis=1).astype(np.int64)


def faiss_pairs(x: np.ndarray, ix: np.ndarray, y: np.ndarray, iy: np.ndarray,
                out: np.ndarray) -> None:
    """``out[t] = |x[ix[t]] - y[iy[t]]|^2`` (float32 rows, int64 indices) by faiss."""
    import faiss

    ix, iy = np.ascontiguousarray(ix, dtype=np.int64), np.ascontiguousarray(iy, dtype=np.int64)
    faiss.pairwise_indexed_L2sqr(x.shape[1], ix.size, faiss.swig_ptr(x), faiss.swig_ptr(ix),
                                 faiss.swig_ptr(y), faiss.swig_ptr(iy), faiss.swig_ptr(out))


_CACHE: dict = {}
_CACHED = 2  # centroid sets kept (nlist='auto' weighs two partitions, then assigns one)
_CACHE_LOCK = threading.Lock()


def nearest_centroid(centroids: np.ndarray) -> NearestCentroid:
    """The :class:`NearestCentroid` of these centroids, built once and kept for the next
    calls with equal centroids (the distributed build assigns block by block; the two
    latest sets are kept)."""
    C = np.ascontiguousarray(centroids, dtype=np.float32)
    key = (C.shape, hashlib.blake2b(C.tobytes(), digest_size=16).digest())
    with _CACHE_LOCK:
        if key not in _CACHE:
            while len(_CACHE) >= _CACHED:
                del _CACHE[next(iter(_CACHE))]  # the oldest
            _CACHE[key] = NearestCentroid(C)
        return _CACHE[key]
