"""Figures for the Drift page. Each takes a computed result (a DriftReport or a distribution) and only draws it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.drift import SEVERITY_COLORS, DriftReport
from monitoring.plots import MARGIN, empty_figure

REFERENCE_COLOR = "#64748b"
CURRENT_COLOR = "#2563eb"
_SEVERITY_LEVEL = {"green": 0, "amber": 1, "red": 2}
_MARGIN = MARGIN
_LEGEND = {"orientation": "h", "y": 1.12, "x": 0}
_NO_DATA_BACKGROUND = "#e5e7eb"




def _window_axis(frame: pd.DataFrame) -> tuple[list, str]:
    """x values of windows: their start time when known, else "window N"."""
    if len(frame) and frame["window_start"].notna().all():
        return list(frame["window_start"]), ""
    return [f"window {w}" for w in frame["window"]], "window (blocks of rows)"


def _mark_partial(figure: go.Figure, frame: pd.DataFrame, x: list, *, row: int | None = None,
                  col: int | None = None) -> None:
    """Outline windows still open (dotted) and label them "so far"."""
    if "partial" not in frame or not frame["partial"].any():
        return
    for position, (value, partial) in enumerate(zip(x, frame["partial"], strict=True)):
        if not partial:
            continue
        if isinstance(value, pd.Timestamp) and "window_end" in frame:
            left, right = value, frame["window_end"].iloc[position]
        else:
            left, right = position - 0.5, position + 0.5
        figure.add_vrect(x0=left, x1=right, line={"dash": "dot", "color": "#374151", "width": 1.5},
                         fillcolor="rgba(255,255,255,0.35)", layer="above", annotation_text="so far",
                         annotation_position="top left", row=row, col=col)


def _percent(values) -> list[str]:
    return ["–" if pd.isna(v) else f"{100 * v:.1f} %" for v in values]


def distribution_figure(distribution: pd.DataFrame, *, feature: str = "", height: int = 360) -> go.Figure:
    """Reference against current distribution of one column.

    Numeric columns: overlaid histograms of the quantile bins as densities (share per unit,
    so unequal bins keep the true shape), with the rows outside the reference range and the
    missing ones as bars on the right. Categorical columns: bars per category, then
    "(unseen)" and "(missing)". Shares are of all rows, missing included.

    Parameters
    ----------
    distribution : DataFrame
        :func:`monitoring.drift.feature_distribution` output.
    feature : str, default=""
        Name for the title.
    height : int, default=360
    """
    title = f"{feature}: reference vs current" if feature else "Reference vs current"
    if distribution.empty or not (distribution["reference_count"].sum() or distribution["current_count"].sum()):
        return empty_figure(title, "No values to show", height=height)
    kinds = set(distribution["bin_kind"])
    if kinds & {"category", "unseen"} and not kinds & {"bin", "below", "above"}:
        return _categorical_distribution(distribution, title, height)
    return _numeric_distribution(distribution, title, height)


def _categorical_distribution(distribution: pd.DataFrame, title: str, height: int) -> go.Figure:
    shown = distribution[(distribution["bin_kind"] == "category") | (distribution["reference_count"] > 0)
                         | (distribution["current_count"] > 0)]
    figure = go.Figure()
    for name, column, color in (("reference", "reference", REFERENCE_COLOR), ("current", "current", CURRENT_COLOR)):
        figure.add_bar(x=shown["bin"], y=shown[f"{column}_share"], name=name, marker_color=color,
                       customdata=np.stack([shown[f"{column}_count"], _percent(shown[f"{column}_share"])], axis=-1),
                       hovertemplate="%{x}<br>" + name + ": %{customdata[1]} (%{customdata[0]:,} rows)<extra></extra>")
    figure.update_layout(title=title, height=height, barmode="group", margin=_MARGIN, legend=_LEGEND,
                         yaxis={"title": "share of rows", "tickformat": ".0%"}, xaxis={"title": ""})
    return figure


def _numeric_distribution(distribution: pd.DataFrame, title: str, height: int) -> go.Figure:
    inner = distribution[distribution["bin_kind"] == "bin"]
    outer = distribution[distribution["bin_kind"].isin(["below", "above", "missing"])]
    figure = make_subplots(rows=1, cols=2, column_widths=[0.8, 0.2], horizontal_spacing=0.08,
                           subplot_titles=("", "outside range / missing"))
    widths = (inner["right"] - inner["left"]).to_numpy(dtype=float)
    widths = np.where(widths > 0, widths, 1.0)  # a one-value bin (min = max) drawn one unit wide
    centers = inner["left"].to_numpy(dtype=float) + widths / 2
    for name, column, color in (("reference", "reference", REFERENCE_COLOR), ("current", "current", CURRENT_COLOR)):
        share = inner[f"{column}_share"].to_numpy(dtype=float)
        figure.add_trace(go.Bar(
            x=centers, y=share / widths, width=widths, name=name, marker_color=color, opacity=0.55,
            legendgroup=name, customdata=np.stack([inner["bin"], _percent(share), inner[f"{column}_count"]], axis=-1),
            hovertemplate="%{customdata[0]}<br>" + name + ": %{customdata[1]} (%{customdata[2]:,} rows)<extra></extra>",
        ), row=1, col=1)
    labels = {"below": "below min", "above": "above max", "missing": "missing"}
    positions = np.arange(len(outer), dtype=float)
    for offset, (name, column, color) in zip((-0.2, 0.2), (("reference", "reference", REFERENCE_COLOR),
                                                            ("current", "current", CURRENT_COLOR)), strict=True):
        share = outer[f"{column}_share"].to_numpy(dtype=float)
        figure.add_trace(go.Bar(
            x=positions + offset, y=share, width=0.4, name=name, marker_color=color, legendgroup=name,
            showlegend=False, customdata=np.stack([[labels[k] for k in outer["bin_kind"]], _percent(share),
                                                   outer[f"{column}_count"]], axis=-1),
            hovertemplate="%{customdata[0]}<br>" + name + ": %{customdata[1]} (%{customdata[2]:,} rows)<extra></extra>",
        ), row=1, col=2)
    figure.update_xaxes(title_text="value", range=_inner_range(inner), row=1, col=1)
    figure.update_yaxes(title_text="density (share per unit)", row=1, col=1)
    figure.update_xaxes(tickvals=positions, ticktext=[labels[k] for k in outer["bin_kind"]], row=1, col=2)
    figure.update_yaxes(tickformat=".1%", rangemode="tozero", row=1, col=2)
    figure.update_layout(title=title, height=height, barmode="overlay", margin=_MARGIN, legend=_LEGEND)
    return figure


def _inner_range(inner: pd.DataFrame) -> list[float] | None:
    """x range showing the inner bins, cutting the outermost two where they run far out (long tails)."""
    left, right = inner["left"].to_numpy(dtype=float), inner["right"].to_numpy(dtype=float)
    if len(inner) < 4:
        return None
    low = max(left[0], left[1] - 2 * (right[1] - left[1]))
    high = min(right[-1], right[-2] + 2 * (right[-2] - left[-2]))
    return [float(low), float(high)]


def drift_heatmap_figure(report: DriftReport, *, height: int | None = None) -> go.Figure:
    """Drift of every feature in every window, coloured by severity (green, amber, red; grey: no score).

    Parameters
    ----------
    report : DriftReport
    height : int, optional
        Default grows with the number of features.
    """
    rows = report.features
    if rows.empty:
        return empty_figure("Drift by feature and window", "No windows to show")
    features = list(dict.fromkeys(rows["feature"]))
    windows = rows.drop_duplicates("window").sort_values("window")
    x, x_title = _window_axis(windows)
    n_windows = len(windows)
    position = {w: i for i, w in enumerate(windows["window"])}
    level = np.full((len(features), n_windows), np.nan)
    hover = np.full((len(features), n_windows), "", dtype=object)
    feature_index = {f: i for i, f in enumerate(features)}
    for row in rows.itertuples(index=False):
        i, j = feature_index[row.feature], position[row.window]
        level[i, j] = _SEVERITY_LEVEL.get(row.severity, np.nan)
        score = "no values" if pd.isna(row.score) else f"{row.score:.4g}"
        noise = "" if pd.isna(row.noise) else f", noise {row.noise:.3g}"
        so_far = " (so far: the window is still open)" if row.partial else ""
        why = f"<br>{row.reason}" if row.reason else ""
        hover[i, j] = (f"<b>{row.feature}</b><br>{row.method}: {score} (threshold {row.threshold:g}{noise})<br>"
                       f"{row.status}{so_far}; {row.n:,} rows, {row.n_missing:,} missing, {row.n_unseen:,} unseen"
                       f"{why}")
    colors = [SEVERITY_COLORS["green"], SEVERITY_COLORS["amber"], SEVERITY_COLORS["red"]]
    colorscale = [[0.0, colors[0]], [1 / 3, colors[0]], [1 / 3, colors[1]], [2 / 3, colors[1]], [2 / 3, colors[2]],
                  [1.0, colors[2]]]
    figure = go.Figure(go.Heatmap(
        z=level, x=x, y=features, zmin=-0.5, zmax=2.5, colorscale=colorscale, showscale=False, xgap=1, ygap=1,
        customdata=hover, hovertemplate="%{customdata}<extra></extra>", hoverongaps=False,
    ))
    _mark_partial(figure, windows, x)
    figure.update_layout(title="Drift by feature and window (grey: not judged)",
                         height=height or 120 + 26 * len(features),
                         margin=_MARGIN, plot_bgcolor=_NO_DATA_BACKGROUND,
                         yaxis={"autorange": "reversed", "title": ""}, xaxis={"title": x_title})
    return figure


def prediction_drift_figure(report: DriftReport, *, height: int = 300) -> go.Figure:
    """Drift score of each prediction column over the windows, with its threshold; markers coloured by severity.

    Parameters
    ----------
    report : DriftReport
    height : int, default=300
        Per prediction column.
    """
    rows = report.prediction
    title = "Prediction drift"
    if rows.empty:
        return empty_figure(title, "No prediction column in both the reference and the production data")
    columns = list(dict.fromkeys(rows["feature"]))
    figure = make_subplots(rows=len(columns), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                           subplot_titles=[f"{c} ({rows.loc[rows['feature'] == c, 'method'].iloc[0]})"
                                           for c in columns])
    for number, column in enumerate(columns, start=1):
        part = rows[rows["feature"] == column].sort_values("window")
        x, x_title = _window_axis(part)
        threshold = float(part["threshold"].iloc[0])
        figure.add_trace(go.Scatter(
            x=x, y=part["score"], mode="lines+markers", name=column, showlegend=False,
            line={"color": "#6b7280", "width": 1.5},
            marker={"size": 9, "color": [SEVERITY_COLORS[s] for s in part["severity"]]},
            customdata=np.stack([part["method"], part["severity"], part["n"]], axis=-1),
            hovertemplate="%{customdata[0]}: %{y:.4g}<br>%{customdata[1]}, %{customdata[2]:,} rows<extra></extra>",
        ), row=number, col=1)
        if part["partial"].any():
            last = part[part["partial"]]
            figure.add_trace(go.Scatter(
                x=[x[i] for i in np.flatnonzero(part["partial"].to_numpy())], y=last["score"], mode="markers",
                marker={"size": 15, "color": "#374151", "symbol": "circle-open"},
                name="so far", showlegend=False, hovertemplate="so far: the window is still open<extra></extra>",
            ), row=number, col=1)
        figure.add_hline(y=threshold, line_dash="dash", line_color=SEVERITY_COLORS["red"], row=number, col=1,
                         annotation_text=f"threshold {threshold:g}", annotation_position="top left")
        p_values = part["method"].iloc[0] in ("ks", "chi_square", "z_test")
        figure.update_yaxes(title_text="p-value" if p_values else "distance", type="log" if p_values else "linear",
                            row=number, col=1)
        if x_title:
            figure.update_xaxes(title_text=x_title, row=number, col=1)
    figure.update_layout(title=title, height=80 + height * len(columns), margin=_MARGIN)
    return figure


def drifted_share_figure(report: DriftReport, *, height: int = 280) -> go.Figure:
    """Share of drifted features per window, red where it reaches ``drift_share`` (the dashed line).

    Parameters
    ----------
    report : DriftReport
    height : int, default=280
    """
    dataset = report.dataset
    title = "Share of drifted features"
    if dataset.empty:
        return empty_figure(title, "No windows to show", height=height)
    x, x_title = _window_axis(dataset)
    colors = [SEVERITY_COLORS["red"] if drifted else SEVERITY_COLORS["amber"] if n_drifted else
              SEVERITY_COLORS["green"] for drifted, n_drifted in zip(dataset["drifted"], dataset["n_drifted"],
                                                                     strict=True)]
    names = [", ".join(features) if features else "none" for features in dataset["drifted_features"]]
    figure = go.Figure(go.Bar(
        x=x, y=dataset["share"], marker_color=colors,
        customdata=np.stack([dataset["n_drifted"], dataset["n_features"], names], axis=-1),
        hovertemplate="%{customdata[0]} of %{customdata[1]} features drifted: %{customdata[2]}<extra></extra>",
    ))
    figure.add_hline(y=report.drift_share, line_dash="dash", line_color="#6b7280",
                     annotation_text=f"data set drifts at {report.drift_share:.0%}", annotation_position="top left")
    _mark_partial(figure, dataset, x)
    figure.update_layout(title=title, height=height, margin=_MARGIN, showlegend=False,
                         yaxis={"tickformat": ".0%", "range": [0, 1.05], "title": ""}, xaxis={"title": x_title})
    return figure
