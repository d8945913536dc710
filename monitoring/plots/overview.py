"""Figures for the Overview page. Each takes a computed result and only draws it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from monitoring.plots import LEGEND_UNDER, MARGIN_UNDER, empty_figure

MIX_COLOR = "#2563eb"
VOLUME_COLOR = "#e5e7eb"


CLASS_COLORS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
                "#64748b", "#a16207")
"""One colour per class of a stacked class-share chart (repeated beyond ten classes)."""


def prediction_mix_figure(mix: pd.DataFrame, *, title: str = "What the model decided, day by day",
                          height: int = 260) -> go.Figure:
    """Predictions per day and what the model decided.

    Two classes: predictions (bars) and the positive rate (line). More classes: the share of
    each class, stacked to 100 % (bars, one colour per class), and the predictions (line, right
    axis). Regression: predictions (bars) and the mean predicted value (line). A bucket still
    open is hatched and its markers hollow, labelled "so far".

    Parameters
    ----------
    mix : DataFrame
        From :func:`monitoring.overview.prediction_mix`.
    title : str, default="What the model decided, day by day"
    height : int, default=260
    """
    if mix.empty:
        return empty_figure(title, "No predictions in this period", height=height)
    measure = mix.attrs.get("measure", "mean predicted value")
    bucket_seconds = float(mix.attrs.get("bucket_seconds", 86400.0))
    # Each bucket is drawn across its whole width, so one day of data is a day wide, not a sliver whose
    # axis ticks fall a fraction of a second apart.
    when = pd.to_datetime(mix["bucket_ts"] + bucket_seconds / 2, unit="s", utc=True)
    bar_width = 0.9 * bucket_seconds * 1000.0  # milliseconds, as date axes measure
    partial = mix["partial"].to_numpy(dtype=bool) if "partial" in mix else np.zeros(len(mix), dtype=bool)
    so_far = np.where(partial, " so far (the day is still open)", "")
    figure = go.Figure()
    shares = measure == "class shares"
    if shares:
        columns = list(mix.attrs.get("classes") or [c for c in mix.columns if str(c).startswith("class ")])
        for i, column in enumerate(columns):
            color = CLASS_COLORS[i % len(CLASS_COLORS)]
            figure.add_trace(go.Bar(x=when, y=mix[column], name=column, marker_color=color, width=bar_width,
                                    marker_pattern_shape=np.where(partial, "/", ""), customdata=so_far,
                                    hovertemplate=f"{column}: %{{y:.1%}}%{{customdata}}<extra></extra>"))
        figure.add_trace(go.Scatter(x=when, y=mix["n"], name="predictions", mode="lines+markers", yaxis="y2",
                                    line_color="#374151",
                                    marker={"symbol": np.where(partial, "circle-open", "circle"), "size": 6},
                                    customdata=so_far, hovertemplate="%{y:,} predictions%{customdata}<extra></extra>"))
    else:
        # the bars on the first axis and the line on the overlaying one: an overlaying axis is drawn on top,
        # so the line is never hidden behind the bars
        figure.add_trace(go.Bar(x=when, y=mix["n"], name="predictions", marker_color=VOLUME_COLOR, yaxis="y",
                                width=bar_width, marker_pattern_shape=np.where(partial, "/", ""), customdata=so_far,
                                hovertemplate="%{y:,} predictions%{customdata}<extra></extra>"))
        is_rate = measure == "positive rate"
        figure.add_trace(go.Scatter(x=when, y=mix["value"], name=measure, mode="lines+markers", yaxis="y2",
                                    line_color=MIX_COLOR,
                                    marker={"symbol": np.where(partial, "circle-open", "circle"), "size": 7},
                                    customdata=so_far,
                                    hovertemplate=("%{y:.1%}" if is_rate else "%{y:.3g}")
                                                  + f" {measure}%{{customdata}}<extra></extra>"))
    if partial.any():
        figure.add_annotation(x=when[partial].iloc[-1], y=1.0, yref="paper", text="so far", showarrow=False,
                              yanchor="bottom", font={"size": 11, "color": "#374151"})
    percent = shares or measure == "positive rate"
    first, last = float(mix["bucket_ts"].iloc[0]), float(mix["bucket_ts"].iloc[-1]) + bucket_seconds
    every = max(1, math.ceil((last - first) / bucket_seconds / 10))  # at most about ten labelled buckets
    figure.update_xaxes(range=[pd.to_datetime(first, unit="s"), pd.to_datetime(last, unit="s")],
                        tick0=when.iloc[0].tz_localize(None), dtick=every * bucket_seconds * 1000.0,
                        tickformat="%b %-d" if bucket_seconds >= 86400 else "%b %-d %H:%M")
    decided = {"title": "share of predictions" if shares else measure, "tickformat": ".0%" if percent else None,
               "rangemode": "tozero", **({"range": [0, 1]} if shares else {})}
    volume = {"title": "predictions", "showgrid": False, "rangemode": "tozero"}
    figure.update_layout(
        title=title, height=height, margin=MARGIN_UNDER, hovermode="x unified", barmode="stack" if shares else None,
        yaxis=decided if shares else {**volume, "side": "right"},
        yaxis2=({**volume, "overlaying": "y", "side": "right"} if shares
                else {**decided, "overlaying": "y", "side": "left"}),
        legend=LEGEND_UNDER,
    )
    return figure
