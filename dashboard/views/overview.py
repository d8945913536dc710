"""Overview: is each model up, still right, how much did it decide, and should it be retrained?"""

import math
import time
from datetime import UTC, datetime

import streamlit as st

from dashboard import state
from dashboard.components import status_badge, when
from monitoring.drift import summary
from monitoring.health import format_duration
from monitoring.labels import LabelDataError
from monitoring.overview import performance_sentence, service_alerts
from monitoring.performance import baseline_verdict
from monitoring.plots import overview as plots
from monitoring.plots import performance as performance_plots
from monitoring.production import ProductionDataError
from monitoring.reference import ReferenceDataError
from monitoring.report import render_report, service_report

ALERT_BOXES = {"error": st.error, "warning": st.warning, "info": st.info}
ACTION_BOXES = {"fix_service": st.error, "retrain": st.error, "investigate": st.warning, "watch": st.warning,
                "none": st.success, "unknown": st.info}

current = state.settings()
runtime = state.runtime(current)
services = runtime.config.services

st.title("Overview")
st.caption("For each model: whether it is running, how many decisions it made, whether its results are still as "
           "good as when it was trained, and what changed in the data it receives. Changes are judged over the "
           f"last {state.OVERVIEW_DAYS} days.")

since_label = datetime.fromtimestamp(state.overview_since(), tz=UTC).strftime("%-d %b")
fastest = min(s.poll_interval for s in services)
fleet = {row.service: row for row in state.cached_fleet(runtime, current.fingerprint, state.tick(fastest))}
report_slot = st.empty()
gathered = []

for service in services:
    row = fleet[service.name]
    with st.container(border=True):
        heading = st.columns([4, 1])
        heading[0].subheader(service.name)
        with heading[1]:
            status_badge(row.state)
        status_line = f"Status: {row.reason or row.state} (checked {when(row.last_poll_ts)})."
        st.markdown(f"**{status_line.replace(':', ':**', 1)}")

        problem = None
        counts = None
        try:
            counts = state.overview_counts(runtime, current.fingerprint, service.name)
        except ProductionDataError as exc:
            problem = str(exc)
        if counts is not None and counts.n_rows == 0:
            counts, problem = None, "no predictions have been logged yet"

        meta = state.cached_metadata(runtime, current.fingerprint, service.name, state.tick(60))
        model_name = meta.get("name") or service.model or service.name
        version = (counts.model_version if counts is not None and counts.model_version else None) or meta.get("version")
        age = (f", serving for {format_duration(counts.model_age_seconds)}"
               if counts is not None and math.isfinite(counts.model_age_seconds) else "")
        model_line = f"Model: {model_name}" + (f", version {version}" if version else "") + age + "."
        st.markdown(f"**{model_line.replace(':', ':**', 1)}")

        drift, drift_problem = None, None
        verdict, performance, performance_problem, quality = None, None, problem, None
        if counts is not None:
            kpis = st.columns(3)
            volume = counts.volume
            kpis[0].metric("Predictions today (UTC)", f"{volume.today:,}")
            kpis[1].metric(f"Predictions, last {state.OVERVIEW_DAYS} days", f"{volume.last_7_days:,}",
                           delta=(f"{volume.trend:+.0%}" if math.isfinite(volume.trend) else None),
                           help=f"{volume.trend_text().capitalize()} ({volume.previous_7_days:,}).")
            try:
                drift = state.overview_drift(runtime, current.fingerprint, service.name)
            except (ReferenceDataError, ValueError) as exc:
                drift_problem = str(exc)
            try:
                labeled = state.labeled_predictions(runtime, current.fingerprint, service.name)
                performance = state.cached_performance(runtime, current.fingerprint, service.name, "day", 30.0)
                verdict = baseline_verdict(performance, performance.metrics[0])
                quality = labeled.quality
                kpis[2].metric("Predictions with a known outcome", f"{labeled.n_labelled:,}",
                               help="Real outcomes (labels) arrive after the prediction; they are what results "
                                    "are measured against.")
            except (ProductionDataError, LabelDataError) as exc:
                performance_problem = str(exc)

        found = service_alerts(state=row.state, reason=row.reason, drift=drift, drift_problem=drift_problem,
                               verdict=verdict, performance_problem=performance_problem, quality=quality,
                               volume=counts.volume if counts is not None else None)
        ACTION_BOXES[found.action](f"**{found.recommendation}**")
        for alert in found.alerts:
            ALERT_BOXES[alert.level](alert.message)
        collected = {"state": row.state, "status_line": status_line, "model_line": model_line, "alerts": found}
        gathered.append((service.name, collected))
        if counts is None:
            continue

        sentences = []
        if verdict is not None:
            sentences.append(f"Results: {performance_sentence(verdict)}")
        if drift is not None and not drift.features.empty:
            sentences.append(f"Incoming data: {summary(drift, since_label=since_label)}.")
        for sentence in sentences:
            st.markdown(f"**{sentence.replace(':', ':**', 1)}")
        if quality is not None:
            st.caption(" ".join(quality.sentences()))
            sentences.append(" ".join(quality.sentences()))
        collected.update(volume=counts.volume, sentences=sentences, mix=counts.mix, performance=performance,
                         drift=drift)

        charts = st.columns(2)
        measure = counts.mix.attrs.get("measure", "mean prediction")
        charts[0].plotly_chart(plots.prediction_mix_figure(
            counts.mix, title=f"Predictions and {measure} per day, last 30 days"), key=f"overview_mix_{service.name}")
        settings = service.performance
        if (settings.has_business_values and performance is not None and performance.task == "classification"
                and len(performance.classes) == 2):
            decisions = state.cached_decisions(runtime, current.fingerprint, service.name, "day", 30.0,
                                               settings.threshold)
            charts[1].plotly_chart(performance_plots.money_figure(decisions), key=f"overview_money_{service.name}")
            collected["decisions"] = decisions
        elif performance is not None:
            charts[1].plotly_chart(performance_plots.metric_figure(performance, performance.metrics[0]),
                                   key=f"overview_metric_{service.name}")


def report_html() -> bytes:
    """The overview and key tables and charts of the other pages, as one HTML file (built on click)."""
    parts = []
    for name, collected in gathered:
        segments, fairness = state.report_segments(runtime, current.fingerprint, name)
        parts.append(service_report(name, **collected, segments=segments, fairness=fairness))
    return render_report(parts, generated_at=time.time()).encode()


report_slot.download_button("Download this overview as one HTML file", data=report_html,
                            file_name="vantage-report.html", mime="text/html", key="overview_report",
                            on_click="ignore", icon=":material/download:",
                            help="A self-contained page with this overview, the drift, performance, segment and "
                                 "fairness tables and charts; it opens in any browser without the dashboard.")
