"""Drift: which production inputs moved away from the training data, when, and by how much."""

import datetime as dt
import math

import streamlit as st

from dashboard import state
from dashboard.components import demo_backfill, download_button, personal, service_picker
from dashboard.state import data
from dashboard.state import drift as cache
from monitoring.drift import (
    NOISE_QUANTILE,
    SEVERITY_COLORS,
    drifted_features,
    feature_distribution,
    summary,
)
from monitoring.drift_tables import feature_table, newest_closed_window, window_features, window_labels
from monitoring.plots import drift as plots
from monitoring.production import ProductionDataError
from monitoring.reference import ReferenceDataError
from monitoring.windows import row_count

STATUS_COLORS = {"drifted": SEVERITY_COLORS["red"], "close": SEVERITY_COLORS["amber"],
                 "stable": SEVERITY_COLORS["green"], "too small": SEVERITY_COLORS["grey"],
                 "cannot judge": SEVERITY_COLORS["grey"]}
WINDOWS = {"hour": "Hourly", "day": "Daily", "week": "Weekly", "rows": "Every N rows"}

current = state.settings()
runtime = state.runtime(current)

st.title("Drift")
st.caption("Each feature, and the model's predictions, in production compared with the reference (training) "
           "data, window by window. Methods and thresholds follow `[services.drift]`; the README explains each.")

if demo_backfill(runtime):
    st.stop()
service = service_picker(runtime, key="drift_service")
mask = personal(runtime, service.name)

try:
    profile = cache.drift_profile(runtime, service=service.name)
except (ReferenceDataError, ValueError) as exc:
    st.error(f"**The reference data of {service.name} cannot be used.** {exc}")
    st.stop()
try:
    production = data.production_summary(runtime, service=service.name)
except ProductionDataError as exc:
    st.warning(str(exc))
    st.stop()
if production.rows == 0 or not math.isfinite(production.first_ts):
    st.info(f"No production data yet for {service.name} ({production.source}). Drift appears once it has "
            "logged predictions.")
    st.stop()

first_day = dt.datetime.fromtimestamp(production.first_ts, tz=dt.UTC).date()
last_day = dt.datetime.fromtimestamp(production.last_ts, tz=dt.UTC).date()

controls = st.columns([2, 1, 2])
default_window = service.drift.window if service.drift.window in WINDOWS else "rows"
window_kind = controls[0].segmented_control("Windows", list(WINDOWS), format_func=WINDOWS.get, required=True,
                                            default=default_window, key=f"drift_window_{service.name}")
window: str | int = window_kind
if window_kind == "rows":
    window = int(controls[1].number_input(
        "Rows per window", min_value=100, max_value=1_000_000, step=1000, key=f"drift_rows_{service.name}",
        value=row_count(service.drift.window) or 10_000))
picked = controls[2].date_input("Date range (UTC)", value=(first_day, last_day), min_value=first_day,
                                max_value=last_day, key=f"drift_dates_{service.name}")
start_day, end_day = (picked if isinstance(picked, tuple) and len(picked) == 2 else (first_day, last_day))
since = dt.datetime.combine(start_day, dt.time(), tzinfo=dt.UTC).timestamp()
until = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp()

with st.spinner(f"Comparing {production.rows:,} production rows with the reference…"):
    report = cache.cached_drift(runtime, service=service.name, window=window, since=since, until=until,
                                rows_seen=production.rows)

if report.features.empty:
    st.info("No production rows in this date range.")
    st.stop()
headline = summary(report, since_label=start_day.strftime("%-d %b"))
(st.warning if drifted_features(report) else st.success)(headline)
expected, n_judged = report.false_alarm_bound()
open_note = (" The newest window is still open: it is shown \"so far\" and does not decide the line above."
             if report.dataset["partial"].iloc[-1] else "")
st.caption(f"A distance counts as drift only above its threshold and above the noise a window of its size shows "
           f"when nothing changed (the {NOISE_QUANTILE:.1%} level of no-change samples from the reference); "
           f"p-values account for the size themselves. Across the {n_judged:,} feature-windows judged here, at most "
           f"about {expected:.1f} would be flagged by chance if nothing had changed.{open_note}")
for message in report.warnings:
    st.warning(mask.text(message))
for problem in data.prediction_log_mirror(runtime, service=service.name).problems():
    st.warning(f"Part of the prediction log is not counted: {problem}")
st.caption(f"Production data: {production.source}. Reference: `{service.reference}` "
           f"({profile.n_rows:,} rows).")

st.plotly_chart(plots.drifted_share_figure(report), key="drift_share")

st.subheader("Features")
labels = window_labels(report)
chosen_window = st.select_slider("Window", options=list(labels), value=newest_closed_window(report),
                                 format_func=labels.get, key=f"drift_table_window_{service.name}")
rows = window_features(report, chosen_window)
if rows["partial"].any():
    st.info("This window is still open: its figures are so far, and it does not decide the verdicts above.")
table = feature_table(rows, text=mask.text)
st.dataframe(
    table.style.map(lambda status: f"background-color: {STATUS_COLORS.get(status, '')}; color: white",
                    subset=["Status"])
    .format({"Score": "{:.4g}", "Threshold": "{:g}", "Noise level": "{:.3g}"}, na_rep="–"),
    hide_index=True,
    column_config={"Missing": st.column_config.NumberColumn(help="Missing values: left out of the score"),
                   "Unseen": st.column_config.NumberColumn(
                       help="Categories the reference never had, or numbers outside its range"),
                   "Noise level": st.column_config.NumberColumn(
                       help="The score a window of this size reaches when nothing changed (distances only); a "
                            "distance must be above it, and above the threshold, to count as drift"),
                   "Why not judged": st.column_config.TextColumn(
                       help="'too small': the window's noise is above the threshold, so only larger drifts can "
                            "be told; 'cannot judge': too few values, none, or a column constant in the reference")},
)
download_button(mask, "Download all windows (CSV)", report.to_csv(table="all"), file_name=f"drift-{service.name}.csv",
                mime="text/csv", key="drift_download")

feature_names = list(rows["feature"])
feature = st.selectbox("Distribution of", feature_names, key=f"drift_feature_{service.name}")
distribution = mask.distribution(feature, feature_distribution(report, feature, windows=[chosen_window]))
figure = plots.distribution_figure(distribution, feature=feature)
if mask.is_personal(feature):  # categories as pseudonyms, numbers on the reference's quantile scale
    if (distribution["bin_kind"] == "bin").any():
        figure.layout.xaxis.title.text = "reference quantile (personal data: values are not shown)"
    st.caption(f"{feature} is personal data: its categories are shown as pseudonyms and its numbers on the "
               "reference's quantile scale (0 = the reference's smallest value, 1 = its largest).")
st.plotly_chart(figure, key="drift_distribution")

st.subheader("Over time")
st.plotly_chart(plots.drift_heatmap_figure(report), key="drift_heatmap")
if report.prediction.empty:
    st.info("Prediction drift needs the model's outputs on the reference: add `prediction` and/or `score` "
            "columns to the reference file.")
else:
    st.plotly_chart(plots.prediction_drift_figure(report), key="drift_prediction")
