"""Figures for the Performance page. Each takes a computed result and only draws it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.performance import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    DecisionsOverTime,
    PerformanceDetail,
    PerformanceOverTime,
)
from monitoring.plots import LEGEND_UNDER, MARGIN, MARGIN_UNDER, empty_figure
from monitoring.windows import describe_window

METRIC_COLOR = "#2563eb"
BAND_COLOR = "rgba(37, 99, 235, 0.15)"
BASELINE_COLOR = "#6b7280"
PREDICTED_COLOR = "#e5e7eb"
LABELLED_COLOR = "#60a5fa"
GAIN_COLOR = "#16a34a"
LOSS_COLOR = "#dc2626"
_LAYOUT = {"margin": {**MARGIN_UNDER, "t": 50}, "hovermode": "x unified", "legend": LEGEND_UNDER}
_MARGIN_NO_LEGEND = {**MARGIN, "t": 50}


def _times(seconds) -> pd.Series:
    """Unix seconds as UTC datetimes, to the millisecond (what a browser can show)."""
    return pd.to_datetime(pd.Series(seconds, dtype=float).mul(1000).round(), unit="ms", utc=True)


def _centres(windows: pd.DataFrame) -> pd.Series:
    """The middle of each window, where its point is drawn."""
    start, end = windows["window_start"].astype(float), windows["window_end"].astype(float)
    return _times((start + end.where(end > start, start)) / 2)


def _span(windows: pd.DataFrame) -> list:
    """The time axis's range: from the first window's start to the last one's end, so that a chart of one
    window shows that window (a day) rather than plotly's milliseconds around its single point."""
    start, end = windows["window_start"].astype(float), windows["window_end"].astype(float)
    return _times([start.min(), max(end.max(), start.max())]).tolist()


def _widths(windows: pd.DataFrame) -> list[float]:
    """Each window's bar width on a time axis (milliseconds, nine tenths of the window), so that a single bar is
    as wide as its window too."""
    start, end = windows["window_start"].astype(float), windows["window_end"].astype(float)
    return ((end - start).clip(lower=1.0) * 900.0).tolist()


def _partial(windows: pd.DataFrame) -> np.ndarray:
    """Whether each window is still open (False for results without the column)."""
    if "partial" not in windows:
        return np.zeros(len(windows), dtype=bool)
    return windows["partial"].to_numpy(dtype=bool)


def _window_text(result: PerformanceOverTime) -> str:
    return describe_window(result.window)


def metric_figure(result: PerformanceOverTime, metric: str, *, height: int = 340) -> go.Figure:
    """One metric per window with its confidence band and the baseline as a dashed line.

    Windows with fewer than ``min_labels`` labels are drawn as hollow circles, a window still
    open at ``now`` (``partial``) as a hollow diamond, its hover saying "so far".

    Parameters
    ----------
    result : PerformanceOverTime
    metric : str
        One of ``result.metrics``.
    height : int, default=340
    """
    if metric not in result.metrics:
        raise ValueError(f"metric must be one of {list(result.metrics)}; got {metric!r}")
    name = METRIC_LABELS[metric]
    title = f"{name} {_window_text(result)}, with its {result.confidence:.0%} interval"
    windows = result.windows
    if windows.empty or windows[metric].notna().sum() == 0:
        return empty_figure(title, "No labelled predictions yet in this range", height=height)
    x = _centres(windows)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=x, y=windows[f"{metric}_high"], mode="lines", line={"width": 0},
                                showlegend=False, hoverinfo="skip", connectgaps=False))
    figure.add_trace(go.Scatter(x=x, y=windows[f"{metric}_low"], mode="lines", line={"width": 0},
                                fill="tonexty", fillcolor=BAND_COLOR, name=f"{result.confidence:.0%} interval",
                                hoverinfo="skip", connectgaps=False))
    partial = _partial(windows)
    hover = [("so far (window still open): " if open_ else "")
             + (f"{value:.3f} ({low:.3f}–{high:.3f}) · {n:,} labels, {coverage:.0%} of predictions"
                if np.isfinite(value) else "no labels")
             for value, low, high, n, coverage, open_ in zip(
                 windows[metric], windows[f"{metric}_low"], windows[f"{metric}_high"], windows["n_labelled"],
                 windows["coverage"].fillna(0), partial, strict=True)]
    enough = windows["enough_labels"].to_numpy(dtype=bool)
    symbols = np.where(partial, "diamond-open", np.where(enough, "circle", "circle-open"))
    value, low, high = (windows[c].to_numpy(dtype=float) for c in (metric, f"{metric}_low", f"{metric}_high"))
    # a band needs two neighbouring windows: a window without a valued neighbour shows its interval as a bar
    valued = np.isfinite(value)
    alone = valued & ~np.r_[False, valued[:-1]] & ~np.r_[valued[1:], False]
    figure.add_trace(go.Scatter(
        x=x, y=windows[metric], mode="lines+markers", name=name, line={"color": METRIC_COLOR},
        marker={"symbol": symbols.tolist(), "size": np.where(partial, 9, 7).tolist(), "color": METRIC_COLOR},
        error_y={"type": "data", "array": np.where(alone, high - value, np.nan).tolist(),
                 "arrayminus": np.where(alone, value - low, np.nan).tolist(), "color": METRIC_COLOR,
                 "thickness": 1.5, "width": 6, "visible": bool(alone.any())},
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    baseline = result.baseline.get(metric)
    if math.isfinite(baseline):
        figure.add_hline(y=baseline, line_dash="dash", line_color=BASELINE_COLOR,
                         annotation_text=f"baseline {baseline:.3g}", annotation_position="top left")
    direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    figure.update_layout(title=title, height=height, yaxis_title=f"{name} ({direction})", xaxis_range=_span(windows),
                         **_LAYOUT)
    return figure


def labelled_count_figure(result: PerformanceOverTime, *, height: int = 220) -> go.Figure:
    """Predictions and labelled predictions per window (bars), coverage in the hover.

    Parameters
    ----------
    result : PerformanceOverTime
    height : int, default=220
    """
    title = f"Predictions and labels {_window_text(result)}"
    windows = result.windows
    if windows.empty:
        return empty_figure(title, "No predictions in this range", height=height)
    x = _centres(windows)
    figure = go.Figure()
    figure.add_trace(go.Bar(x=x, y=windows["n_predictions"], name="predictions", marker_color=PREDICTED_COLOR,
                            width=_widths(windows), hovertemplate="%{y:,} predictions<extra></extra>"))
    coverage = (windows["coverage"].fillna(0) * 100).round(0)
    so_far = np.where(_partial(windows), " so far", "")
    figure.add_trace(go.Bar(x=x, y=windows["n_labelled"], name="with a label", marker_color=LABELLED_COLOR,
                            width=_widths(windows),
                            marker_opacity=np.where(_partial(windows), 0.5, 1.0).tolist(),
                            customdata=[list(pair) for pair in zip(coverage.tolist(), so_far.tolist(), strict=True)],
                            hovertemplate="%{y:,} labelled%{customdata[1]} (%{customdata[0]:.0f} %)<extra></extra>"))
    if result.min_labels > 1:
        figure.add_hline(y=result.min_labels, line_dash="dot", line_color=BASELINE_COLOR,
                         annotation_text=f"{result.min_labels} labels to judge a window",
                         annotation_position="top right", annotation_font_color=BASELINE_COLOR)
    figure.update_layout(title=title, height=height, barmode="overlay", yaxis_title="count",
                         xaxis_range=_span(windows), **_LAYOUT)
    return figure


def calibration_figure(detail: PerformanceDetail, *, height: int = 360) -> go.Figure:
    """Observed frequency of the positive class against the mean score, per score bin.

    Parameters
    ----------
    detail : PerformanceDetail
    height : int, default=360
    """
    title = "Calibration: observed against predicted"
    table = detail.calibration
    if table is None or table.empty:
        return empty_figure(title, "No scored, labelled predictions in this period", height=height)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                                line={"dash": "dash", "color": BASELINE_COLOR}, hoverinfo="skip"))
    sizes = 6 + 14 * np.sqrt(table["n"] / table["n"].max())
    figure.add_trace(go.Scatter(
        x=table["mean_predicted"], y=table["fraction_positive"], mode="lines+markers", name="model",
        line={"color": METRIC_COLOR}, marker={"size": sizes, "color": METRIC_COLOR}, customdata=table["n"],
        hovertemplate="mean score %{x:.2f}: %{y:.1%} positive (%{customdata:,} predictions)<extra></extra>"))
    figure.update_layout(title=title, height=height, hovermode="closest",
                         xaxis={"title": "mean score in the bin", "range": [0, 1]},
                         yaxis={"title": "share with a positive label", "range": [0, 1]},
                         margin=_LAYOUT["margin"], legend=_LAYOUT["legend"])
    return figure


def confusion_matrix_figure(detail: PerformanceDetail, *, height: int = 360) -> go.Figure:
    """The confusion matrix as a heatmap, counts and shares of each true class in the cells.

    Parameters
    ----------
    detail : PerformanceDetail
    height : int, default=360
    """
    confusion = detail.confusion
    at = f" at threshold {confusion.threshold:.2f}" if confusion is not None and confusion.threshold is not None else ""
    title = f"Confusion matrix{at}"
    if confusion is None or confusion.matrix.sum() == 0:
        return empty_figure(title, "No labelled predictions in this period", height=height)
    matrix = confusion.matrix
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    names = [f"{c:g}" for c in confusion.classes]
    text = [[f"{matrix[i, j]:,}<br>{shares[i, j]:.0%}" for j in range(len(names))] for i in range(len(names))]
    figure = go.Figure(go.Heatmap(
        z=shares, x=[f"decided {n}" for n in names], y=[f"true {n}" for n in names], text=text,
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1, showscale=False,
        hovertemplate="%{y}, %{x}: %{text}<extra></extra>"))
    figure.update_layout(title=title, height=height, yaxis={"autorange": "reversed"}, margin=_MARGIN_NO_LEGEND)
    return figure


def residuals_figure(detail: PerformanceDetail, *, height: int = 360) -> go.Figure:
    """Regression residuals (label − prediction) against the prediction, and their histogram.

    Parameters
    ----------
    detail : PerformanceDetail
    height : int, default=360
    """
    title = "Residuals (label − prediction)"
    residuals = detail.residuals
    if residuals is None or residuals.empty:
        return empty_figure(title, "No labelled predictions in this period", height=height)
    figure = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3], shared_yaxes=True, horizontal_spacing=0.02)
    figure.add_trace(go.Scattergl(x=residuals["prediction"], y=residuals["residual"], mode="markers",
                                  marker={"size": 4, "color": METRIC_COLOR, "opacity": 0.4}, name="residual",
                                  hovertemplate="predicted %{x:.3g}, residual %{y:.3g}<extra></extra>"),
                     row=1, col=1)
    figure.add_trace(go.Histogram(y=residuals["residual"], marker_color=LABELLED_COLOR, name="count",
                                  nbinsy=40, hovertemplate="%{x:,} rows<extra></extra>"), row=1, col=2)
    figure.add_hline(y=0, line_dash="dash", line_color=BASELINE_COLOR)
    figure.update_xaxes(title_text="prediction", row=1, col=1)
    figure.update_xaxes(title_text="count", row=1, col=2)
    figure.update_yaxes(title_text="residual", row=1, col=1)
    figure.update_layout(title=f"{title}, {len(residuals):,} sampled", height=height, showlegend=False,
                         hovermode="closest", margin=_MARGIN_NO_LEGEND)
    return figure


def money_figure(decisions: DecisionsOverTime, *, height: int = 280) -> go.Figure:
    """Value of correct decisions minus the cost of wrong ones, per window.

    Parameters
    ----------
    decisions : DecisionsOverTime
        With business values.
    height : int, default=280
    """
    business = decisions.business
    windows = decisions.windows
    unit = f" ({business.currency})" if business is not None and business.currency else ""
    at = f" at threshold {decisions.threshold:.2f}" if decisions.threshold is not None else ""
    title = f"Money per window{at}{unit}"
    if business is None or "money" not in windows:
        return empty_figure(title, "Set costs or values in [services.performance] to see money", height=height)
    if windows.empty or windows["n_labelled"].sum() == 0:
        return empty_figure(title, "No labelled predictions in this range", height=height)
    money = windows["money"].where(windows["n_labelled"] > 0)
    hover = [f"{m:,.0f}{unit} from {n:,} labelled decisions: {tp + tn:,} right, {fp:,} false positives, "
             f"{fn:,} false negatives" if n else "no labels"
             for m, n, tp, tn, fp, fn in zip(money.fillna(0), windows["n_labelled"], windows["tp"], windows["tn"],
                                              windows["fp"], windows["fn"], strict=True)]
    figure = go.Figure(go.Bar(x=_centres(windows), y=money, width=_widths(windows),
                              marker_color=np.where(money.fillna(0) >= 0, GAIN_COLOR, LOSS_COLOR).tolist(),
                              hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", name="money"))
    figure.add_hline(y=0, line_color=BASELINE_COLOR)
    figure.update_layout(title=f"{title}: {decisions.total_money:,.0f} in total", height=height,
                         yaxis_title=f"money{unit}", xaxis_range=_span(windows), **_LAYOUT)
    return figure
