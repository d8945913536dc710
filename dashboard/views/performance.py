"""Performance: is the model still right, now that the ground truth has arrived?"""

import streamlit as st

from dashboard import state
from dashboard.components import demo_backfill, download_button, personal
from dashboard.state import data
from dashboard.state import performance as cache
from monitoring.labels import LabelDataError
from monitoring.performance import LOWER_IS_BETTER, METRIC_LABELS
from monitoring.performance_tables import (
    HOURLY_RANGE_DAYS,
    baseline_caption,
    business_caption,
    coverage_text,
    ground_truth_heading,
    has_decision_threshold,
    has_open_window_value,
    label_delay_sentence,
    number_text,
    overall_help,
    range_for_window,
    verdict_numbers,
    window_columns,
    window_periods,
    window_status,
)
from monitoring.plots import performance as plots
from monitoring.production import ProductionDataError
from monitoring.windows import row_count

WINDOWS = {"Hour": "hour", "Day": "day", "Week": "week", "N predictions": "rows"}
RANGES = {"Last 7 days": 7.0, "Last 30 days": 30.0, "Last 90 days": 90.0, "Everything": None}
VERDICT_BOXES = {"worse": st.error, "better": st.success, "in line": st.success, "uncertain": st.info,
                 "unknown": st.info}


current = state.settings()
runtime = state.runtime(current)
names = [s.name for s in runtime.config.services]
tick = state.tick(data.LABELS_TICK_SECONDS)

st.title("Performance")
st.caption("How often the model is right, measured against the ground truth as it arrives. Each window holds the "
           "predictions made in it, and a label that arrives days later fills in the window its prediction "
           "belongs to, so recent windows fill up over time. Bands are confidence intervals: a window with few "
           "labels has a wide band and a hollow marker, and should not be over-read.")

if demo_backfill(runtime):
    st.stop()
chosen = st.query_params.get("service", names[0])
service_name = st.selectbox("Service", names, index=names.index(chosen) if chosen in names else 0,
                            key="performance_service")
st.query_params["service"] = service_name
service = runtime.config.service(service_name)
settings = service.performance

try:
    labeled = cache.performance_labels(runtime, service=service.name, tick=tick)
except (ProductionDataError, LabelDataError) as exc:
    st.warning(f"Performance cannot be measured for **{service.name}**: {personal(runtime, service.name).text(exc)}")
    st.stop()

controls = st.columns([3, 2, 2, 2])
configured_window = "rows" if row_count(settings.window) else settings.window
window_name = controls[0].segmented_control(
    "Window", list(WINDOWS), default=next(k for k, v in WINDOWS.items() if v == configured_window),
    key="performance_window", required=True)
window = WINDOWS[window_name]
if window == "rows":
    window = str(controls[1].number_input(
        "Predictions per window", min_value=100, max_value=1_000_000, step=100,
        value=row_count(settings.window) or 1000, key="performance_rows"))
range_name = controls[2].selectbox("Range", list(RANGES), index=1, key="performance_range")
range_days = range_for_window(window, RANGES[range_name])
if range_days != RANGES[range_name]:
    st.caption(f"Hourly windows cover the last {HOURLY_RANGE_DAYS:g} days.")

with st.spinner("Scoring every window…"):
    result = cache.cached_performance(runtime, service=service.name, window=window, range_days=range_days, tick=tick)
metric = controls[3].selectbox("Metric", result.metrics, format_func=METRIC_LABELS.get, key="performance_metric")
name = METRIC_LABELS[metric]

with st.container(border=True):
    quality = labeled.quality
    st.markdown(ground_truth_heading(labeled))
    sentences = quality.sentences()
    if quality.problems:
        st.warning("\n".join(f"- {s}" for s in sentences[:-1]))
    st.markdown(sentences[-1] + label_delay_sentence(labeled.median_delay_seconds))

overall = result.overall
verdict = cache.cached_verdict(runtime, service=service.name, window=window, range_days=range_days, metric=metric,
                               tick=tick)
judged = verdict_numbers(verdict)
kpis = st.columns(4)
kpis[0].metric(f"{name}, last {settings.judged_days:g} days", judged.value, delta=judged.delta,
               delta_color="inverse" if metric in LOWER_IS_BETTER else "normal", help=judged.help)
kpis[1].metric(f"{name}, whole range", number_text(overall[metric]),
               help=overall_help(overall, metric, confidence=result.confidence))
kpis[2].metric("Labelled predictions", f"{int(overall['n_labelled']):,}",
               help=f"of {int(overall['n_predictions']):,} predictions in the range")
kpis[3].metric("Coverage", coverage_text(overall["coverage"]),
               help="Share of the range's predictions whose label has arrived.")

VERDICT_BOXES[verdict.state](verdict.message)
if (caption := baseline_caption(result.baseline, verdict, judged_days=settings.judged_days)) is not None:
    st.caption(caption)

st.plotly_chart(plots.metric_figure(result, metric), key="performance_metric_chart")
if has_open_window_value(result.windows, metric):  # drawn only once it has a value
    st.caption("The hollow diamond is a window still open: its value is so far, and it never decides the verdict "
               "on its own.")
st.plotly_chart(plots.labelled_count_figure(result), key="performance_count_chart")

st.subheader("Decisions" if result.task == "classification" else "Residuals")
periods = window_periods(result.windows)
left, right = st.columns(2)
period = left.selectbox("Period", list(periods), key="performance_period")
scored = has_decision_threshold(result, labeled)
threshold = (right.slider("Decision threshold", min_value=0.0, max_value=1.0, value=settings.threshold, step=0.01,
                          key="performance_threshold",
                          help="A prediction counts as positive from this score on. The metrics above score the "
                               "service's own decisions; the confusion matrix and the money follow this threshold.")
             if scored else None)
since, until = periods[period]
detail = cache.cached_performance_detail(runtime, service=service.name, since=since, until=until,
                                         threshold=threshold, tick=tick)
if result.task == "classification":
    charts = st.columns(2)
    charts[0].plotly_chart(plots.confusion_matrix_figure(detail), key="performance_confusion")
    if scored:
        charts[1].plotly_chart(plots.calibration_figure(detail), key="performance_calibration")
        st.caption("Calibration: among predictions with a score near x, the share that turned out positive. "
                   "Points under the diagonal mean the model over-estimates how often the positive class occurs; "
                   "points above it, that it under-estimates it.")
else:
    st.plotly_chart(plots.residuals_figure(detail), key="performance_residuals")

decisions = None
if result.task == "classification" and len(result.classes) == 2:
    decisions = cache.cached_decisions(runtime, service=service.name, window=window, range_days=range_days,
                                       threshold=threshold, tick=tick)
    if decisions.business is not None:
        st.plotly_chart(plots.money_figure(decisions), key="performance_money")
        st.caption(business_caption(decisions.business))
    else:
        st.caption("Set `cost_false_positive`, `cost_false_negative` or `value_correct` in "
                   "`[services.performance]` to see what the decisions of each window were worth.")

st.subheader("Every window")
table = result.to_frame(decisions)
table["status"] = window_status(table)
st.dataframe(table[window_columns(table, result.metrics)], hide_index=True, column_config={
    "window_start": st.column_config.DatetimeColumn("Window from", format="D MMM YYYY, HH:mm"),
    "status": st.column_config.TextColumn("Status", help="so far: the window is still open; too few labels: "
                                                          "fewer than min_labels, not judged"),
    "n_predictions": st.column_config.NumberColumn("Predictions", format="%d"),
    "n_labelled": st.column_config.NumberColumn("Labelled", format="%d"),
    "coverage": st.column_config.ProgressColumn("Coverage", min_value=0.0, max_value=1.0, format="percent"),
    **{m: st.column_config.NumberColumn(METRIC_LABELS[m], format="%.3f") for m in result.metrics},
    "tn": st.column_config.NumberColumn("True negatives", format="%d"),
    "fp": st.column_config.NumberColumn("False positives", format="%d"),
    "fn": st.column_config.NumberColumn("False negatives", format="%d"),
    "tp": st.column_config.NumberColumn("True positives", format="%d"),
    "money": st.column_config.NumberColumn("Money", format="%.0f"),
})
download_button(personal(runtime, service.name), "Download every window as CSV (with intervals)",
                table.to_csv(index=False).encode(), file_name=f"performance-{service.name}-{window}.csv",
                mime="text/csv", key="performance_download")
