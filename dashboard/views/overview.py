"""Overview: is each model up, still right, how much did it decide, and should it be retrained?"""

import math

import streamlit as st

from dashboard import state
from dashboard.components import demo_backfill, download_button, personal, plain, show_message, status_badge, when
from dashboard.state import data, health, segments
from dashboard.state import overview as cache
from monitoring.overview import OVERVIEW_DAYS, ServiceOverview
from monitoring.overview_lines import model_line as model_line_of
from monitoring.overview_lines import shows_money
from monitoring.overview_lines import status_line as status_line_of
from monitoring.plots import overview as plots
from monitoring.plots import performance as performance_plots
from monitoring.production import ProductionDataError
from monitoring.report import render_report, service_report

ACTION_LEVELS = {"fix_service": "error", "retrain": "error", "investigate": "warning", "watch": "warning",
                 "check": "warning", "none": "success", "unknown": "info"}

current = state.settings()
runtime = state.runtime(current)
services = runtime.config.services

st.title("Overview")
st.caption("For each model: whether it is running, how many predictions it made and what they were, whether its "
           "results are still as good as when it was trained, and what changed in the data it receives. Inputs "
           f"are judged per day over the last {OVERVIEW_DAYS} days (today is shown but, still open, never decides); "
           "results over the predictions of the judged period whose real outcome is known.")

if demo_backfill(runtime):
    st.stop()

fastest = min(s.poll_interval for s in services)
fleet = {row.service: row for row in health.cached_fleet(runtime, tick=state.tick(fastest))}
report_slot = st.empty()
gathered = []

for service in services:
    row = fleet[service.name]
    mask = personal(runtime, service.name)  # a reason or a sentence may quote a personal value
    with st.container(border=True):
        heading = st.columns([4, 1])
        heading[0].subheader(service.name)
        with heading[1]:
            status_badge(row.state)
        checked = when(row.last_poll_ts, now=runtime.now())
        status_line = status_line_of(state=row.state, reason=row.reason, checked=checked)
        st.markdown(f"**Status:** {plain(mask.text(row.reason or row.state))} \\(checked {plain(checked)}\\)\\.")

        try:
            found_data = cache.overview(runtime, service=service.name,
                                        rows_seen=data.rows_seen(runtime, service=service.name),
                                        tick=state.tick(cache.OVERVIEW_TICK_SECONDS))
        except ProductionDataError as exc:
            found_data = ServiceOverview(service.name, runtime.now(), problem=str(exc), performance_problem=str(exc))
        counts = found_data.counts

        meta = health.cached_metadata(runtime, service=service.name, tick=state.tick(60))
        model_line = model_line_of(
            name=meta.get("name") or service.model or service.name,
            version=(counts.model_version if counts is not None else None) or meta.get("version"),
            age_seconds=counts.model_age_seconds if counts is not None else None)
        st.markdown(f"**{model_line.replace(':', ':**', 1)}")

        if counts is not None:
            kpis = st.columns(3)
            volume = counts.volume
            kpis[0].metric("Predictions today (UTC)", f"{volume.today:,}")
            kpis[1].metric(f"Predictions, last {OVERVIEW_DAYS} days", f"{volume.last_7_days:,}",
                           delta=(f"{volume.trend:+.0%}" if math.isfinite(volume.trend) else None),
                           help=f"{volume.trend_text().capitalize()} ({volume.previous_7_days:,}).")
            if found_data.quality is not None:
                kpis[2].metric("Predictions with a known outcome", f"{found_data.n_labelled:,}",
                               help="Real outcomes (labels) arrive after the prediction; they are what results "
                                    "are measured against.")
            if math.isfinite(volume.trend) or volume.last_7_days:
                st.caption(f"Predictions this week: {volume.trend_text()}.")

        found = found_data.alerts(state=row.state, reason=row.reason)  # for the report (HTML-escaped there)
        shown = found_data.alerts(state=row.state, reason=plain(row.reason))  # the service's words, never Markdown
        show_message(ACTION_LEVELS[shown.action], f"**{mask.text(shown.recommendation)}**")
        for alert in shown.alerts:
            show_message(alert.level, mask.text(alert.message))
        gathered.append((service.name, row.state, status_line, model_line, found, found_data))
        if counts is None:
            if found_data.problem:
                st.caption(found_data.problem[0].upper() + found_data.problem[1:] + ".")
            continue

        sentences = found_data.sentences()
        for sentence in sentences[:-1] if found_data.quality is not None else sentences:
            st.markdown(f"**{mask.text(sentence).replace(':', ':**', 1)}")
        if found_data.quality is not None:
            st.caption(mask.text(sentences[-1]))

        charts = st.columns(2)
        measure = counts.mix.attrs.get("measure", "mean predicted value")  # positive rate, class shares or mean
        charts[0].plotly_chart(plots.prediction_mix_figure(
            counts.mix, title=f"Predictions and {measure} per day, last 30 days"), key=f"overview_mix_{service.name}")
        measured = found_data.performance
        if shows_money(service.performance, measured) and found_data.decisions is not None:
            charts[1].plotly_chart(performance_plots.money_figure(found_data.decisions),
                                   key=f"overview_money_{service.name}")
        elif measured is not None:
            charts[1].plotly_chart(performance_plots.metric_figure(measured, measured.metrics[0]),
                                   key=f"overview_metric_{service.name}")


def report_html() -> bytes:
    """The overview and key tables and charts of the other pages, as one HTML file (built on click)."""
    parts = []
    for name, service_state, status_line, model_line, found, found_data in gathered:
        segment_table, fairness = segments.report_segments(runtime, service=name)
        service = runtime.config.service(name)
        decisions = found_data.decisions if shows_money(service.performance, found_data.performance) else None
        counts = found_data.counts
        parts.append(service_report(
            name, state=service_state, status_line=status_line, model_line=model_line, alerts=found,
            volume=counts.volume if counts is not None else None, sentences=found_data.sentences() if counts else (),
            mix=counts.mix if counts is not None else None, performance=found_data.performance,
            decisions=decisions, drift=found_data.drift, segments=segment_table, fairness=fairness,
            mask=personal(runtime, name)))
    return render_report(parts, generated_at=runtime.now()).encode()


with report_slot:  # the report masks each service's personal data itself (service_report's mask)
    download_button(personal(runtime, ""), "Download this overview as one HTML file", data=report_html,
                    file_name="vantage-report.html", mime="text/html", key="overview_report",
                    on_click="ignore", icon=":material/download:",
                    help="A self-contained page with this overview, the drift, performance, segment and "
                         "fairness tables and charts; it opens in any browser without the dashboard.")
