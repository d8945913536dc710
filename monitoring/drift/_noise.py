"""How large a distance gets from sampling noise alone, for a window of n rows against the reference.

A distance such as Jensen–Shannon or Wasserstein is never zero between two samples of the
same distribution, and the smaller the window the larger it gets: a 200-row window scores
about 0.14 in Jensen–Shannon over 22 bins with nothing changed, above the default
threshold of 0.1. :func:`noise_level` says, from the reference profile alone, how high the
score of a window of ``n`` rows goes when nothing changed: it draws ``n_draws`` samples of
the window's size from the reference's own bin shares (all at once, as the rows of one
count table), scores each with the method itself, and takes the ``quantile`` of those
scores. A window is compared against a reference of ``m`` rows, whose own shares are a
sample too, so the draws have the two-sample effective size ``n m / (n + m)``.

Levels are memoised per column, method and window size, the size rounded down to a grid
of powers of 2^(1/4) and the level scaled from the grid point by sqrt(grid / size) (noise
falls as one over the square root of the size), so a page with windows of every size
costs a few simulations per column, once per process.
"""

from __future__ import annotations

import hashlib
import math
import threading
import zlib
from collections import OrderedDict

import numpy as np

from monitoring.drift._methods import ColumnCounts, DriftMethod
from monitoring.drift._profile import ColumnProfile

NOISE_QUANTILE = 0.999
"""A window counts as drifted only above this quantile of the no-change scores: at most one false alarm
in a thousand feature-windows where the noise, not the threshold, decides."""
NOISE_DRAWS = 5000
"""Samples drawn per column, method and window size."""
_GRID_STEPS_PER_DOUBLING = 4
_DRAWS_PER_CHUNK = 1000
_SIMULATION_BINS = 128
_MAX_MEMO = 4096
_memo: OrderedDict[tuple, float] = OrderedDict()
_memo_lock = threading.Lock()


def effective_rows(n_current: int, n_reference: int) -> int:
    """The two-sample effective size ``n m / (n + m)`` (at least 1), rounded down."""
    if n_current <= 0 or n_reference <= 0:
        return 0
    return max(int(n_current * n_reference // (n_current + n_reference)), 1)


def grid_rows(n: int) -> int:
    """``n`` rounded down to the grid of powers of 2^(1/4) (1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 16, ...)."""
    if n <= 4:
        return max(int(n), 1)
    step = math.floor(math.log2(n) * _GRID_STEPS_PER_DOUBLING + 1e-9)
    return min(math.floor(2 ** (step / _GRID_STEPS_PER_DOUBLING)), n)


def column_key(column: ColumnProfile) -> str:
    """A short digest of the reference counts a noise level depends on (their content, not their file)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(column.kind.encode())
    digest.update(np.ascontiguousarray(column.counts, dtype=np.int64).tobytes())
    if column.kind == "numeric" and len(column.step_counts):
        digest.update(np.ascontiguousarray(column.step_counts, dtype=np.int64).tobytes())
        digest.update(np.float64(column.std).tobytes())
    return digest.hexdigest()


def noise_level(column: ColumnProfile, method: DriftMethod, n_rows: int, *, n_reference: int | None = None,
                quantile: float = NOISE_QUANTILE, n_draws: int = NOISE_DRAWS, key: str | None = None) -> float:
    """The ``quantile`` of ``method``'s score on windows of ``n_rows`` rows that did not change.

    Parameters
    ----------
    column : ColumnProfile
        The reference statistics of one column.
    method : DriftMethod
        A distance method (p-value methods already account for the window's size: NaN).
    n_rows : int
        Non-missing values in the window.
    n_reference : int, optional
        Non-missing reference values; the column's by default.
    quantile : float, default=0.999
        In (0.5, 1).
    n_draws : int, default=5000
        No-change windows simulated.
    key : str, optional
        :func:`column_key` of ``column`` when the caller already has it.

    Returns
    -------
    float
        NaN for p-value methods, for an empty window or a reference without values.
    """
    if method.score_kind != "distance" or n_rows <= 0 or column.n_values == 0:
        return math.nan
    if not 0.5 < quantile < 1:
        raise ValueError(f"quantile must be in (0.5, 1); got {quantile!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 100:
        raise ValueError(f"n_draws must be an integer >= 100; got {n_draws!r}")
    size = effective_rows(int(n_rows), int(n_reference if n_reference is not None else column.n_values))
    grid = grid_rows(size)
    memo_key = (key or column_key(column), method.name, grid, float(quantile), n_draws)
    with _memo_lock:
        level = _memo.get(memo_key)
        if level is not None:
            _memo.move_to_end(memo_key)
    if level is None:
        level = _simulate(column, method, grid, quantile=quantile, n_draws=n_draws, seed=memo_key)
        with _memo_lock:
            _memo[memo_key] = level
            while len(_memo) > _MAX_MEMO:
                _memo.popitem(last=False)
    return level * math.sqrt(grid / size) if math.isfinite(level) else level


def noise_levels(column: ColumnProfile, method: DriftMethod, n_rows: np.ndarray, *,
                 quantile: float = NOISE_QUANTILE, n_draws: int = NOISE_DRAWS) -> np.ndarray:
    """:func:`noise_level` of every window size in ``n_rows`` (NaN where it does not apply)."""
    n_rows = np.asarray(n_rows, dtype=np.int64)
    if method.score_kind != "distance" or column.n_values == 0:
        return np.full(len(n_rows), np.nan)
    key = column_key(column)
    levels = {int(n): noise_level(column, method, int(n), quantile=quantile, n_draws=n_draws, key=key)
              for n in np.unique(n_rows)}
    return np.array([levels[int(n)] for n in n_rows], dtype=float)


def clear_noise_cache() -> None:
    """Forget every memoised noise level (for benchmarks of the first computation)."""
    with _memo_lock:
        _memo.clear()


def known_noise_levels() -> list[list]:
    """Every memoised noise level, as JSON-ready ``[column key, method, grid rows, quantile, draws, level]``
    lists: deterministic results of the reference's counts, which a dashboard keeps on disk so that a
    fresh process need not simulate them again (:func:`remember_noise_levels`)."""
    with _memo_lock:
        return [[*key, level] for key, level in _memo.items()]


def remember_noise_levels(levels: list) -> int:
    """Memoise levels from :func:`known_noise_levels`; malformed entries are skipped. Returns how many were taken.

    Parameters
    ----------
    levels : list of list
        ``[column key, method, grid rows, quantile, draws, level]`` each.

    Returns
    -------
    int
    """
    taken = 0
    with _memo_lock:
        for entry in levels if isinstance(levels, list) else ():
            try:
                key_text, method, grid, quantile, draws, level = entry
                key = (str(key_text), str(method), int(grid), float(quantile), int(draws))
                value = float(level)
            except (TypeError, ValueError):
                continue
            if key not in _memo:
                _memo[key] = value
                taken += 1
        while len(_memo) > _MAX_MEMO:
            _memo.popitem(last=False)
    return taken


def _simulate(column: ColumnProfile, method: DriftMethod, n_rows: int, *, quantile: float, n_draws: int,
              seed: tuple) -> float:
    rng = np.random.default_rng(zlib.crc32(repr(seed).encode()))
    parts = []
    for begin in range(0, n_draws, _DRAWS_PER_CHUNK):  # bounded memory: 1,000 draws at a time
        size = min(_DRAWS_PER_CHUNK, n_draws - begin)
        if method.needs == "fine" and column.kind == "numeric":
            counts = _fine_draws(column, n_rows, size, rng)
        else:
            reference = column.counts.astype(np.int64)
            current = rng.multinomial(n_rows, reference / reference.sum(), size=size)
            counts = ColumnCounts(name=column.name, kind=column.kind, reference=reference, current=current,
                                  reference_std=column.std)
        with np.errstate(all="ignore"):
            parts.append(np.asarray(method.compute(counts), dtype=float))
    scores = np.concatenate(parts)
    scores = scores[np.isfinite(scores)]
    return float(np.quantile(scores, quantile)) if len(scores) else math.nan


def _fine_draws(column: ColumnProfile, n_rows: int, n_draws: int, rng: np.random.Generator) -> ColumnCounts:
    """No-change windows in the fine bins Wasserstein reads, merged to about :data:`_SIMULATION_BINS` bins of
    equal reference mass (the 1,000 fine bins make each simulation 8× slower, for a level within 5 % of
    it), with Poisson counts (a third of the multinomial's cost; the window's size varies a little) and
    each bin's values at the reference's mean value in it."""
    reference_fine = np.add.reduceat(column.step_counts, column.fine_starts).astype(np.int64)
    reference_sums = np.add.reduceat(column.step_sums, column.fine_starts)
    edges = column.fine_edges  # fine bin 0 is below edges[0], bin j in [edges[j-1], edges[j]), the last above
    cumulative = np.cumsum(reference_fine) / max(reference_fine.sum(), 1)
    kept = np.searchsorted(cumulative, np.linspace(0.0, 1.0, _SIMULATION_BINS + 1)[1:-1])
    kept = np.unique(np.concatenate([[0], np.clip(kept, 0, len(edges) - 1), [len(edges) - 1]]))
    starts = np.unique(np.concatenate([[0], kept + 1]))  # bin 0, then the bins that begin at each kept edge
    starts = starts[starts < len(reference_fine)]
    reference_fine = np.add.reduceat(reference_fine, starts)
    reference_sums = np.add.reduceat(reference_sums, starts)
    shares = reference_fine / reference_fine.sum()
    current = rng.poisson(shares * n_rows, size=(n_draws, len(shares)))
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_means = np.where(reference_fine > 0, reference_sums / np.maximum(reference_fine, 1), 0.0)
    return ColumnCounts(name=column.name, kind="numeric", reference=column.counts, current=current,
                        fine_edges=edges[kept], reference_fine=reference_fine, current_fine=current,
                        reference_fine_sums=reference_sums, current_fine_sums=current * bin_means,
                        fine_exact=column.fine_exact, reference_std=column.std)
