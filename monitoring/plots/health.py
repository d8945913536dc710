"""Figures for the Service-health page. Each takes a computed result and only draws it."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.health import STATE_STYLES, short_reason
from monitoring.plots import empty_figure

PERCENTILE_COLORS = {"p50_ms": "#2563eb", "p95_ms": "#d97706", "p99_ms": "#dc2626"}
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "x unified",
           "legend": {"orientation": "h", "y": 1.12, "x": 0}}


def _times(seconds) -> pd.Series:
    """Unix seconds as UTC datetimes, to the millisecond (what a browser can show)."""
    return pd.to_datetime(pd.Series(seconds, dtype=float).mul(1000).round(), unit="ms", utc=True)


def _set_time_range(figure: go.Figure, x_range: tuple[float, float] | None) -> None:
    """Show the whole requested time range, not just where data happens to be."""
    if x_range is not None:
        figure.update_xaxes(range=list(_times(list(x_range))))




def heartbeat_figure(beats: pd.DataFrame, *, slots: int = 60, height: int = 90) -> go.Figure:
    """One coloured bar per recent poll (green up, amber degraded, red down), newest right.

    Parameters
    ----------
    beats : DataFrame
        :func:`monitoring.health.heartbeat` output: ``ts, state, reason, color``.
    slots : int, default=60
        Bars the strip has room for; fewer polls leave the left empty.
    """
    if beats.empty:
        return empty_figure("", "No polls yet", height=height)
    labels = [STATE_STYLES[s].label if s in STATE_STYLES else s for s in beats["state"]]
    hover = [f"{t:%H:%M:%S} UTC — {label}<br>{html.escape(short_reason(reason or ''))}"  # the service's words
             for t, label, reason in zip(_times(beats["ts"]), labels, beats["reason"], strict=True)]
    beats = beats.tail(slots)
    figure = go.Figure(go.Bar(
        x=list(range(slots - len(beats), slots)), y=[1] * len(beats), marker_color=beats["color"].tolist(),
        hovertext=hover[-slots:], hoverinfo="text", width=0.8,
    ))
    figure.update_layout(height=height, margin={"l": 0, "r": 0, "t": 0, "b": 0}, bargap=0.15,
                         xaxis={"visible": False, "range": [-0.5, slots - 0.5]}, yaxis={"visible": False},
                         showlegend=False,
                         plot_bgcolor="rgba(0,0,0,0)")
    return figure


def latency_figure(latency: pd.DataFrame, *, slo_ms: float | None = None,
                   title: str = "Canary prediction latency",
                   x_range: tuple[float, float] | None = None) -> go.Figure:
    """p50 / p95 / p99 latency over time, with the latency SLO as a dashed line.

    Parameters
    ----------
    latency : DataFrame
        ``bucket_ts`` and any of ``p50_ms, p95_ms, p99_ms``.
    slo_ms : float, optional
        Latency objective to draw.
    x_range : (float, float), optional
        Time range to show (Unix seconds).
    """
    columns = [c for c in PERCENTILE_COLORS if c in latency and latency[c].notna().any()]
    if latency.empty or not columns:
        return empty_figure(title, "No latency measured in this time range")
    figure = go.Figure()
    times = _times(latency["bucket_ts"])
    for column in columns:
        figure.add_trace(go.Scatter(x=times, y=latency[column], mode="lines+markers" if len(latency) < 30 else "lines",
                                    name=column.removesuffix("_ms"), line={"color": PERCENTILE_COLORS[column]},
                                    hovertemplate="%{y:.1f} ms"))
    if slo_ms is not None:
        figure.add_hline(y=slo_ms, line_dash="dash", line_color="#6b7280",
                         annotation_text=f"SLO {slo_ms:g} ms", annotation_position="top left")
    figure.update_layout(title=title, height=300, yaxis_title="milliseconds", **_LAYOUT)
    _set_time_range(figure, x_range)
    return figure


def traffic_figure(traffic: pd.DataFrame, *, title: str = "Real traffic (from the service's metrics)",
                   x_range: tuple[float, float] | None = None) -> go.Figure:
    """Request rate (bars) and error rate (line, right axis) over time.

    Parameters
    ----------
    traffic : DataFrame
        :func:`monitoring.metrics.traffic_over_time` output.
    x_range : (float, float), optional
        Time range to show (Unix seconds).
    """
    if traffic.empty or traffic["requests"].sum() == 0:
        return empty_figure(title, "No requests counted in this time range")
    times = _times(traffic["bucket_ts"])
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=times, y=traffic["request_rate"], name="requests / s",
                            marker_color="#93c5fd", hovertemplate="%{y:.2f} req/s"), secondary_y=False)
    figure.add_trace(go.Scatter(x=times, y=traffic["error_rate"] * 100, name="errors %", mode="lines",
                                line={"color": "#dc2626"}, hovertemplate="%{y:.2f} %"), secondary_y=True)
    figure.update_yaxes(title_text="requests / s", secondary_y=False, rangemode="tozero")
    figure.update_yaxes(title_text="errors (% of requests)", secondary_y=True, rangemode="tozero")
    figure.update_layout(title=title, height=300, **_LAYOUT)
    _set_time_range(figure, x_range)
    return figure


def uptime_strip_figure(states: pd.DataFrame, *, title: str = "Availability over time",
                        x_range: tuple[float, float] | None = None) -> go.Figure:
    """Share of polls per state per time bucket, stacked.

    Parameters
    ----------
    states : DataFrame
        ``bucket_ts, up, degraded, down`` counts.
    x_range : (float, float), optional
        Time range to show (Unix seconds).
    """
    if states.empty or states[["up", "degraded", "down"]].to_numpy().sum() == 0:
        return empty_figure(title, "No polls in this time range")
    times = _times(states["bucket_ts"])
    total = states[["up", "degraded", "down"]].sum(axis=1).replace(0, float("nan"))
    figure = go.Figure()
    for state in ("up", "degraded", "down"):
        figure.add_trace(go.Bar(x=times, y=states[state] / total * 100, name=STATE_STYLES[state].label,
                                marker_color=STATE_STYLES[state].color, hovertemplate="%{y:.1f} %"))
    figure.update_layout(barmode="stack", title=title, height=220, yaxis={"title": "% of polls", "range": [0, 100]},
                         **_LAYOUT)
    _set_time_range(figure, x_range)
    return figure
