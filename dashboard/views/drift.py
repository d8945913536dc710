"""Drift: which production inputs moved away from the training data, when, and by how much."""

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.components import service_picker
from monitoring.drift import SEVERITY_COLORS, feature_distribution, get_method, summary
from monitoring.plots import drift as plots
from monitoring.production import ProductionDataError
from monitoring.reference import ReferenceDataError

SEVERITY_ORDER = {"red": 0, "amber": 1, "green": 2, "grey": 3}
SEVERITY_LABELS = {"red": "drifted", "amber": "close", "green": "stable", "grey": "no data"}
DRIFTED_WHEN = {"p_value": "p-value below threshold", "distance": "distance at or above threshold"}
WINDOWS = {"hour": "Hourly", "day": "Daily", "week": "Weekly", "rows": "Every N rows"}

current = state.settings()
runtime = state.runtime(current)

st.title("Drift")
st.caption("Each feature, and the model's predictions, in production compared with the reference (training) "
           "data, window by window. Methods and thresholds follow `[services.drift]`; the README explains each.")

service = service_picker(runtime, key="drift_service")

try:
    profile = state.drift_profile(runtime, current.fingerprint, service.name)
except (ReferenceDataError, ValueError) as exc:
    st.error(f"**The reference data of {service.name} cannot be used.** {exc}")
    st.stop()
try:
    production = state.prediction_log_mirror(runtime, current.fingerprint, service.name).read()
except ProductionDataError as exc:
    st.warning(str(exc))
    st.stop()
if production.frame.empty:
    st.info(f"No production data yet for {service.name} ({production.source}). Drift appears once it has "
            "logged predictions.")
    st.stop()

ts = production.frame["ts"]
first_day = dt.datetime.fromtimestamp(ts.min(), tz=dt.UTC).date()
last_day = dt.datetime.fromtimestamp(ts.max(), tz=dt.UTC).date()

controls = st.columns([2, 1, 2])
default_window = service.drift.window if service.drift.window in WINDOWS else "rows"
window_kind = controls[0].segmented_control("Windows", list(WINDOWS), format_func=WINDOWS.get, required=True,
                                            default=default_window, key=f"drift_window_{service.name}")
window: str | int = window_kind
if window_kind == "rows":
    window = int(controls[1].number_input(
        "Rows per window", min_value=100, max_value=1_000_000, step=1000, key=f"drift_rows_{service.name}",
        value=int(service.drift.window) if service.drift.window.isdigit() else 10_000))
picked = controls[2].date_input("Date range (UTC)", value=(first_day, last_day), min_value=first_day,
                                max_value=last_day, key=f"drift_dates_{service.name}")
start_day, end_day = (picked if isinstance(picked, tuple) and len(picked) == 2 else (first_day, last_day))
since = dt.datetime.combine(start_day, dt.time(), tzinfo=dt.UTC).timestamp()
until = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp()

with st.spinner(f"Comparing {len(production.frame):,} production rows with the reference…"):
    report = state.cached_drift(runtime, current.fingerprint, service.name, window, since, until,
                                len(production.frame))

if report.features.empty:
    st.info("No production rows in this date range.")
    st.stop()
headline = summary(report, since_label=start_day.strftime("%-d %b"))
latest = report.dataset.iloc[-1]
(st.warning if latest["n_drifted"] else st.success)(headline)
for message in report.warnings:
    st.warning(message)
st.caption(f"Production data: {production.source}. Reference: `{service.reference}` "
           f"({profile.n_rows:,} rows).")

st.plotly_chart(plots.drifted_share_figure(report), key="drift_share")

st.subheader("Features")
labels = {int(w): (f"{s:%d %b %Y %H:%M}" if pd.notna(s) else f"window {int(w)}")
          for w, s in zip(report.dataset["window"], report.dataset["window_start"], strict=True)}
chosen_window = st.select_slider("Window", options=list(labels), value=list(labels)[-1], format_func=labels.get,
                                 key=f"drift_table_window_{service.name}")
rows = report.features[report.features["window"] == chosen_window].copy()
rows["order"] = rows["severity"].map(SEVERITY_ORDER)
rows = rows.sort_values(["order", "feature"])
table = pd.DataFrame({
    "Feature": rows["feature"],
    "Status": rows["severity"].map(SEVERITY_LABELS),
    "Method": rows["method"],
    "Score": rows["score"],
    "Threshold": rows["threshold"],
    "Drifted when": [DRIFTED_WHEN[get_method(m).score_kind] for m in rows["method"]],
    "Rows": rows["n"],
    "Missing": rows["n_missing"],
    "Unseen": rows["n_unseen"],
}).reset_index(drop=True)
colors = dict(zip(SEVERITY_LABELS.values(), (SEVERITY_COLORS[k] for k in SEVERITY_LABELS), strict=True))
st.dataframe(
    table.style.map(lambda status: f"background-color: {colors.get(status, '')}; color: white", subset=["Status"])
    .format({"Score": "{:.4g}", "Threshold": "{:g}"}, na_rep="–"),
    hide_index=True,
    column_config={"Missing": st.column_config.NumberColumn(help="Missing values: left out of the score"),
                   "Unseen": st.column_config.NumberColumn(
                       help="Categories the reference never had, or numbers outside its range")},
)
st.download_button("Download all windows (CSV)", report.to_csv(table="all"), file_name=f"drift-{service.name}.csv",
                   mime="text/csv", key="drift_download")

feature_names = list(rows["feature"])
feature = st.selectbox("Distribution of", feature_names, key=f"drift_feature_{service.name}")
distribution = feature_distribution(report, feature, windows=[chosen_window])
st.plotly_chart(plots.distribution_figure(distribution, feature=feature), key="drift_distribution")

st.subheader("Over time")
st.plotly_chart(plots.drift_heatmap_figure(report), key="drift_heatmap")
if report.prediction.empty:
    st.info("Prediction drift needs the model's outputs on the reference: add `prediction` and/or `score` "
            "columns to the reference file.")
else:
    st.plotly_chart(plots.prediction_drift_figure(report), key="drift_prediction")
