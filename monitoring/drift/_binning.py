"""Binning numeric values against sorted edges, fast: a lookup table instead of a binary search.

``np.searchsorted`` costs about 35 ns per value here (a branch mispredicted at every level of
the search), which alone would take half a second for 16 columns of a million rows. A
:class:`EdgeIndex` gives exactly the same answer, ``np.searchsorted(edges, x, side="right")``,
in a few passes of arithmetic: it cuts the edges' range into equal cells, remembers for each
cell how many edges lie wholly below it, and compares the value with the one edge that can
fall inside its cell. Cells that hold two or more edges (edges closer than a cell, rare) send
their values to ``np.searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_CELLS = 1 << 16
"""Largest lookup table (cells)."""
CHUNK = 32_768
"""Values binned at a time: the dozen passes over a chunk stay in the processor's cache."""
MAX_PASSES = 3
"""Cells with up to this many candidate edges are resolved by that many comparisons."""
_MIN_CELLS = 64
_MAX_SHARED_CELLS = 0.01
"""Up to this share of the occupied cells may hold two or more edges and use the binary search."""
_CELLS_PER_GAP = 8.0
"""Cells per small gap between edges (the 5th percentile of the gaps)."""


@dataclass(frozen=True)
class EdgeIndex:
    """A lookup table equivalent to ``np.searchsorted(edges, x, side="right")`` for finite ``x``.

    Attributes
    ----------
    edges : ndarray of shape (n_edges,)
        Strictly increasing finite edges.
    offset, scale : float
        ``cell = int(x * scale + offset)`` clipped to ``[0, n_cells + 1]``: cell 0 is below
        the grid, cell ``n_cells + 1`` above it.
    below : ndarray of intp, shape (n_cells + 2,)
        Number of edges certainly <= any value that falls in the cell.
    passes : int
        Comparisons per value: the most candidate edges of a cell, at most :data:`MAX_PASSES`.
    crowded : ndarray of bool, shape (n_cells + 2,)
        Cells with more candidate edges than ``passes``; their values use ``np.searchsorted``.
    padded : ndarray of shape (n_edges + passes,)
        ``edges`` followed by NaN (no value is >= NaN, +inf included).
    """

    edges: np.ndarray
    offset: float
    scale: float
    below: np.ndarray
    passes: int
    crowded: np.ndarray
    padded: np.ndarray

    @property
    def any_crowded(self) -> bool:
        """Whether any cell falls back to a binary search."""
        return bool(self.crowded.any())

    def bin(self, x: np.ndarray, *, workspace: Workspace | None = None) -> np.ndarray:
        """Number of edges <= each value (``np.searchsorted(edges, x, side="right")``).

        Parameters
        ----------
        x : ndarray of float64, shape (n,)
            Values; NaN gives an arbitrary bin (callers mark missing values themselves).
        workspace : Workspace, optional
            Scratch buffers reused from column to column; the result is then a view of
            ``workspace.result``, valid until the next call.

        Returns
        -------
        ndarray of intp, shape (n,)
        """
        work = workspace if workspace is not None and workspace.size >= len(x) else Workspace(len(x))
        result = work.result[:len(x)]
        for start in range(0, len(x), CHUNK):
            stop = min(start + CHUNK, len(x))
            self._bin_chunk(x[start:stop], result[start:stop], work)
        return result

    def window_codes(self, x: np.ndarray, window: np.ndarray, n_codes: int, *,
                     workspace: Workspace | None = None) -> np.ndarray:
        """``window * n_codes + bin`` of each value, ``n_codes - 1`` standing for missing (NaN, ±inf).

        The input of the one ``np.bincount`` that counts every bin of every window.

        Parameters
        ----------
        x : ndarray of float64, shape (n,)
        window : ndarray of intp, shape (n,)
            Window of each value.
        n_codes : int
            Codes per window: the bins (``len(edges) + 1``) and one for missing values.
        workspace : Workspace, optional
            As for :meth:`bin`; the result is a view of ``workspace.flat``.

        Returns
        -------
        ndarray of intp, shape (n,)
        """
        work = workspace if workspace is not None and workspace.size >= len(x) else Workspace(len(x))
        flat = work.flat[:len(x)]
        finite, offset = work.finite, work.offset
        for start in range(0, len(x), CHUNK):
            stop = min(start + CHUNK, len(x))
            out, values, m = flat[start:stop], x[start:stop], stop - start
            self._bin_chunk(values, out, work)
            np.multiply(window[start:stop], n_codes, out=offset[:m])
            np.add(out, offset[:m], out=out)
            np.isfinite(values, out=finite[:m])
            if not finite[:m].all():
                np.add(offset[:m], n_codes - 1, out=offset[:m])
                np.copyto(out, offset[:m], where=~finite[:m])
        return flat

    def _bin_chunk(self, x: np.ndarray, out: np.ndarray, work: Workspace) -> None:
        """The bins of one chunk (at most :data:`CHUNK` values, so the passes stay in cache)."""
        m = len(x)
        cells, cell, below, hit = work.floats[:m], work.cells[:m], work.below[:m], work.hits[:m]
        with np.errstate(invalid="ignore", over="ignore"):
            np.multiply(x, self.scale, out=cells)
            np.add(cells, self.offset, out=cells)
            np.clip(cells, 0.0, len(self.below) - 1, out=cells)
            np.copyto(cell, cells, casting="unsafe")  # truncation: the cell; NaN gives garbage that take clips
        np.take(self.below, cell, out=below, mode="clip")
        np.take(self.padded, below, out=cells, mode="clip")  # the first candidate edge
        np.greater_equal(x, cells, out=hit)
        np.add(below, hit, out=out)
        for _ in range(1, self.passes):
            np.add(below, 1, out=below)
            np.take(self.padded, below, out=cells, mode="clip")
            np.greater_equal(x, cells, out=hit)
            np.add(out, hit, out=out)
        if self.any_crowded:
            crowded = self.crowded.take(cell, mode="clip")
            if crowded.any():
                out[crowded] = np.searchsorted(self.edges, x[crowded], side="right")


class Workspace:
    """Scratch arrays for :class:`EdgeIndex`, reused across the columns of one computation.

    Parameters
    ----------
    size : int
        Values per column.
    """

    def __init__(self, size: int):
        self.size = int(size)
        chunk = min(self.size, CHUNK)
        self.floats = np.empty(chunk, dtype=np.float64)
        self.cells = np.empty(chunk, dtype=np.intp)
        self.below = np.empty(chunk, dtype=np.intp)
        self.offset = np.empty(chunk, dtype=np.intp)
        self.hits = np.empty(chunk, dtype=bool)
        self.finite = np.empty(chunk, dtype=bool)
        self.result = np.empty(self.size, dtype=np.intp)
        self.flat = np.empty(self.size, dtype=np.intp)


def build_edge_index(edges: np.ndarray, *, core: tuple[float, float] | None = None,
                     max_cells: int = MAX_CELLS) -> EdgeIndex:
    """Build the lookup table of strictly increasing, finite ``edges``.

    Parameters
    ----------
    edges : ndarray of shape (n_edges,)
        At least one edge, strictly increasing, finite.
    core : (float, float), optional
        Where most values lie (e.g. the 0.5 % and 99.5 % quantiles): when the cells cannot be
        fine enough over all the edges, they cover this range only.
    max_cells : int, default=65536
        Upper bound on the number of cells.

    Returns
    -------
    EdgeIndex
    """
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) == 0 or not np.all(np.isfinite(edges)):
        raise ValueError(f"edges must be a non-empty 1-D array of finite numbers; got {edges!r}")
    if len(edges) > 1 and not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be strictly increasing")
    first, last, cell_width = _grid_range(edges, max_cells, core)
    low, high = float(edges[first]), float(edges[last])
    span = high - low
    if last == first or not (np.isfinite(span) and span > 0):
        n_cells, span = 1, (span if np.isfinite(span) and span > 0 else 1.0)
    else:
        n_cells = int(min(max(span / cell_width, _MIN_CELLS), max_cells))
    scale = n_cells / span
    offset = 1.0 - low * scale
    width = span / n_cells
    # Slack covers the rounding of x * scale + offset (a few ulps of the largest magnitude).
    slack = 1e-6 * width + 8 * np.spacing(max(abs(low), abs(high), 1e-300))
    cell_low = low + (np.arange(n_cells + 2) - 1.0) * width - slack
    cell_high = low + np.arange(n_cells + 2) * width + slack
    cell_low[0] = -np.inf
    cell_high[-1] = np.inf
    below = np.searchsorted(edges, cell_low, side="right")
    candidates = np.searchsorted(edges, cell_high, side="right") - below
    # One comparison per value when few cells share edges (their values take the binary search),
    # else as many as the most crowded cell needs, up to MAX_PASSES.
    shared = int(np.sum(candidates >= 2))
    if shared <= _MAX_SHARED_CELLS * max(int(np.sum(candidates >= 1)), 1):
        passes = 1
    else:
        passes = int(max(1, min(int(candidates.max()), MAX_PASSES)))
    return EdgeIndex(edges=edges, offset=float(offset), scale=float(scale), below=below.astype(np.intp),
                     passes=passes, crowded=candidates > passes, padded=np.append(edges, np.full(passes, np.nan)))


def _grid_range(edges: np.ndarray, max_cells: int, core: tuple[float, float] | None) -> tuple[int, int, float]:
    """First and last edge the cells span, and the cell width to aim for.

    Every edge when ``max_cells`` cells give the small gaps (their 5th percentile) a few cells
    each; otherwise the edges of ``core`` (the range of most values: heavy tails put edges far
    from the dense middle), values beyond it being resolved by a binary search; cells as fine
    as ``max_cells`` allows when neither is fine enough.
    """
    n_edges = len(edges)
    if n_edges <= 2:
        return 0, n_edges - 1, float(edges[-1] - edges[0]) / _CELLS_PER_GAP if n_edges == 2 else 1.0
    gaps = np.diff(edges)
    ranges = [(0, n_edges - 1)]
    if core is not None:
        first = int(np.clip(np.searchsorted(edges, core[0], side="left"), 0, n_edges - 2))  # first edge in it
        last = int(np.clip(np.searchsorted(edges, core[1], side="right") - 1, first + 1, n_edges - 1))  # last
        ranges.append((first, last))
    for first, last in ranges:
        span = float(edges[last] - edges[first])
        small_gap = float(np.quantile(gaps[first:last], 0.05))
        if _CELLS_PER_GAP * span <= max_cells * small_gap:
            return first, last, small_gap / _CELLS_PER_GAP
    first, last = ranges[-1]
    return first, last, float(edges[last] - edges[first]) / max_cells
