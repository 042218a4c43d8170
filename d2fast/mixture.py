"""A mode of outliers at the high end of a 1-D score distribution: the deepest valley of a
kernel density estimate with a separate, smaller mode of high scores above it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_ROWS = 20  # fewer rows: no density is estimated
GRID = 512  # evaluation points of the density over [min, max]
MIN_DIP = 1.4  # the high mode's peak must be at least this many times the valley's density
MIN_Z = 3.0  # and above the valley by this many Poisson standard errors of the counts
MAX_FRACTION = 0.5  # the high mode is a minority of the rows


@dataclass(frozen=True)
class HighMode:
    """The high-score mode of a score distribution, if it has one.

    ``found``: a valley of the density with a separate mode above it holding less than
    ``MAX_FRACTION`` of the rows; ``count``: rows above the valley (0 when not found);
    ``threshold``: the valley's score (nan when not found); ``dip``: peak density above
    the valley over the valley's density (0 when not found); ``why``: one line.
    """

    found: bool
    count: int
    threshold: float
    dip: float
    why: str


def high_mode(scores: np.ndarray) -> HighMode:
    """The deepest qualifying valley of the density of ``scores`` (float64, shape (n,)).

    Density: Gaussian kernel on a grid of ``GRID`` points over [min, max], Silverman's
    bandwidth ``0.9 min(sd, IQR / 1.34) n^(-1/5)``, at least the smallest gap between
    distinct scores (integer scores such as forgetting counts are not split at every
    integer). A local minimum v of the density qualifies when the rows above it are at
    least 1 and fewer than ``MAX_FRACTION`` of all, the highest density above it is
    at least ``MIN_DIP`` times the density at v, and the counts in one bandwidth around the
    peak and around v differ by at least ``MIN_Z`` Poisson standard errors. Among the
    qualifying valleys the one with the smallest density ratio (deepest dip) wins.
    Deterministic; O(n log n + GRID * n_bins) time, O(n) memory.
    """
    n = scores.size
    if n < MIN_ROWS:
        return HighMode(False, 0, np.nan, 0.0, f"{n} rows, fewer than {MIN_ROWS} to look for a mode")
    x = np.sort(scores)
    lo, hi = float(x[0]), float(x[-1])
    if not hi > lo:
        return HighMode(False, 0, np.nan, 0.0, "constant scores")
    h = _bandwidth(x)
    grid = np.linspace(lo, hi, GRID)
    dens = _density(x, grid, h)
    best = None
    for v in np.flatnonzero((dens[1:-1] < dens[:-2]) & (dens[1:-1] <= dens[2:])) + 1:
        above = n - int(np.searchsorted(x, grid[v], "right"))
        if not 0 < above < MAX_FRACTION * n:
            continue
        p = v + int(np.argmax(dens[v:]))
        ratio = dens[p] / max(dens[v], 1e-300)
        at_peak, at_valley = _near(x, grid[p], h), _near(x, grid[v], h)
        z = (at_peak - at_valley) / np.sqrt(at_peak + at_valley)
        if ratio >= MIN_DIP and z >= MIN_Z and (best is None or ratio > best[1]):
            best = (v, ratio, above)
    if best is None:
        return HighMode(False, 0, np.nan, 0.0, "no separate mode of high scores (density has "
                        f"no valley with a peak >= {MIN_DIP:g}x above it)")
    v, ratio, above = best
    return HighMode(True, above, float(grid[v]), float(ratio),
                    f"a separate mode of {above} high-score rows above {grid[v]:.4g} "
                    f"(density peak {ratio:.1f}x the valley)")


def _bandwidth(x: np.ndarray) -> float:
    """Silverman's rule, at least the smallest gap between distinct values, > 0."""
    sd = float(x.std())
    iqr = float(np.subtract(*np.quantile(x, [0.75, 0.25])))
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    distinct = np.unique(x)
    gap = float(np.diff(distinct).min()) if distinct.size > 1 else 0.0
    return max(0.9 * spread * x.size ** -0.2, gap, (x[-1] - x[0]) / GRID)


def _density(x: np.ndarray, grid: np.ndarray, h: float) -> np.ndarray:
    """Gaussian KDE of sorted x at grid (unnormalised counts), via a fine histogram."""
    edges = np.linspace(grid[0], grid[-1], 4 * GRID + 1)
    counts, _ = np.histogram(x, edges)
    centres = 0.5 * (edges[:-1] + edges[1:])
    out = np.empty(grid.size)
    for start in range(0, grid.size, 64):  # O(64 * 4 GRID) floats at a time
        g = grid[start:start + 64, None]
        out[start:start + 64] = np.exp(-0.5 * ((g - centres[None, :]) / h) ** 2) @ counts
    return out


def _near(x: np.ndarray, c: float, h: float) -> int:
    """Rows of sorted x within one bandwidth of c."""
    return int(np.searchsorted(x, c + h, "right") - np.searchsorted(x, c - h, "left"))
