"""Explain: why the model predicts what it predicts, across the data and for one prediction."""

from datetime import UTC, datetime
from datetime import time as day_time

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.components import feature_condition, go_ahead, personal, service_problem, when
from dashboard.state import explain as cache
from explain import ExplainError
from explain import plots as explain_plots
from explain.windows import available_windows

TABS = ["Feature importance", "Beeswarm", "Dependence", "One prediction", "Partial dependence"]
SPACES = {"auto": "Explainer's native scale", "probability": "Probability", "log_odds": "Log-odds"}
def chart(figure, key: str) -> None:
    st.plotly_chart(figure, key=key, config={"displayModeBar": False})


def computed(label: str, function, **options):
    """Run a cached explanation of this service with a progress bar; show why it failed instead of raising."""
    try:
        return state.run_with_progress(label, function, runtime, service=service_name, **options)
    except ExplainError as exc:
        service_problem(runtime, exc.message, icon=":material/error:")
    except Exception as exc:  # an explanation that fails is a message on the page, not a traceback
        service_problem(runtime, f"The explanation failed: {type(exc).__name__}: {exc}", icon=":material/error:")
    return None


def one_row_model_rows() -> int:
    """Model rows of explaining one row of the data window through the service (0 when it cannot be told)."""
    try:
        sample = cache.explain_window(runtime, service=service_name, window=window, n_rows=1, tick=state.tick(600))
        return cache.explain_model_rows(runtime, service=service_name, version=model.version, space=space, rows=sample)
    except Exception:  # the explanation itself shows the problem
        return 0


def global_model_rows() -> int:
    """Model rows of the importance, beeswarm and dependence tabs' explanation (0 when its rows cannot be read:
    the explanation then says why)."""
    try:
        sample = cache.explain_window(runtime, service=service_name, window=window, n_rows=int(rows), tick=tick)
        return cache.explain_model_rows(runtime, service=service_name, version=model.version, space=space, rows=sample)
    except Exception:  # the explanation itself shows the problem
        return 0


current = state.settings()
runtime = state.runtime(current)
names = [s.name for s in runtime.config.services]

st.title("Explain")
st.caption("Why the model predicts what it predicts: Shapley values (how much each feature moved a prediction away "
           "from the average one) across the data and for one logged prediction, and partial dependence (how the "
           "prediction changes when one feature changes). Computed when you open a tab, for what it shows.")

chosen = st.query_params.get("service", names[0])
service_name = st.selectbox("Service", names, index=names.index(chosen) if chosen in names else 0,
                            key="explain_service")
st.query_params["service"] = service_name
service = runtime.config.service(service_name)
mask = personal(runtime, service_name)  # the model gets the real values; the page shows personal ones masked

try:
    with st.spinner("Opening the model…"):
        setup = cache.explain_setup(runtime, service=service_name)
except ExplainError as exc:
    service_problem(runtime, f"This service cannot be explained. {exc.message}", icon=":material/error:")
    st.stop()

selected = setup.selected
model = selected.model
with st.container(border=True):
    left, right = st.columns([3, 2])
    kind = "Local artifact" if model.kind == "local" else "The service as a black box"
    left.markdown(f"**Model source:** {kind} · {model.description}  \n"
                  f"**Version:** `{model.version or 'not reported'}` · **task:** {model.task_text()}"
                  + (f" · **classes:** {', '.join(map(str, model.classes))}" if model.classes else ""))
    left.caption(selected.reason)
    check_box = right.empty()  # filled at the end: the check waits for the service, the charts do not
    if model.kind == "remote":
        check_box.caption("Every explanation here is computed from the service's own answers, in requests of at most "
                          f"{service.explain.max_rows_per_request:,} rows paced at "
                          f"{service.explain.max_rows_per_second:,.0f} model rows/s, a budget every user of this "
                          "dashboard shares ([services.explain]).")
    elif service.explain.source == "local":
        check_box.caption("The artifact is not checked against the service (source = 'local').")
    else:
        check_box.caption("Checking the artifact against the service…")

windows = available_windows(has_reference=setup.reference is not None, has_log=setup.has_log)
if not windows:
    st.error(f"No data to explain: {setup.reference_problem}, and the service's predictions are not logged.")
    st.stop()
controls = st.columns([3, 2, 2, 1])
window = controls[0].selectbox("Data", list(windows), format_func=windows.get, key="explain_window")
space_options = ["auto", "probability", "log_odds"] if model.task != "regression" else ["auto"]
space = controls[1].selectbox("Scale", space_options, format_func=SPACES.get, key="explain_space",
                              help="Tree and linear explainers work natively on the raw score (log-odds); "
                                   "probability uses a slower exact method or the model-agnostic one.")
try:
    shap_explainer = cache.explainer(runtime, service=service_name, version=model.version, space=space)
except ExplainError as exc:
    service_problem(runtime, exc.message)
    st.stop()
outputs = model.output_names()
output = controls[2].selectbox("Explain the output", outputs, key="explain_output",
                               disabled=len(outputs) == 1, help="For a multiclass model, pick the class.")
fast = shap_explainer.method in ("tree", "linear")
default_rows, most_rows = (1000, 5000) if fast else ((20, 200) if model.kind == "remote" else (100, 1000))
fewest, per_row = 10, 0
if model.kind == "remote":  # by default as many rows as one explanation may send the service, at most 20
    per_row = one_row_model_rows()
    fewest = 1
    if per_row:
        default_rows = int(min(20, max(1, 0.8 * service.explain.max_rows_per_computation // per_row)))
rows = controls[3].number_input("Rows", min_value=fewest, max_value=most_rows, value=default_rows, step=fewest,
                                key=f"explain_rows_{shap_explainer.method}",
                                help="Rows of the data window explained for the importance, beeswarm and dependence "
                                     "tabs. The model-agnostic explainer asks the model about ~15,000 rows per "
                                     "explained row, so it explains fewer"
                                     + (f"; through this service about {per_row:,} model rows per row, within "
                                        "its budget ([services.explain])." if per_row else "."))
st.caption(f"Method: {shap_explainer.note}.")
tabs = st.tabs(TABS, key="explain_tab", bind="query-params")
tick = state.tick(600)

if tabs[0].open or tabs[1].open or tabs[2].open:
    values = None
    if model.kind != "remote" or go_ahead(service, f"explaining {int(rows):,} rows", global_model_rows()):
        values = computed(f"Explaining {int(rows):,} rows", cache.explain_global, version=model.version,
                          space=space, window=window, n_rows=int(rows), tick=tick)
    if values is not None:
        footer = (f"{values.n_rows:,} rows of the {windows[window].lower()} · {values.seconds:.2f} s"
                  + (f" · {values.requests} request(s), {values.model_rows:,} model rows" if values.requests else ""))
        if tabs[0].open:
            with tabs[0]:
                chart(explain_plots.importance_figure(values, output=output), "explain_importance")
                st.caption(footer)
        if tabs[1].open:
            with tabs[1]:
                chart(explain_plots.beeswarm_figure(mask.shap_values(values), output=output), "explain_beeswarm")
                st.caption("Each dot is one row: how far that feature moved its prediction (right = up), coloured "
                           "by the feature's value (red high, blue low, grey categorical). " + footer)
        if tabs[2].open:
            with tabs[2]:
                ranked = mask.not_personal(values.importance(output)["feature"])  # a row's value is its x
                if len(ranked) < len(values.features):
                    st.caption("Personal columns are not charted against their values here.")
                left, right = st.columns(2)
                feature = left.selectbox("Feature", ranked, key="explain_dep_feature")
                colour = right.selectbox("Colour by", ["auto", "none", *[f for f in ranked if f != feature]],
                                         key="explain_dep_color",
                                         help="auto: the most important other feature")
                if colour == "auto":  # chosen here, among the columns that may be shown
                    colour = next((f for f in ranked if f != feature), "none")
                if feature is not None:
                    data = mask.shap_values(values).dependence(feature, output=output,
                                                               color_by=None if colour == "none" else colour)
                    chart(explain_plots.dependence_figure(data), "explain_dependence")
                    st.caption(footer)


def picked_row():
    """The prediction chosen in the picker (a one-row DataFrame and its id), or None."""
    if not setup.has_log:
        if setup.reference is None:
            return None, None
        st.info(f"{service_name} has no logged predictions (in the store, a prediction-log file or captured "
                "traffic), so pick a row of the reference data.")
        index = st.number_input("Reference row", min_value=0, max_value=len(setup.reference) - 1, value=0,
                                key="explain_reference_row")
        return setup.reference.iloc[[int(index)]], None
    mode = st.segmented_control("Find a prediction", ["Newest", "By id", "By time", "By feature"], default="Newest",
                                key="explain_pick_mode")
    prediction_id = since = until = None
    filters: tuple = ()
    if mode == "By id":
        prediction_id = st.text_input("Prediction id", value=st.query_params.get("prediction", ""),
                                      key="explain_pick_id").strip() or None
    elif mode == "By time":
        columns = st.columns(2)
        today = datetime.fromtimestamp(runtime.now(), tz=UTC).date()
        day = columns[0].date_input("Day (UTC)", value=today, key="explain_pick_day")
        hour = columns[1].time_input("From (UTC)", value=day_time(0, 0), key="explain_pick_time")
        since = datetime.combine(day, hour, tzinfo=UTC).timestamp()
        until = since + 86400.0 - (hour.hour * 3600 + hour.minute * 60)
    elif mode == "By feature":
        filters = feature_condition(mask.not_personal(model.features), dict(model.feature_kinds), key="explain_pick")
    try:
        found = cache.find_logged_predictions(runtime, service=service_name, prediction_id=prediction_id,
                                              since=since, until=until, filters=filters, limit=50,
                                              tick=state.tick(10))
    except ValueError as exc:
        st.error(str(exc))
        return None, None
    if found.empty:
        st.info("No logged prediction matches.")
        return None, None
    shown = found[["id", "ts", "prediction", "score", *model.features]].copy()
    shown.insert(1, "time (UTC)", pd.to_datetime(shown.pop("ts"), unit="s", utc=True).dt.strftime("%d %b %H:%M:%S"))
    event = st.dataframe(mask.frame(shown), hide_index=True, on_select="rerun", selection_mode="single-row",
                         height=210, key="explain_pick_table")
    selection = event.selection.rows if event is not None and hasattr(event, "selection") else []
    index = selection[0] if selection else 0
    row = found.iloc[[index]]
    row_id = str(row["id"].iloc[0])
    st.query_params["prediction"] = row_id
    made = when(float(row["ts"].iloc[0]), now=runtime.now())
    st.caption(f"Selected prediction `{row_id}` made {made}; click a row to pick another "
               f"(the {len(found)} newest matches are listed).")
    return row, row_id




if tabs[3].open:
    with tabs[3]:
        row, row_id = picked_row()
        single = None
        if row is not None and (model.kind != "remote" or go_ahead(
                service, "explaining the prediction",
                cache.explain_model_rows(runtime, service=service_name, version=model.version, space=space,
                                         rows=row[list(model.features)]))):
            single = computed("Explaining the prediction", cache.explain_row, version=model.version, space=space,
                              row=row[list(model.features)], row_id=row_id)
            if single is not None:
                explanation = mask.explanation(single.explanation(0, output=output))
                metrics = st.columns(3)
                metrics[0].metric("Base value", f"{explanation.base_value:.4g}",
                                  help="The average output over the background data: where every explanation starts.")
                metrics[1].metric("Prediction", f"{explanation.prediction:.4g}",
                                  delta=f"{explanation.prediction - explanation.base_value:+.4g} from the base value",
                                  delta_color="off")
                metrics[2].metric("Scale", {"log_odds": "log-odds"}.get(explanation.space, explanation.space),
                                  help=single.note)
                chart(explain_plots.waterfall_figure(explanation), "explain_waterfall")
                st.caption(f"{single.note}. " + (f"{single.requests} request(s), {single.model_rows:,} model rows, "
                                                 if single.requests else "") + f"{single.seconds:.2f} s.")
                with st.expander("Values"):
                    st.dataframe(explanation.to_frame(), hide_index=True)

if tabs[4].open:
    with tabs[4]:
        columns = st.columns([2, 2, 1, 1])
        ranked = mask.not_personal(model.features)  # the grid would show a personal column's values
        first = columns[0].selectbox("Feature", ranked, key="explain_pd_feature",
                                     index=ranked.index("credit_utilization") if "credit_utilization" in ranked else 0)
        second = columns[1].selectbox("Second feature (heatmap)", ["none", *[f for f in ranked if f != first]],
                                      key="explain_pd_second")
        centred = columns[2].toggle("Centre ICE", key="explain_pd_centred",
                                    help="Start every line at 0 to compare their shapes (c-ICE).")
        resolution = columns[3].number_input("Grid points", min_value=5, max_value=50, value=20,
                                             key="explain_pd_grid")
        features = (first,) if second == "none" else (first, second)
        highlight = None
        highlight_id = st.query_params.get("prediction")
        if highlight_id and setup.has_log and len(features) == 1:
            matches = cache.find_logged_predictions(runtime, service=service_name, prediction_id=highlight_id,
                                                    since=None, until=None, filters=(), limit=1,
                                                    tick=state.tick(10))
            highlight = matches[list(model.features)] if len(matches) else None
        n_rows = 500 if len(features) == 1 else 200
        result = None
        if model.kind != "remote" or go_ahead(service, "partial dependence", n_rows * int(resolution) ** len(features)):
            result = computed("Computing partial dependence", cache.explain_dependence, version=model.version,
                              features=features, window=window, n_rows=n_rows, grid_resolution=int(resolution),
                              highlight=highlight, tick=tick)
        if result is not None:
            if len(features) == 1:
                chart(explain_plots.partial_dependence_figure(result, output=output, centered=centred), "explain_pd")
                if highlight is not None:
                    st.caption(f"Dashed: the prediction `{highlight_id}` picked under One prediction.")
            else:
                chart(explain_plots.partial_dependence_heatmap_figure(result, output=output), "explain_pd_heatmap")
            points = len(result.grid[0]) * (len(result.grid[1]) if len(result.grid) > 1 else 1)
            requests = f", {result.requests} request(s)" if result.requests else ""
            st.caption(f"{result.method}: {result.n_rows} rows × {points} grid points, "
                       f"{result.seconds:.2f} s{requests}")

st.caption("Results are cached per service, model version and data window; logged-prediction windows refresh "
           "every 10 minutes.")

if model.kind == "local" and service.explain.source == "auto":
    check = cache.explain_consistency(runtime, service=service_name, version=model.version)
    with check_box.container():
        if check.agrees:
            st.success(f"Consistency check: {check.message}.", icon=":material/verified:")
        elif check.agrees is None:
            st.info(f"Consistency check: {check.message}.", icon=":material/help:")
        else:
            st.warning(f"**The artifact is not the model being served.** {check.message}.", icon=":material/warning:")
