"""A shareable report: the Overview, with key tables and charts of the other pages, as one HTML file.

:func:`service_report` gathers one service's already computed results (findings, volume,
drift, performance, segments, fairness) into a :class:`ServiceReport` with its figures and
tables; :func:`render_report` writes them into one self-contained HTML page: a single inline
copy of plotly.js, no request to any server, so it opens anywhere, offline.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from monitoring.overview import ServiceAlerts, Volume

STATE_COLORS = {"up": "#16a34a", "degraded": "#d97706", "down": "#dc2626", "unknown": "#6b7280"}
LEVEL_COLORS = {"error": "#fee2e2", "warning": "#fef3c7", "info": "#e0f2fe"}
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #111827; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .generated { color: #6b7280; margin-top: 0; }
section { border: 1px solid #e5e7eb; border-radius: 8px; padding: 1rem 1.5rem; margin: 1.5rem 0; }
.badge { display: inline-block; color: white; border-radius: 4px; padding: 0.1rem 0.6rem; font-size: 0.9rem;
         margin-left: 0.5rem; vertical-align: middle; }
.headline { font-weight: 600; padding: 0.6rem 0.8rem; border-radius: 6px; background: #f3f4f6; }
.alert { padding: 0.4rem 0.8rem; border-radius: 6px; margin: 0.3rem 0; }
.kpis { display: flex; gap: 2rem; margin: 0.8rem 0; } .kpi b { display: block; font-size: 1.4rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""


@dataclass(frozen=True)
class ServiceReport:
    """What the report says about one service.

    Attributes
    ----------
    name : str
    state : {"up", "degraded", "down", "unknown"}
    status_line : str
    model_line : str
    alerts : ServiceAlerts or None
    volume : Volume or None
    sentences : tuple of str
        Plain statements (results, incoming data, labels).
    figures : tuple of plotly Figure
    tables : tuple of (str, DataFrame)
        Title and table.
    """

    name: str
    state: str
    status_line: str
    model_line: str
    alerts: ServiceAlerts | None = None
    volume: Volume | None = None
    sentences: tuple[str, ...] = ()
    figures: tuple[go.Figure, ...] = ()
    tables: tuple[tuple[str, pd.DataFrame], ...] = field(default_factory=tuple)


def service_report(name: str, *, state: str, status_line: str, model_line: str,
                   alerts: ServiceAlerts | None = None, volume: Volume | None = None,
                   sentences: Sequence[str] = (), mix: pd.DataFrame | None = None, performance=None,
                   decisions=None, drift=None, segments=None, fairness=None, mask=None) -> ServiceReport:
    """Gather one service's computed results, with the figures and tables the report shows.

    Parameters
    ----------
    name : str
    state : str
    status_line, model_line : str
    alerts : ServiceAlerts, optional
    volume : Volume, optional
    sentences : sequence of str, default=()
    mix : DataFrame, optional
        :func:`monitoring.overview.prediction_mix`.
    performance : PerformanceOverTime, optional
        Its first metric is charted and its windows tabulated.
    decisions : DecisionsOverTime, optional
        With business values: the money chart.
    drift : DriftReport, optional
        The drifted-share chart and the newest window's feature table.
    segments : explain.segments.SegmentTable, optional
    fairness : explain.segments.FairnessReport, optional
    mask : monitoring.privacy.PersonalMask, optional
        The service's personal columns: every text, table cell and figure label of the report
        is masked with it (segments and groups named after a personal value show its pseudonym).

    Returns
    -------
    ServiceReport
    """
    from monitoring.performance import METRIC_LABELS
    from monitoring.plots import drift as drift_plots
    from monitoring.plots import overview as overview_plots
    from monitoring.plots import performance as performance_plots

    figures, tables = [], []
    sentences = list(sentences)
    if mix is not None:
        figures.append(overview_plots.prediction_mix_figure(mix))
    if performance is not None:
        metric = performance.metrics[0]
        figures.append(performance_plots.metric_figure(performance, metric))
        windows = performance.to_frame()
        shown = ["window_start", "n_predictions", "n_labelled", metric]
        table = windows[shown].rename(columns={"window_start": "window from", "n_predictions": "predictions",
                                               "n_labelled": "with known outcome", metric: METRIC_LABELS[metric]})
        table["window from"] = table["window from"].dt.strftime("%d %b %Y")
        tables.append((f"{METRIC_LABELS[metric]} per day", table.tail(14)))
    if decisions is not None and decisions.business is not None:
        figures.append(performance_plots.money_figure(decisions))
    if drift is not None and not drift.features.empty:
        figures.append(drift_plots.drifted_share_figure(drift))
        latest = drift.features[drift.features["window"] == drift.features["window"].max()]
        table = latest[["feature", "method", "score", "threshold", "drifted", "n"]].sort_values(
            ["drifted", "feature"], ascending=[False, True])
        tables.append(("Incoming data against the training data, newest day",
                       table.rename(columns={"n": "rows"})))
    if segments is not None:
        table = segments.table.copy()
        if mask:  # its labels quote values
            table = mask.text_cells(table.assign(segment=mask.segment_labels(table["segment"], segments.features)))
        table["too_small"] = table["too_small"].map({True: "too small to judge", False: ""})
        tables.append((f"Segments by {' and '.join(segments.features)}", table))
    if fairness is not None:
        sentences.extend(fairness.sentences())
        tables.append((f"Fairness across {fairness.sensitive_feature}",
                       mask.text_cells(fairness.by_group.assign(group=mask.groups(
                           fairness.sensitive_feature, fairness.by_group["group"]))) if mask else fairness.by_group))
    report = ServiceReport(name, state, status_line, model_line, alerts, volume, tuple(sentences), tuple(figures),
                           tuple(tables))
    return _masked(report, mask) if mask else report


def _masked(report: ServiceReport, mask) -> ServiceReport:
    """The report with ``mask`` (a :class:`monitoring.privacy.PersonalMask`) applied to everything it shows."""
    import dataclasses

    alerts = report.alerts
    if alerts is not None:
        alerts = dataclasses.replace(alerts, recommendation=mask.text(alerts.recommendation),
                                     alerts=tuple(dataclasses.replace(a, message=mask.text(a.message))
                                                  for a in alerts.alerts))
    return dataclasses.replace(
        report, status_line=mask.text(report.status_line), model_line=mask.text(report.model_line), alerts=alerts,
        sentences=tuple(mask.text(s) for s in report.sentences),
        figures=tuple(mask.figure(f) for f in report.figures),
        tables=tuple((mask.text(title), mask.frame(table)) for title, table in report.tables))


def _table_html(title: str, table: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if not math.isfinite(value) else f"{value:,.3f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    return (f"<h3>{html.escape(title)}</h3>"
            + table.to_html(index=False, escape=True, formatters=dict.fromkeys(table.columns, cell), border=0))


def render_report(services: Sequence[ServiceReport], *, generated_at: float, title: str = "Vantage report") -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    services : sequence of ServiceReport
    generated_at : float
        Unix seconds, shown in the header.
    title : str, default="Vantage report"

    Returns
    -------
    str
        HTML with one inline copy of plotly.js and every figure embedded; it loads nothing
        from the network.
    """
    stamp = datetime.fromtimestamp(generated_at, tz=UTC).strftime("%d %b %Y %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
             f"<p class='generated'>Generated {stamp} by Vantage.</p>"]
    plotly_included = False
    for number, service in enumerate(services):
        color = STATE_COLORS.get(service.state, STATE_COLORS["unknown"])
        parts.append(f"<section><h2>{html.escape(service.name)}<span class='badge' style='background:{color}'>"
                     f"{html.escape(service.state)}</span></h2>")
        parts.append(f"<p>{html.escape(service.status_line)}<br>{html.escape(service.model_line)}</p>")
        if service.alerts is not None:
            parts.append(f"<p class='headline'>{html.escape(service.alerts.recommendation)}</p>")
            parts += [f"<div class='alert' style='background:{LEVEL_COLORS.get(a.level, '#f3f4f6')}'>"
                      f"{html.escape(a.message)}</div>" for a in service.alerts.alerts]
        if service.volume is not None:
            v = service.volume
            parts.append("<div class='kpis'>"
                         f"<div class='kpi'><b>{v.today:,}</b>predictions today (UTC)</div>"
                         f"<div class='kpi'><b>{v.last_7_days:,}</b>predictions in the last 7 days, "
                         f"{html.escape(v.trend_text())}</div></div>")
        parts += [f"<p>{html.escape(s)}</p>" for s in service.sentences]
        for index, figure in enumerate(service.figures):
            parts.append(pio.to_html(figure, full_html=False, include_plotlyjs="inline" if not plotly_included
                                     else False, div_id=f"figure-{number}-{index}",
                                     config={"displaylogo": False, "responsive": True}))
            plotly_included = True
        parts += [_table_html(name, table) for name, table in service.tables]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
