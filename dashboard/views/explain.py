"""Explain: why the model predicts what it predicts, across the data and for one prediction."""

from datetime import UTC, datetime
from datetime import time as day_time

import streamlit as st

from dashboard import state
from dashboard.components import feature_condition, go_ahead, personal, service_problem, show_message, when
from dashboard.state import explain as cache
from explain import ExplainError
from explain import plots as explain_plots
from explain.explanation_lines import (
    PARTIAL_DEPENDENCE_ROWS,
    artifact_check_caption,
    consistency_alert,
    day_span,
    dependence_caption,
    dependence_colour,
    global_footer,
    model_source_line,
    picked_caption,
    row_choices,
    row_explanation_caption,
    scale_name,
)
from explain.whatif_lines import logged_predictions_table
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
    left.markdown(model_source_line(model))
    left.caption(selected.reason)
    check_box = right.empty()  # filled at the end: the check waits for the service, the charts do not
    check_box.caption(artifact_check_caption(model, service.explain))

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
remote = model.kind == "remote"
choices = row_choices(method=shap_explainer.method, remote=remote, per_row=one_row_model_rows() if remote else 0,
                      max_rows_per_computation=service.explain.max_rows_per_computation)
rows = controls[3].number_input("Rows", min_value=choices.fewest, max_value=choices.most, value=choices.default,
                                step=choices.fewest, key=f"explain_rows_{shap_explainer.method}", help=choices.help)
st.caption(f"Method: {shap_explainer.note}.")
tabs = st.tabs(TABS, key="explain_tab", bind="query-params")
tick = state.tick(600)

if tabs[0].open or tabs[1].open or tabs[2].open:
    values = None
    if model.kind != "remote" or go_ahead(service, f"explaining {int(rows):,} rows", global_model_rows()):
        values = computed(f"Explaining {int(rows):,} rows", cache.explain_global, version=model.version,
                          space=space, window=window, n_rows=int(rows), tick=tick)
    if values is not None:
        footer = global_footer(values, window_name=windows[window])
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
                if feature is not None:  # "auto" is chosen here, among the columns that may be shown
                    data = mask.shap_values(values).dependence(feature, output=output,
                                                               color_by=dependence_colour(colour, ranked, feature))
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
        since, until = day_span(day, hour)
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
    shown = logged_predictions_table(found, model.features, seconds=True)
    event = st.dataframe(mask.frame(shown), hide_index=True, on_select="rerun", selection_mode="single-row",
                         height=210, key="explain_pick_table")
    selection = event.selection.rows if event is not None and hasattr(event, "selection") else []
    index = selection[0] if selection else 0
    row = found.iloc[[index]]
    row_id = str(row["id"].iloc[0])
    st.query_params["prediction"] = row_id
    made = when(float(row["ts"].iloc[0]), now=runtime.now())
    st.caption(picked_caption(row_id, made=made, listed=len(found)))
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
                metrics[2].metric("Scale", scale_name(explanation.space),
                                  help=single.note)
                chart(explain_plots.waterfall_figure(explanation), "explain_waterfall")
                st.caption(row_explanation_caption(single))
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
        n_rows = PARTIAL_DEPENDENCE_ROWS[len(features)]
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
            st.caption(dependence_caption(result))

st.caption("Results are cached per service, model version and data window; logged-prediction windows refresh "
           "every 10 minutes.")

if model.kind == "local" and service.explain.source == "auto":
    check = cache.explain_consistency(runtime, service=service_name, version=model.version)
    level, text = consistency_alert(check)
    icon = {"success": "verified", "info": "help", "warning": "warning"}[level]
    with check_box.container():
        show_message(level, text, icon=f":material/{icon}:")
