"""Plotly figures of explanation results. Each function takes a result and draws it; none
recomputes anything."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explain._dependence import PartialDependence
from explain._shap import SPACE_LABELS, DependenceData, LocalExplanation, ShapValues

POSITIVE = "#d62728"  # pushes the output up
NEGATIVE = "#1f77b4"  # pushes it down
HIGHLIGHT = "#ff7f0e"
_MARGIN = {"l": 10, "r": 10, "t": 50, "b": 10}


def _space(space: str) -> str:
    return SPACE_LABELS.get(space, space)


def _fmt(value: float) -> str:
    return f"{value:+.3g}"


def importance_figure(shap_values: ShapValues, *, output: int | str = 0, max_features: int = 20) -> go.Figure:
    """Mean |SHAP| per feature as a horizontal bar chart, most important on top.

    Parameters
    ----------
    shap_values : ShapValues
    output : int or str, default=0
        Which output (class) to draw.
    max_features : int, default=20

    Returns
    -------
    plotly.graph_objects.Figure
    """
    table = shap_values.importance(output).head(max_features).iloc[::-1]
    k = shap_values.output_index(output)
    figure = go.Figure(go.Bar(x=table["mean_abs_shap"], y=table["feature"], orientation="h", marker_color=NEGATIVE,
                              hovertemplate="%{y}: %{x:.4g}<extra></extra>"))
    figure.update_layout(title=f"Feature importance: mean |SHAP value| ({shap_values.output_names[k]}, "
                               f"{_space(shap_values.space)}, {shap_values.n_rows} rows)",
                         xaxis_title=f"mean |SHAP value| ({_space(shap_values.space)})",
                         height=max(260, 28 * len(table) + 90), margin=_MARGIN)
    return figure


def beeswarm_figure(shap_values: ShapValues, *, output: int | str = 0, max_features: int = 15,
             random_state: int = 0) -> go.Figure:
    """One dot per row and feature: SHAP value across, features down, colour = the feature's value.

    Parameters
    ----------
    shap_values : ShapValues
    output : int or str, default=0
    max_features : int, default=15
    random_state : int, default=0
        Seed of the vertical jitter.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    points = shap_values.beeswarm(output)
    order = list(dict.fromkeys(points["feature"]))[:max_features]
    points = points[points["feature"].isin(order)]
    position = {f: len(order) - 1 - i for i, f in enumerate(order)}
    jitter = np.random.default_rng(random_state).uniform(-0.3, 0.3, len(points))
    y = points["feature"].map(position).to_numpy() + jitter
    numeric = points["color"].notna()
    figure = go.Figure()
    figure.add_trace(go.Scattergl(
        x=points.loc[numeric, "shap_value"], y=y[numeric.to_numpy()], mode="markers", name="value (percentile)",
        marker={"size": 5, "color": points.loc[numeric, "color"], "colorscale": "Bluered", "cmin": 0, "cmax": 1,
                "colorbar": {"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]}},
        customdata=np.stack([points.loc[numeric, "feature"], points.loc[numeric, "value"]], axis=1),
        hovertemplate="%{customdata[0]} = %{customdata[1]}<br>SHAP %{x:.4g}<extra></extra>"))
    if (~numeric).any():
        figure.add_trace(go.Scattergl(
            x=points.loc[~numeric, "shap_value"], y=y[~numeric.to_numpy()], mode="markers",
            name="categorical / missing", marker={"size": 5, "color": "#888888"},
            customdata=np.stack([points.loc[~numeric, "feature"], points.loc[~numeric, "value"]], axis=1),
            hovertemplate="%{customdata[0]} = %{customdata[1]}<br>SHAP %{x:.4g}<extra></extra>"))
    k = shap_values.output_index(output)
    figure.update_layout(
        title=f"SHAP values per row ({shap_values.output_names[k]}, {_space(shap_values.space)})",
        xaxis_title=f"SHAP value ({_space(shap_values.space)})", showlegend=False,
        yaxis={"tickvals": list(position.values()), "ticktext": list(position.keys())},
        height=max(300, 34 * len(order) + 100), margin=_MARGIN)
    figure.add_vline(x=0, line_color="#999999", line_width=1)
    return figure


def dependence_figure(data: DependenceData) -> go.Figure:
    """A feature's value against its SHAP value, coloured by a second feature.

    Parameters
    ----------
    data : DependenceData
        From :meth:`ShapValues.dependence`.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    figure = go.Figure()
    x = data.values.astype(str) if data.kind == "categorical" else data.values
    marker: dict = {"size": 6}
    hover = f"{data.feature} = %{{x}}<br>SHAP %{{y:.4g}}"
    if data.color_values is not None:
        colour = data.color_values
        if pd.api.types.is_numeric_dtype(colour):
            marker.update(color=colour, colorscale="Bluered", colorbar={"title": data.color_feature})
            customdata = colour.to_numpy()
        else:
            codes, levels = pd.factorize(colour.astype(str))
            marker.update(color=codes, colorscale="Viridis", showscale=False)
            customdata = levels[codes] if len(levels) else colour.astype(str).to_numpy()
        hover += f"<br>{data.color_feature} = %{{customdata}}"
        figure.add_trace(go.Scattergl(x=x, y=data.shap_values, mode="markers", marker=marker, customdata=customdata,
                                      hovertemplate=hover + "<extra></extra>"))
    else:
        figure.add_trace(go.Scattergl(x=x, y=data.shap_values, mode="markers", marker=marker,
                                      hovertemplate=hover + "<extra></extra>"))
    coloured = f", coloured by {data.color_feature}" if data.color_feature else ""
    figure.update_layout(title=f"Dependence of {data.output} on {data.feature}{coloured}", xaxis_title=data.feature,
                         yaxis_title=f"SHAP value of {data.feature} ({_space(data.space)})", height=420, margin=_MARGIN)
    figure.add_hline(y=0, line_color="#999999", line_width=1)
    return figure


def waterfall_figure(explanation: LocalExplanation, *, max_features: int = 12) -> go.Figure:
    """From the base value to the prediction, one step per feature (largest effects on top).

    Parameters
    ----------
    explanation : LocalExplanation
    max_features : int, default=12
        Features drawn one by one; the rest are summed into one step.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    table = explanation.to_frame()
    shown = table.head(max_features)
    rest = table.iloc[max_features:]
    labels = [f"{f} = {v}" for f, v in zip(shown["feature"], shown["value"], strict=True)]
    steps = list(shown["shap_value"])
    if len(rest):
        labels.append(f"{len(rest)} other features")
        steps.append(float(rest["shap_value"].sum()))
    labels, steps = labels[::-1], steps[::-1]
    figure = go.Figure(go.Waterfall(
        orientation="h", base=explanation.base_value, measure=["relative"] * len(steps), x=steps, y=labels,
        text=[_fmt(s) for s in steps], textposition="outside",
        increasing={"marker": {"color": POSITIVE}}, decreasing={"marker": {"color": NEGATIVE}},
        hovertemplate="%{y}: %{x:+.4g}<extra></extra>"))
    figure.add_vline(x=explanation.base_value, line_dash="dot", line_color="#666666",
                     annotation_text=f"base value {explanation.base_value:.4g}", annotation_position="bottom")
    figure.add_vline(x=explanation.prediction, line_dash="dash", line_color="#222222",
                     annotation_text=f"prediction {explanation.prediction:.4g}", annotation_position="top")
    who = f"prediction {explanation.row_id}" if explanation.row_id else "this row"
    figure.update_layout(title=f"Why {who}: {explanation.output}, {_space(explanation.space)} "
                               f"{explanation.base_value:.4g} → {explanation.prediction:.4g}",
                         xaxis_title=_space(explanation.space), height=max(320, 30 * len(steps) + 120),
                         margin=_MARGIN, showlegend=False)
    return figure


def partial_dependence_figure(result: PartialDependence, *, output: int | str = 0, centered: bool = False) -> go.Figure:
    """Partial dependence (thick), ICE lines (thin) and the selected row's curve (highlighted).

    Parameters
    ----------
    result : PartialDependence
        A one-feature result.
    output : int or str, default=0
    centered : bool, default=False
        Draw centred ICE (every curve starts at 0).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    curves = result.curves(output, centered=centered)
    feature = result.features[0]
    grid = result.grid[0]
    categorical = result.kinds[0] == "categorical"
    x = grid.astype(str) if categorical else grid
    mode = "lines+markers" if categorical else "lines"
    figure = go.Figure()
    if curves["individual"] is not None:
        xs, ys = [], []
        for line in curves["individual"]:
            xs.extend([*list(x), None])
            ys.extend([*list(line), None])
        figure.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name=f"ICE ({len(curves['individual'])} rows)",
                                      line={"color": "rgba(31,119,180,0.25)", "width": 1}, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=x, y=curves["average"], mode=mode, name="partial dependence (average)",
                                line={"color": "#111111", "width": 3}))
    if curves["highlight"] is not None:
        figure.add_trace(go.Scatter(x=x, y=curves["highlight"], mode=mode, name="selected prediction",
                                    line={"color": HIGHLIGHT, "width": 3, "dash": "dash"}))
        value = result.highlight_value
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            if categorical:
                position = list(x).index(str(value)) if str(value) in list(x) else None
                y_value = curves["highlight"][position] if position is not None else None
            else:
                y_value = float(np.interp(float(value), grid.astype(float), curves["highlight"]))
            if y_value is not None:
                figure.add_trace(go.Scatter(x=[str(value) if categorical else value], y=[y_value], mode="markers",
                                            name=f"its {feature} = {value}",
                                            marker={"color": HIGHLIGHT, "size": 13, "symbol": "star"}))
    k = result.output_index(output)
    label = ("centred " if centered else "") + _space(result.space)
    figure.update_layout(title=f"Partial dependence of {result.output_names[k]} on {feature} ({result.n_rows} rows)",
                         xaxis_title=feature, yaxis_title=label, height=440, margin=_MARGIN,
                         legend={"orientation": "h", "y": -0.2})
    return figure


def partial_dependence_heatmap_figure(result: PartialDependence, *, output: int | str = 0) -> go.Figure:
    """Two-feature partial dependence as a heatmap.

    Parameters
    ----------
    result : PartialDependence
        A two-feature result.
    output : int or str, default=0

    Returns
    -------
    plotly.graph_objects.Figure
    """
    if len(result.features) != 2:
        raise ValueError("partial_dependence_heatmap_figure needs a two-feature result")
    k = result.output_index(output)
    first, second = result.features
    x = result.grid[1].astype(str) if result.kinds[1] == "categorical" else result.grid[1]
    y = result.grid[0].astype(str) if result.kinds[0] == "categorical" else result.grid[0]
    figure = go.Figure(go.Heatmap(z=result.average[k], x=x, y=y, colorscale="RdBu_r",
                                  colorbar={"title": _space(result.space)},
                                  hovertemplate=f"{first} = %{{y}}<br>{second} = %{{x}}<br>%{{z:.4g}}<extra></extra>"))
    figure.update_layout(title=f"Partial dependence of {result.output_names[k]} on {first} and {second}",
                         xaxis_title=second, yaxis_title=first, height=460, margin=_MARGIN)
    return figure
