"""Model-agnostic Shapley values by antithetic permutation sampling, evaluated in large batches.

The estimator is the one of ``shap.PermutationExplainer``: for each random permutation of
the features, add the features one by one in that order and then remove them in the same
order (which is the reverse permutation), and average each feature's marginal contribution.
The value of a coalition S is the model output averaged over a background sample with the
features outside S taken from the background rows (the interventional, or "independent
masker", value function). Additivity holds exactly: the values of a row sum to its output
minus the background's mean output.

What differs from shap's implementation is only *when* the model is called: shap evaluates
each permutation separately (one model call per permutation, so ~20 HTTP requests per row
for a remote model), whereas :func:`permutation_shap` plans every masked row of every
permutation, drops duplicates (a row whose masked features equal the background's is
evaluated once), and hands them to the model in as few calls as the request size allows.
The masked rows are streamed: they are built one explained row at a time while the model
calls go out, and each explained row's values are reduced as soon as its answers are in,
so memory holds about one call's rows and one explained row's masked rows, never all of
them (a 30-feature black box needs ~58,000 masked rows per explained row). It is
vectorised numpy, so it needs no just-in-time compilation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd


def _codes(X: pd.DataFrame, background: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Integer codes per column for the rows and the background (equal values, equal codes)."""
    x_codes = np.empty(X.shape, dtype=np.int32)
    b_codes = np.empty(background.shape, dtype=np.int32)
    uniques = []
    for j, name in enumerate(X.columns):
        joined = pd.concat([X[name].astype(object), background[name].astype(object)], ignore_index=True)
        codes, values = pd.factorize(joined, use_na_sentinel=False)
        x_codes[:, j] = codes[:len(X)]
        b_codes[:, j] = codes[len(X):]
        uniques.append(np.asarray(values, dtype=object))
    return x_codes, b_codes, uniques


def coalition_plan(n_features: int, n_permutations: int, *, random_state: int | np.random.Generator | None = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Permutations and the coalitions they visit, forward then backward.

    Parameters
    ----------
    n_features : int
    n_permutations : int
    random_state : int, Generator or None, default=0

    Returns
    -------
    orders : ndarray of shape (n_permutations, n_features)
        The permutations.
    masks : ndarray of bool of shape (n_permutations, 2 * n_features + 1, n_features)
        Coalition after each step: step 0 is empty, step ``n_features`` is full, step
        ``2 * n_features`` is empty again.
    """
    rng = np.random.default_rng(random_state)
    orders = np.stack([rng.permutation(n_features) for _ in range(n_permutations)]) if n_permutations else \
        np.zeros((0, n_features), dtype=int)
    masks = np.zeros((n_permutations, 2 * n_features + 1, n_features), dtype=bool)
    for p, order in enumerate(orders):
        current = np.zeros(n_features, dtype=bool)
        for step, feature in enumerate(order, start=1):
            current[feature] = True
            masks[p, step] = current
        for step, feature in enumerate(order, start=n_features + 1):
            current[feature] = False
            masks[p, step] = current
    return orders, masks


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an integer matrix (in a fixed order) and the index of each row among them."""
    rows = np.ascontiguousarray(rows)
    as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


class _MaskedRows:
    """The masked rows of each explained row, built on demand: coalition c, background b ->
    ``where(inner[c], x, b)``, duplicates dropped."""

    _KEEP = 2  # blocks kept: the one being sent and the one whose answers are being reduced

    def __init__(self, inner: np.ndarray, x_codes: np.ndarray, b_codes: np.ndarray):
        self.inner = inner
        self.x_codes = x_codes
        self.b_codes = b_codes
        self._recent: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._recent:
            rows = np.where(self.inner[:, None, :], self.x_codes[i][None, None, :], self.b_codes[None, :, :])
            if len(self._recent) >= self._KEEP:
                del self._recent[min(self._recent)]
            self._recent[i] = _unique_rows(rows.reshape(-1, self.x_codes.shape[1]))
        return self._recent[i]

    def count(self, i: int) -> int:
        rows = np.where(self.inner[:, None, :], self.x_codes[i][None, None, :], self.b_codes[None, :, :])
        return len(_unique_rows(rows.reshape(-1, self.x_codes.shape[1]))[0])


def plan_model_rows(X: pd.DataFrame, background: pd.DataFrame, *, n_permutations: int = 10,
                    random_state: int | None = 0, include_background: bool = True) -> int:
    """Model rows :func:`permutation_shap` will ask for (the masked rows after duplicates are dropped).

    Parameters
    ----------
    X, background, n_permutations, random_state
        As for :func:`permutation_shap`.
    include_background : bool, default=True
        Count the background's own rows (False when their outputs are already known).

    Returns
    -------
    int
    """
    x_codes, b_codes, _ = _codes(X, background)
    inner, _, _ = _inner_coalitions(X.shape[1], n_permutations, random_state)
    masked = _MaskedRows(inner, x_codes, b_codes)
    return (len(background) if include_background else 0) + len(X) + sum(masked.count(i) for i in range(len(X)))


def _inner_coalitions(n_features: int, n_permutations: int,
                      random_state) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coalitions strictly between empty and full that the permutations visit, for each
    (permutation, step) the index of its coalition (-1 = empty, -2 = full, else a row of ``inner``),
    and :func:`coalition_plan`'s masks."""
    _, masks = coalition_plan(n_features, n_permutations, random_state=random_state)
    inner = np.unique(masks[:, 1:2 * n_features].reshape(-1, n_features), axis=0)
    inner = inner[(inner.sum(axis=1) > 0) & (inner.sum(axis=1) < n_features)]
    lookup = {m.tobytes(): k for k, m in enumerate(inner)}
    step_index = np.empty(masks.shape[:2], dtype=np.int64)
    for p in range(masks.shape[0]):
        for s in range(masks.shape[1]):
            m = masks[p, s]
            step_index[p, s] = -1 if not m.any() else (-2 if m.all() else lookup[m.tobytes()])
    return inner, step_index, masks


def permutation_shap(
    predict: Callable[[Sequence[pd.DataFrame], Callable | None], Iterable[np.ndarray]],
    X: pd.DataFrame,
    background: pd.DataFrame,
    *,
    n_permutations: int = 10,
    random_state: int | None = 0,
    max_rows_per_call: int = 50_000,
    background_output: np.ndarray | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Shapley values of every row of ``X`` against ``background``.

    Parameters
    ----------
    predict : callable
        ``predict(frames, progress)`` takes a sequence of DataFrames (a :class:`LazyFrames`:
        each built when it is read, meant to be read in order; ``frames.row_counts`` gives
        their sizes without building them) and returns or yields, for each in order, the model
        outputs as an array of shape (n_rows, n_outputs). Each DataFrame is meant to be one
        model call (one HTTP request for a remote model); ``progress`` is passed on. A
        generator keeps memory small: each answer is reduced as soon as it arrives.
    X : DataFrame of shape (n_rows, n_features)
        Rows to explain.
    background : DataFrame of shape (n_background, n_features)
        Background sample; same columns and dtypes as ``X``.
    n_permutations : int, default=10
        Permutations per row; each is walked forward and backward, so the values are exact
        for models whose interactions are at most pairwise.
    random_state : int or None, default=0
        Seed of the permutations; the same permutations are used for every row, so a row's
        values do not depend on which other rows are explained with it.
    max_rows_per_call : int, default=50_000
        Largest DataFrame handed to ``predict``; rows of several explained rows are packed
        together up to this size.
    background_output : ndarray of shape (n_background, n_outputs), optional
        Model outputs of the background when already known (saves their evaluation).
    progress : callable, optional
        Called with (fraction done, text); passed to ``predict``.

    Returns
    -------
    values : ndarray of shape (n_rows, n_features, n_outputs)
    base_values : ndarray of shape (n_outputs,)
        Mean output over the background.
    outputs : ndarray of shape (n_rows, n_outputs)
        Model output of each row (``base_values + values.sum(axis=1)``).
    model_rows : int
        Rows handed to ``predict`` in all.
    background_output : ndarray of shape (n_background, n_outputs)
        Model outputs of the background (pass them back in to skip their evaluation).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    if max_rows_per_call < 1:
        raise ValueError(f"max_rows_per_call must be >= 1; got {max_rows_per_call}")
    if list(X.columns) != list(background.columns):
        raise ValueError(f"background must have the columns of X {list(X.columns)}; got {list(background.columns)}")
    if len(background) == 0:
        raise ValueError("background must have at least one row")
    n_rows, n_features = X.shape
    n_background = len(background)
    x_codes, b_codes, uniques = _codes(X, background)
    inner, step_index, masks = _inner_coalitions(n_features, n_permutations, random_state)
    n_coalitions = len(inner)
    masked = _MaskedRows(inner, x_codes, b_codes)

    # The stream of model rows, in blocks: [the background], the rows themselves (the full
    # coalition), then each explained row's distinct masked rows.
    include_background = background_output is None
    fixed = ([b_codes] if include_background else []) + [x_codes]
    block_sizes = [len(b) for b in fixed] + [masked.count(i) for i in range(n_rows)]
    n_fixed = len(fixed)

    def block(index: int) -> np.ndarray:
        return fixed[index] if index < n_fixed else masked.block(index - n_fixed)[0]

    numeric = [pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c]) for c in X.columns]
    frames = LazyFrames(block, block_sizes, max_rows_per_call, list(X.columns), uniques, numeric)

    values = np.zeros((n_rows, n_features, 0))
    base = row_outputs = None
    pending: list[np.ndarray] = []  # answers of the block being filled
    pending_rows = 0
    current = 0  # block whose answers are being gathered
    n_outputs = None

    def finish(index: int, out: np.ndarray) -> None:
        nonlocal background_output, base, row_outputs, values
        if include_background and index == 0:
            background_output = out
            return
        if index == n_fixed - 1:
            row_outputs = out
            return
        i = index - n_fixed
        _, inverse = masked.block(i)
        per_coalition = out[inverse].reshape(n_coalitions, n_background, n_outputs).mean(axis=1)
        v_all = np.concatenate([per_coalition, row_outputs[i][None, :], base[None, :]])  # -2 full, -1 empty
        values[i] = _row_values(v_all[step_index], masks, n_features)

    if not include_background:
        background_output = np.asarray(background_output, dtype=float).reshape(n_background, -1)
    for answer in predict(frames, progress):
        answer = np.asarray(answer, dtype=float)
        answer = answer.reshape(len(answer), -1)
        if n_outputs is None:
            n_outputs = answer.shape[1]
            values = np.zeros((n_rows, n_features, n_outputs))
        offset = 0
        while offset < len(answer):
            take = min(block_sizes[current] - pending_rows, len(answer) - offset)
            pending.append(answer[offset:offset + take])
            pending_rows += take
            offset += take
            if pending_rows == block_sizes[current]:
                out = pending[0] if len(pending) == 1 else np.concatenate(pending)
                if base is None and (not include_background or current > 0):
                    background_output = np.asarray(background_output, dtype=float).reshape(n_background, -1)
                    base = background_output.mean(axis=0)
                finish(current, out)
                pending, pending_rows = [], 0
                current += 1
                while current < len(block_sizes) and block_sizes[current] == 0:
                    finish(current, np.zeros((0, n_outputs)))
                    current += 1
    if current != len(block_sizes):
        raise ValueError(f"predict answered {sum(block_sizes[:current]) + pending_rows:,} rows of the "
                         f"{sum(block_sizes):,} it was given")
    values /= 2 * masks.shape[0]
    return values, base, row_outputs, int(sum(block_sizes)), background_output


def _row_values(v_steps: np.ndarray, masks: np.ndarray, n_features: int) -> np.ndarray:
    """Shapley values of one row from the value of each (permutation, step) coalition, not yet averaged."""
    result = np.zeros((n_features, v_steps.shape[-1]))
    for p in range(masks.shape[0]):
        order_forward = np.argmax(masks[p, 1:n_features + 1] & ~masks[p, :n_features], axis=1)
        result[order_forward] += v_steps[p, 1:n_features + 1] - v_steps[p, :n_features]
        order_backward = np.argmax(masks[p, n_features:2 * n_features] & ~masks[p, n_features + 1:], axis=1)
        result[order_backward] += v_steps[p, n_features:2 * n_features] - v_steps[p, n_features + 1:]
    return result


class LazyFrames(Sequence):
    """Model-call DataFrames of at most ``max_rows`` rows, cut from a stream of blocks of integer
    codes and decoded only when read; reading them in order builds each block once.

    Parameters
    ----------
    block : callable
        ``block(i)`` gives block ``i``'s codes, shape (block_sizes[i], n_columns).
    block_sizes : sequence of int
    max_rows : int
    columns, uniques, numeric
        Column names, the value of each code per column, and which columns are numeric.

    Attributes
    ----------
    row_counts : list of int
        Rows of each frame, known without building it.
    """

    def __init__(self, block: Callable[[int], np.ndarray], block_sizes: Sequence[int], max_rows: int,
                 columns: list[str], uniques: list[np.ndarray], numeric: list[bool]):
        self._block = block
        self._starts = np.concatenate([[0], np.cumsum(block_sizes)]).astype(np.int64)
        total = int(self._starts[-1])
        self._bounds = [(a, min(a + max_rows, total)) for a in range(0, total, max_rows)]
        self._columns = columns
        self._uniques = uniques
        self._numeric = numeric
        self._cached: tuple[int, np.ndarray] | None = None
        self.row_counts = [b - a for a, b in self._bounds]

    def __len__(self) -> int:
        return len(self._bounds)

    def _codes_of(self, index: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self._block(index))
        return self._cached[1]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        start, stop = self._bounds[index]
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        parts = []
        position, b = start, first
        while position < stop:
            block_start, block_stop = int(self._starts[b]), int(self._starts[b + 1])
            if block_stop > block_start:
                codes = self._codes_of(b)
                parts.append(codes[position - block_start:min(stop, block_stop) - block_start])
                position = min(stop, block_stop)
            b += 1
        codes = parts[0] if len(parts) == 1 else np.concatenate(parts)
        columns = {}
        for j, name in enumerate(self._columns):
            values = self._uniques[j][codes[:, j]]
            columns[name] = values.astype(float) if self._numeric[j] else values
        return pd.DataFrame(columns)
