"""Figures of what-if results (:mod:`explain.whatif`); they draw a result and never recompute."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explain.whatif import Sensitivity, WhatIfComparison, class_text

_MARGIN = {"l": 10, "r": 10, "t": 60, "b": 10}


def sensitivity_figure(result: Sensitivity, *, max_features: int = 12, columns: int = 4) -> go.Figure:
    """One ICE curve per feature (most influential first), the point's current value marked.

    Parameters
    ----------
    result : Sensitivity
    max_features : int, default=12
    columns : int, default=4

    Returns
    -------
    plotly.graph_objects.Figure
    """
    ranked = list(result.ranking["feature"].head(max_features))
    rows = max(1, math.ceil(len(ranked) / columns))
    swing = dict(zip(result.ranking["feature"], result.ranking["swing"], strict=True))
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[f"{f} (±{swing[f]:.3g})" for f in ranked],
                           vertical_spacing=0.5 / rows if rows > 1 else 0.1, horizontal_spacing=0.06)
    for i, name in enumerate(ranked):
        curve = result.curves[name]
        row, col = i // columns + 1, i % columns + 1
        categorical = curve["value"].dtype == object
        x = curve["value"].astype(str) if categorical else curve["value"]
        figure.add_trace(go.Scatter(x=x, y=curve["score"], mode="markers+lines" if not categorical else "markers",
                                    line={"color": "#1f77b4"}, name=name, showlegend=False,
                                    hovertemplate=f"{name} = %{{x}}<br>{result.score_name}: %{{y:.4g}}<extra></extra>"),
                         row=row, col=col)
        current = result.point.get(name)
        if current is not None and not (isinstance(current, float) and math.isnan(current)):
            figure.add_trace(go.Scatter(x=[str(current) if categorical else current], y=[result.score], mode="markers",
                                        marker={"color": "#d62728", "size": 10, "symbol": "diamond"},
                                        showlegend=False, hovertemplate="current point<extra></extra>"),
                             row=row, col=col)
    figure.update_layout(title=f"Sensitivity: {result.score_name} as each feature alone moves over its reference "
                               "range (red: the current point)",
                         height=230 * rows + 80, margin=_MARGIN)
    return figure


def prediction_comparison_figure(comparison: WhatIfComparison, *, score_name: str | None = None) -> go.Figure:
    """Original and edited predictions side by side, drawn from the numbers the page's table shows.

    Binary and regression models: the score of each row (the positive-class probability with
    the decision threshold, or the predicted value). More classes: the probability of every
    class, original and edited side by side (the numbers of
    :meth:`~explain.whatif.WhatIfComparison.probabilities`), the compared class outlined.

    Parameters
    ----------
    comparison : WhatIfComparison
    score_name : str, optional
        The title; default ``comparison.score_name``.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    before, after = comparison.original_prediction, comparison.edited_prediction
    title = score_name or comparison.score_name
    table = comparison.probabilities()
    if len(table) > 2:
        names = [class_text(c) for c in table["class"]]
        chosen = None if comparison.output is None else class_text(comparison.output)
        compared = [name == chosen for name in names]
        outline = {"color": ["#111827" if c else "rgba(0,0,0,0)" for c in compared], "width": 2}
        figure = go.Figure([
            go.Bar(x=names, y=table["original"], name="original", marker={"color": "#9ca3af", "line": outline},
                   text=[f"{v:.4g}" for v in table["original"]], textposition="outside",
                   hovertemplate="%{x}, original: %{y:.4g}<extra></extra>"),
            go.Bar(x=names, y=table["edited"], name="edited", marker={"color": "#1f77b4", "line": outline},
                   text=[f"{v:.4g}" for v in table["edited"]], textposition="outside",
                   hovertemplate="%{x}, edited: %{y:.4g}<extra></extra>"),
        ])
        figure.update_layout(title=f"Probability of each class ({title}: {before.score:.4g} → {after.score:.4g})",
                             barmode="group", height=300, margin=_MARGIN, yaxis={"range": [0, 1.15]},
                             legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1})
        return figure
    figure = go.Figure(go.Bar(x=["original", "edited"], y=[before.score, after.score],
                              text=[f"{before.score:.4g}", f"{after.score:.4g}"], textposition="outside",
                              marker_color=["#7f7f7f", "#1f77b4"]))
    if after.threshold is not None:
        figure.add_hline(y=after.threshold, line_dash="dash", annotation_text=f"threshold {after.threshold:g}")
    figure.update_layout(title=title, height=300, margin=_MARGIN, showlegend=False)
    return figure
