"""Partial dependence and individual conditional expectation (ICE), one or two features.

A grid is built per feature: for a numeric feature, ``grid_resolution`` evenly spaced points
between the 5th and 95th percentiles of the non-missing values (or the unique values when
there are fewer); for a categorical feature, its categories. For a local scikit-learn model
the curves come from :func:`sklearn.inspection.partial_dependence` (brute method, on that
grid); for the service as a black box every (row, grid point) combination is sent in as few
requests as the service's budget allows (``max_rows_per_request``, paced at its rows per second;
one grid point's rows are built at a time) and the answers are averaged, which is the same
computation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats.mstats import mquantiles

from explain._errors import ExplainError
from explain._local import LocalModel
from explain._remote import RemoteModel
from explain._source import ModelSource


@dataclass(frozen=True)
class PartialDependence:
    """Partial dependence (and ICE lines) of the model output on one or two features.

    Attributes
    ----------
    features : tuple of str
        One or two features.
    kinds : tuple of str
        ``numeric`` or ``categorical`` per feature.
    grid : tuple of ndarray
        Grid values per feature.
    average : ndarray
        Shape (n_outputs, n_grid) for one feature, (n_outputs, n_grid_0, n_grid_1) for two.
    individual : ndarray or None
        ICE lines, shape (n_outputs, n_ice, n_grid) (one feature only).
    highlight : ndarray or None
        The selected row's curve, shape (n_outputs, n_grid) (one feature only).
    highlight_value : object
        The selected row's value of the feature.
    output_names : tuple of str
    space : str
        ``probability`` (classifiers) or ``value`` (regression).
    method : str
        ``sklearn brute`` or ``batched grid request``.
    n_rows : int
        Rows averaged over.
    requests : int
        HTTP requests made (0 for a local model).
    model_rows : int
        Rows the model predicted.
    seconds : float
    """

    features: tuple[str, ...]
    kinds: tuple[str, ...]
    grid: tuple[np.ndarray, ...]
    average: np.ndarray
    individual: np.ndarray | None
    highlight: np.ndarray | None
    highlight_value: object
    output_names: tuple[str, ...]
    space: str
    method: str
    n_rows: int
    requests: int = 0
    model_rows: int = 0
    seconds: float = 0.0

    def output_index(self, output: int | str = 0) -> int:
        """Position of ``output`` (an index or one of :attr:`output_names`)."""
        if isinstance(output, str):
            if output not in self.output_names:
                raise ValueError(f"output must be one of {list(self.output_names)}; got {output!r}")
            return self.output_names.index(output)
        if not 0 <= output < len(self.output_names):
            raise ValueError(f"output must be between 0 and {len(self.output_names) - 1}; got {output}")
        return int(output)

    def curves(self, output: int | str = 0, *, centered: bool = False) -> dict[str, np.ndarray | None]:
        """The average curve, the ICE lines and the highlighted row's curve of one output.

        Parameters
        ----------
        output : int or str, default=0
        centered : bool, default=False
            Subtract each curve's value at the first grid point (centred ICE, "c-ICE").

        Returns
        -------
        dict
            ``average`` (n_grid,), ``individual`` (n_ice, n_grid) or None, ``highlight``
            (n_grid,) or None.
        """
        if len(self.features) != 1:
            raise ValueError("curves are for one-feature partial dependence; this one has two features")
        k = self.output_index(output)
        average = self.average[k]
        individual = None if self.individual is None else self.individual[k]
        highlight = None if self.highlight is None else self.highlight[k]
        if centered:
            if individual is not None:
                individual = individual - individual[:, :1]
                average = individual.mean(axis=0)
            else:
                average = average - average[0]
            if highlight is not None:
                highlight = highlight - highlight[0]
        return {"average": average, "individual": individual, "highlight": highlight}


def feature_grid(X: pd.DataFrame, feature: str, *, kind: str = "numeric", grid_resolution: int = 20,
                 percentiles: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    """Grid values of one feature.

    Parameters
    ----------
    X : DataFrame
    feature : str
    kind : {"numeric", "categorical"}, default="numeric"
    grid_resolution : int, default=20
        Points of a numeric grid (at least 2); a feature with fewer unique values uses them.
    percentiles : tuple of float, default=(0.05, 0.95)
        Ends of a numeric grid, as quantiles of the non-missing values.

    Returns
    -------
    ndarray
    """
    if grid_resolution < 2:
        raise ValueError(f"grid_resolution must be >= 2; got {grid_resolution}")
    if len(percentiles) != 2 or not 0 <= percentiles[0] < percentiles[1] <= 1:
        raise ValueError(f"percentiles must be two increasing numbers in [0, 1]; got {percentiles}")
    values = X[feature]
    present = values.dropna()
    if present.empty:
        raise ExplainError(f"feature {feature!r} has only missing values in these rows: no grid can be built")
    if kind == "categorical":
        return np.asarray(sorted(present.astype(str).unique()), dtype=object)
    numbers = present.to_numpy(dtype=float)
    uniques = np.unique(numbers)
    if len(uniques) < grid_resolution:
        return uniques
    low, high = mquantiles(numbers, prob=percentiles)
    if np.isclose(low, high):
        return uniques[:grid_resolution] if len(uniques) <= grid_resolution else np.linspace(
            uniques[0], uniques[-1], grid_resolution)
    return np.linspace(low, high, grid_resolution)


def partial_dependence(model: ModelSource, X: pd.DataFrame, features: str | Sequence[str], *,
                       grid_resolution: int = 20, percentiles: tuple[float, float] = (0.05, 0.95),
                       ice_lines: int = 50, highlight: pd.DataFrame | None = None,
                       random_state: int | None = 0,
                       progress: Callable[[float, str], None] | None = None) -> PartialDependence:
    """Partial dependence of the model's output on one or two features, with ICE lines.

    Parameters
    ----------
    model : ModelSource
        A local model (scikit-learn's brute-force computation) or the service (one batched
        request of ``len(X) × grid`` rows).
    X : DataFrame of shape (n_rows, n_features)
        Rows to average over.
    features : str or sequence of one or two str
    grid_resolution : int, default=20
        Grid points per numeric feature.
    percentiles : tuple of float, default=(0.05, 0.95)
        Ends of numeric grids.
    ice_lines : int, default=50
        ICE lines kept (a random sample of the rows; one feature only); 0 keeps none.
    highlight : DataFrame of one row, optional
        A row (the selected prediction) whose own curve is computed too (one feature only).
    random_state : int or None, default=0
        Seed of the ICE sample.
    progress : callable, optional
        Called with (fraction done, text).

    Returns
    -------
    PartialDependence

    Raises
    ------
    RemoteExplainError
        When the request to the service fails; nothing partial is returned.
    """
    started = time.perf_counter()
    names = (features,) if isinstance(features, str) else tuple(features)
    if not 1 <= len(names) <= 2:
        raise ValueError(f"features must be one or two feature names; got {list(names)}")
    unknown = [f for f in names if f not in model.features]
    if unknown:
        raise ValueError(f"features must be among the model's features {list(model.features)}; got {unknown}")
    if len(names) == 2 and names[0] == names[1]:
        raise ValueError(f"features must be two different features; got {list(names)}")
    if ice_lines < 0:
        raise ValueError(f"ice_lines must be >= 0; got {ice_lines}")
    frame = model.conform(X).reset_index(drop=True)
    if frame.empty:
        raise ExplainError("X has no rows to average over")
    model.learn_task(frame)
    kinds = tuple(model.feature_kinds.get(f, "numeric") for f in names)
    grids = tuple(feature_grid(frame, f, kind=k, grid_resolution=grid_resolution, percentiles=percentiles)
                  for f, k in zip(names, kinds, strict=True))
    one = len(names) == 1
    chosen = None
    if one and ice_lines and len(frame) > ice_lines:
        chosen = np.sort(np.random.default_rng(random_state).choice(len(frame), ice_lines, replace=False))
    target = highlight if (one and highlight is not None and len(highlight)) else None
    space = "value" if model.task == "regression" else "probability"
    requests = 0
    if model.estimator is not None:  # a local model: scikit-learn's brute method on it
        average, individual, highlight_curve, model_rows = _local(model, frame, names, kinds, grids, one, target)
        method = "sklearn brute"
    else:
        average, individual, highlight_curve, model_rows, requests = _batched(
            model, frame, names, grids, one, target, progress)
        method = "batched grid request"
    if individual is not None and chosen is not None:
        individual = individual[:, chosen]
    if not one:
        average = average.reshape(average.shape[0], len(grids[0]), len(grids[1]))
    return PartialDependence(
        features=names, kinds=kinds, grid=grids, average=average, individual=individual if one and ice_lines else None,
        highlight=highlight_curve, highlight_value=None if target is None else target.iloc[0][names[0]],
        output_names=model.output_names(), space=space, method=method, n_rows=len(frame), requests=requests,
        model_rows=model_rows, seconds=time.perf_counter() - started)


def _local(model: LocalModel, frame, names, kinds, grids, one, target):
    from sklearn.inspection import partial_dependence as sklearn_partial_dependence

    estimator = model.estimator
    custom = {name: (grid.astype(object) if kind == "categorical" else grid)
              for name, kind, grid in zip(names, kinds, grids, strict=True)}
    categorical = [n for n, k in zip(names, kinds, strict=True) if k == "categorical"] or None
    frame = _categorical_as_object(frame, names, kinds)
    result = sklearn_partial_dependence(
        estimator, frame, list(names), kind="both" if one else "average",
        method="brute", custom_values=custom, categorical_features=categorical,
        response_method="auto")
    average = np.asarray(result["average"], dtype=float)
    individual = np.asarray(result["individual"], dtype=float) if one else None
    n_points = int(np.prod([len(g) for g in grids]))
    model_rows = len(frame) * n_points
    highlight = None
    if target is not None:
        rows = _grid_rows(model.conform(target), names, grids)
        highlight = _outputs(model, rows).T.reshape(-1, len(grids[0]))
        model_rows += len(rows)
    average = average.reshape(average.shape[0], -1)
    return average, individual, highlight, model_rows


def _categorical_as_object(frame: pd.DataFrame, names, kinds) -> pd.DataFrame:
    """Categorical columns being varied as plain objects (a grid value may be a new category)."""
    casts = {n: object for n, k in zip(names, kinds, strict=True)
             if k == "categorical" and isinstance(frame[n].dtype, pd.CategoricalDtype)}
    return frame.astype(casts) if casts else frame


def _grid_rows(frame: pd.DataFrame, names, grids) -> pd.DataFrame:
    """Every row of ``frame`` repeated for every grid point (grid point-major order)."""
    mesh = np.array(np.meshgrid(*grids, indexing="ij")).reshape(len(grids), -1)
    n_points = mesh.shape[1]
    rows = frame.iloc[np.tile(np.arange(len(frame)), n_points)].reset_index(drop=True)
    for i, name in enumerate(names):
        values = np.repeat(mesh[i], len(frame))
        if isinstance(rows[name].dtype, pd.CategoricalDtype):
            rows[name] = rows[name].astype(object)
        rows[name] = values.astype(float) if pd.api.types.is_float_dtype(rows[name]) else values
    return rows


def _outputs(model: ModelSource, rows: pd.DataFrame) -> np.ndarray:
    """Outputs (n_rows, n_outputs): the positive class's probability, each class's, or the value."""
    return model.output(rows, space="probability" if model.task != "regression" else "value")


def _grid_frames(frame: pd.DataFrame, names, grids):
    """The rows of :func:`_grid_rows`, one grid point at a time (each built when the request needs it)."""
    mesh = np.array(np.meshgrid(*grids, indexing="ij")).reshape(len(grids), -1)
    base = _categorical_as_object(frame, names, ["categorical" if isinstance(frame[n].dtype, pd.CategoricalDtype)
                                                 else "numeric" for n in names])
    for point in range(mesh.shape[1]):
        rows = base.copy()
        for i, name in enumerate(names):
            value = mesh[i, point]
            rows[name] = float(value) if pd.api.types.is_float_dtype(rows[name]) else value
        yield rows


def _batched(model: RemoteModel, frame, names, grids, one, target, progress):
    n_points = int(np.prod([len(g) for g in grids]))
    counts = [len(frame)] * n_points
    parts = [_grid_frames(frame, names, grids)]
    if target is not None:
        counts.append(n_points)
        parts.append(iter([_grid_rows(model.conform(target), names, grids)]))
    model.check_budget(sum(counts))  # refused before anything is sent or built
    if progress is not None:
        progress(0.0, model.estimate(sum(counts)))
    space = "probability" if model.task != "regression" else "value"
    outputs = [model.outputs_from(labels, proba, space=space) for labels, proba in
               model.iter_predictions((f for part in parts for f in part), row_counts=counts, progress=progress)]
    main = np.stack(outputs[:n_points])  # (n_points, n_rows, n_outputs): grid point-major
    average = main.mean(axis=1).T  # (n_outputs, n_points)
    individual = np.transpose(main, (2, 1, 0)) if one else None  # (n_outputs, n_rows, n_points)
    highlight = outputs[n_points].reshape(n_points, -1).T if target is not None else None
    return (average, individual, highlight, len(frame) * n_points + (0 if target is None else n_points),
            max(1, -(-sum(counts) // model.max_rows)))
