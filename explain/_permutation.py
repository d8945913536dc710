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
for a remote model), whereas :func:`permutation_shap` builds every masked row of every
permutation first, drops duplicates (a row whose masked features equal the background's is
evaluated once), and hands them to the model in as few calls as the request size allows,
one per explained row or less. It is vectorised numpy, so it needs no just-in-time
compilation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def permutation_shap(
    predict: Callable[[Sequence[pd.DataFrame], Callable | None], list[np.ndarray]],
    X: pd.DataFrame,
    background: pd.DataFrame,
    *,
    n_permutations: int = 10,
    random_state: int | None = 0,
    max_rows_per_call: int = 200_000,
    background_output: np.ndarray | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Shapley values of every row of ``X`` against ``background``.

    Parameters
    ----------
    predict : callable
        ``predict(frames, progress)`` takes a sequence of DataFrames (a :class:`LazyFrames`,
        each built when first read) and returns, for each, the model outputs as an array of
        shape (n_rows, n_outputs). Each DataFrame is meant to be one model call (one HTTP
        request for a remote model); ``progress`` is passed on.
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
    max_rows_per_call : int, default=200_000
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
    if list(X.columns) != list(background.columns):
        raise ValueError(f"background must have the columns of X {list(X.columns)}; got {list(background.columns)}")
    if len(background) == 0:
        raise ValueError("background must have at least one row")
    n_rows, n_features = X.shape
    n_background = len(background)
    x_codes, b_codes, uniques = _codes(X, background)
    _, masks = coalition_plan(n_features, n_permutations, random_state=random_state)
    inner = np.unique(masks[:, 1:2 * n_features].reshape(-1, n_features), axis=0)
    inner = inner[(inner.sum(axis=1) > 0) & (inner.sum(axis=1) < n_features)]
    n_coalitions = len(inner)
    # index of each step's coalition: -1 = empty, -2 = full, else a row of `inner`
    lookup = {m.tobytes(): k for k, m in enumerate(inner)}
    step_index = np.empty(masks.shape[:2], dtype=np.int64)
    for p in range(masks.shape[0]):
        for s in range(masks.shape[1]):
            m = masks[p, s]
            step_index[p, s] = -1 if not m.any() else (-2 if m.all() else lookup[m.tobytes()])

    # Masked rows of every explained row: coalition c, background b -> where(inner[c], x, b).
    per_row: list[tuple[np.ndarray, np.ndarray]] = []  # (unique code rows, inverse index)
    for i in range(n_rows):
        rows = np.where(inner[:, None, :], x_codes[i][None, None, :], b_codes[None, :, :])
        rows = rows.reshape(-1, n_features)
        unique_rows, inverse = np.unique(rows, axis=0, return_inverse=True)
        per_row.append((unique_rows, inverse.reshape(-1)))

    frames_codes: list[np.ndarray] = []
    include_background = background_output is None
    if include_background:
        frames_codes.append(b_codes)
    frames_codes.extend(u for u, _ in per_row)
    frames_codes.append(x_codes)  # the rows themselves (the full coalition)
    sizes = [len(c) for c in frames_codes]
    stacked = np.concatenate(frames_codes)
    calls = []
    start = 0
    while start < len(stacked):
        calls.append((start, min(start + max_rows_per_call, len(stacked))))
        start = calls[-1][1]

    numeric = [pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c]) for c in X.columns]
    frames = LazyFrames(stacked, calls, list(X.columns), uniques, numeric)
    outputs_list = predict(frames, progress)
    outputs = np.concatenate([np.asarray(o, dtype=float).reshape(len(f), -1) for o, f in
                              zip(outputs_list, frames, strict=True)])
    n_outputs = outputs.shape[1]
    offsets = np.cumsum([0, *sizes])
    part = 0
    if include_background:
        background_output = outputs[offsets[0]:offsets[1]]
        part = 1
    background_output = np.asarray(background_output, dtype=float).reshape(n_background, -1)
    base = background_output.mean(axis=0)
    row_outputs = outputs[offsets[-2]:offsets[-1]]

    values = np.zeros((n_rows, n_features, n_outputs))
    for i, (_unique_rows, inverse) in enumerate(per_row):
        unique_out = outputs[offsets[part + i]:offsets[part + i + 1]]
        masked = unique_out[inverse].reshape(n_coalitions, n_background, n_outputs)
        v_inner = masked.mean(axis=1)
        v_all = np.concatenate([v_inner, row_outputs[i][None, :], base[None, :]])  # -2 -> full, -1 -> empty
        v_steps = v_all[step_index]  # (n_permutations, 2M+1, n_outputs)
        for p in range(masks.shape[0]):
            order_forward = np.argmax(masks[p, 1:n_features + 1] & ~masks[p, :n_features], axis=1)
            gains = v_steps[p, 1:n_features + 1] - v_steps[p, :n_features]
            values[i, order_forward] += gains
            order_backward = np.argmax(masks[p, n_features:2 * n_features] & ~masks[p, n_features + 1:], axis=1)
            losses = v_steps[p, n_features:2 * n_features] - v_steps[p, n_features + 1:]
            values[i, order_backward] += losses
    values /= 2 * masks.shape[0]
    return values, base, row_outputs, len(stacked), background_output


class LazyFrames(Sequence):
    """Model-call DataFrames decoded from integer codes only when read (keeps memory small).

    Attributes
    ----------
    row_counts : list of int
        Rows of each frame, known without decoding it.
    """

    def __init__(self, codes: np.ndarray, bounds: list[tuple[int, int]], columns: list[str],
                 uniques: list[np.ndarray], numeric: list[bool]):
        self._codes = codes
        self._bounds = bounds
        self._columns = columns
        self._uniques = uniques
        self._numeric = numeric
        self.row_counts = [b - a for a, b in bounds]

    def __len__(self) -> int:
        return len(self._bounds)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start, stop = self._bounds[index]
        codes = self._codes[start:stop]
        columns = {}
        for j, name in enumerate(self._columns):
            values = self._uniques[j][codes[:, j]]
            columns[name] = values.astype(float) if self._numeric[j] else values
        return pd.DataFrame(columns)
