"""What-if: change a prediction's inputs and watch the prediction, its explanation and its counterfactuals move."""

import dataclasses

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.components import (
    feature_condition,
    go_ahead,
    personal,
    service_picker,
    service_problem,
    show_message,
    when,
)
from dashboard.state import explain as explain_cache
from dashboard.state import whatif as cache
from explain import ExplainError, RemoteExplainError, whatif_plots
from explain import plots as explain_plots
from explain.scenarios import Scenario, encode_scenario, linked_scenario
from explain.whatif import (
    WhatIfInputError,
    class_text,
    value_changed,
)
from explain.whatif_lines import (
    answer_heading,
    compared_class_index,
    counterfactual_summary,
    decision_caption,
    default_target_range,
    edit_caption,
    finder_message,
    ignored_personal_note,
    ignored_values_warning,
    is_missing,
    logged_predictions_table,
    point_key,
    prediction_metric,
    repredicted_caption,
    scenario_row,
    sensitivity_caption,
    value_text,
)

TABS = ["Prediction", "Sensitivity", "Counterfactuals", "Scenarios"]
SOURCES = ["Logged prediction", "Reference row"]
FINDERS = ["Most recent", "Most uncertain", "Largest error", "By id", "By feature"]
LISTS = {"Most recent": "recent", "Most uncertain": "uncertain", "Largest error": "error"}


def chart(figure, key: str) -> None:
    st.plotly_chart(figure, key=key, config={"displayModeBar": False})


def plain(value):
    return value.item() if hasattr(value, "item") else value


def initial(widget: str, value) -> dict:
    """``value=`` for a widget unless Session State already holds its value (set from a link)."""
    return {} if widget in st.session_state else {"value": value}


def show_prediction(prediction, label: str, column, *, score_name: str, reference=None) -> None:
    """One side of the comparison: the decided class (or "predicted value") and the compared score."""
    shown = prediction_metric(prediction, label, score_name=score_name, reference=reference)
    column.metric(shown.label, shown.value, delta=shown.delta, delta_color="off", help=shown.help)


current = state.settings()
runtime = state.runtime(current)

st.title("What-if")
st.caption("Take one prediction, change its inputs and see the prediction and its explanation move; find the "
           "smallest changes that would flip it. Edited rows are re-predicted by the service itself (or the local "
           "artifact when the service is configured with source = 'local').")

service = service_picker(runtime, key="whatif_service")
mask = personal(runtime, service.name)  # personal columns are shown masked and never edited
try:
    with st.spinner("Opening the model…"):
        setup = explain_cache.explain_setup(runtime, service=service.name)
        model = cache.whatif_model(runtime, service=service.name)
        ranges = cache.whatif_ranges(runtime, service=service.name)
except ExplainError as exc:
    service_problem(runtime, f"What-if is not available for this service. {exc.message}", icon=":material/error:")
    st.stop()
threshold = float(service.performance.threshold) if model.binary else 0.5
features = list(model.features)

# -- a scenario in the link: applied once, before the widgets are drawn
link = st.query_params.get("scenario")
if link and st.session_state.get("whatif_link_applied") != link:
    linked = linked_scenario(link, features=features, is_personal=mask.is_personal, ranges=ranges,
                             reference_rows=len(setup.reference) if setup.reference is not None else 0)
    if linked.ignored_personal:
        st.info(ignored_personal_note(linked.ignored_personal), icon=":material/lock:")
    if linked.scenario is None:  # the decoder's message, shown as text: a link is anyone's to write
        st.warning("**The link's scenario cannot be used.** The page starts from the defaults instead.",
                   icon=":material/link_off:")
        st.text(linked.problem)
    else:
        shared = linked.scenario
        if linked.value_problems:  # the values come from the link: escaped, so they show as typed
            st.warning(ignored_values_warning(linked.value_problems))
        point_id = point_key(shared.source, shared.source_id)
        if shared.source == "prediction":
            st.session_state.update(whatif_source=SOURCES[0], whatif_find="By id", whatif_id=shared.source_id)
        else:
            st.session_state.update(whatif_source=SOURCES[1], whatif_ref_row=int(shared.source_id or 0))
        st.session_state.update({f"whatif_edit_{point_id}_{name}": value for name, value in linked.edits.items()})
        st.session_state["whatif_scenario_name"] = shared.name
    st.session_state["whatif_link_applied"] = link

# -- the starting point
if not setup.has_log:
    st.session_state["whatif_source"] = SOURCES[1]
source = st.segmented_control("Start from", SOURCES if setup.has_log else SOURCES[1:], key="whatif_source",
                              **({} if "whatif_source" in st.session_state else {"default": SOURCES[0]}))
original, point_id, origin = None, None, None
if source == SOURCES[0]:
    finder = st.segmented_control("Find a prediction", FINDERS, key="whatif_find",
                                  **({} if "whatif_find" in st.session_state else {"default": FINDERS[0]}))
    found = None
    try:
        if finder == "By id":
            wanted = st.text_input("Prediction id", key="whatif_id").strip()
            if wanted:
                found = explain_cache.find_logged_predictions(
                    runtime, service=service.name, prediction_id=wanted, since=None, until=None, filters=(),
                    limit=1, tick=state.tick(10))
        elif finder == "By feature":
            filters = feature_condition(mask.not_personal(features), dict(ranges.kinds), key="whatif_filter")
            if filters:
                found = explain_cache.find_logged_predictions(
                    runtime, service=service.name, prediction_id=None, since=None, until=None, filters=filters,
                    limit=50, tick=state.tick(10))
        elif finder in LISTS:
            listed = cache.whatif_listed(runtime, service=service.name, kind=LISTS[finder], limit=50,
                                         tick=state.tick(30))
            found = listed.rows
            if listed.note:
                st.info(listed.note)
    except Exception as exc:  # an unreadable log or labels are a message, not a traceback
        st.error(f"The predictions cannot be listed: {mask.text(exc)}")
    if found is not None and len(found):
        event = st.dataframe(mask.frame(logged_predictions_table(found, features)), hide_index=True,
                             on_select="rerun", selection_mode="single-row",
                             height=180, key=f"whatif_table_{finder}")
        picked = event.selection.rows if event is not None and hasattr(event, "selection") else []
        row = found.iloc[picked[0] if picked else 0]
        original = {f: plain(row[f]) for f in features}
        origin = ("prediction", str(row["id"]))
        point_id = point_key(*origin)
        made = when(float(row["ts"]), now=runtime.now())
        st.caption(f"Prediction `{row['id']}` made {made}; click a row to pick another.")
    elif message := finder_message(finder, searched=found is not None):
        show_message(*message)
elif source == SOURCES[1] and setup.reference is not None:
    index = int(st.number_input("Reference row", min_value=0, max_value=len(setup.reference) - 1,
                                key="whatif_ref_row", **initial("whatif_ref_row", 0)))
    original = {f: plain(setup.reference.iloc[index][f]) for f in features}
    origin = ("reference", str(index))
    point_id = point_key(*origin)
if original is None:
    st.info("Pick a prediction (or a reference row) to start from.")
    st.stop()

# -- the editor: one input per feature, bounded by the reference
st.subheader("Edit the inputs")
columns = st.columns(4)
edited = {}
for i, name in enumerate(features):
    cell = columns[i % 4]
    before = original[name]
    shown_before = value_text(before)
    widget = f"whatif_edit_{point_id}_{name}"
    if mask.is_personal(name):  # the model gets the real value; the page shows it masked, and it stays as it is
        shown_before = "missing" if is_missing(before) else str(mask.value(name, before))
        cell.text_input(name, value=shown_before, disabled=True, key=f"{widget}_masked",
                        help="Personal data: shown masked, and not editable.")
        edited[name] = before
        cell.caption("personal data, not editable")
        continue
    if ranges.kinds[name] == "numeric":
        whole, low, high = ranges.integer[name], ranges.low[name], ranges.high[name]
        edited[name] = cell.number_input(
            name, min_value=ranges.low[name], max_value=ranges.high[name],
            **initial(widget, None if is_missing(before) else float(min(max(before, low), high))),
            step=1.0 if whole else (ranges.high[name] - ranges.low[name]) / 100, format="%.0f" if whole else "%.4g",
            key=widget, help=f"Reference range {ranges.low[name]:.6g} – {ranges.high[name]:.6g}")
    else:
        options = list(ranges.categories[name])
        chosen = st.session_state.get(widget, before)
        edited[name] = cell.selectbox(name, options, index=options.index(chosen) if chosen in options else None,
                                      key=widget, help=f"Categories seen in the reference: {', '.join(options)}")
    changed = value_changed(edited[name], before)
    cell.caption(edit_caption(changed=changed, original=shown_before))
if st.button("Reset to the original", key="whatif_reset"):
    for name in features:
        st.session_state.pop(f"whatif_edit_{point_id}_{name}", None)
    st.rerun()

edited = {f: plain(v) for f, v in edited.items()}
changes = {f: v for f, v in edited.items() if value_changed(v, original[f])}
scenario = Scenario(st.session_state.get("whatif_scenario_name", ""), origin[0], origin[1], changes)
encoded = encode_scenario(scenario)
st.query_params["scenario"] = encoded
st.session_state["whatif_link_applied"] = encoded

# -- re-predict: the service's answer, or its message next to the editor and the last good result marked stale
result, problem = None, None
try:
    result = cache.whatif_compare(runtime, service=service.name, original=tuple(original.items()),
                                  edited=tuple(edited.items()), threshold=threshold)
except WhatIfInputError as exc:
    problem = "**These values cannot be predicted:**\n\n" + "\n".join(f"- {p}" for p in exc.problems)
except RemoteExplainError as exc:
    problem = f"**The service rejected the edited row** ({exc.call}): {exc.reason}"
except ExplainError as exc:
    problem = exc.message
if problem is not None:
    st.error(mask.text(problem), icon=":material/error:")
    result = st.session_state.get(f"whatif_last_{service.name}_{point_id}")
    stale = result is not None
else:
    st.session_state[f"whatif_last_{service.name}_{point_id}"] = result
    stale = False

# -- which class every tab compares (more than two classes): the same one on the original and the edited side
output = None
if result is not None and len(result.classes) > 2:
    options = list(result.classes)
    output = st.selectbox("Compare the probability of", options, format_func=class_text,
                          index=compared_class_index(result),
                          key=f"whatif_class_{point_id}",
                          help="The class whose probability the original and the edited row, the sensitivity "
                               "curves and the counterfactuals are compared on; it starts at the class predicted "
                               "for the original row.")
    result = result.for_output(output)

tabs = st.tabs(TABS, key="whatif_tab", bind="query-params")
if tabs[0].open:
    with tabs[0]:
        if result is None:
            st.info("No prediction to show yet.")
        else:
            if stale:
                st.warning("**Stale:** the last result the service gave, for the last values it accepted.",
                           icon=":material/history:")
            left, middle, right = st.columns([1, 1, 2])
            show_prediction(result.original_prediction, "Original", left, score_name=result.score_name)
            show_prediction(result.edited_prediction, "Edited", middle, score_name=result.score_name,
                            reference=result.original_prediction)
            left.caption(f"Both numbers: the {result.score_name}.")
            if (decision := decision_caption(result)) is not None:
                middle.caption(decision)
            with right:
                chart(whatif_plots.prediction_comparison_figure(result), "whatif_bars")
            probabilities = result.probabilities()  # the chart's numbers
            if len(probabilities):
                st.dataframe(probabilities.assign(**{"class": probabilities["class"].map(class_text)}),
                             hide_index=True, key="whatif_probabilities", column_config={
                                 "class": "Class", "original": st.column_config.NumberColumn("Original", format="%.4g"),
                                 "edited": st.column_config.NumberColumn("Edited", format="%.4g"),
                                 "change": st.column_config.NumberColumn("Change", format="%+.4g")})
            st.markdown("**Per-feature difference**")
            if result.differences.empty:
                st.caption("No feature changed yet: edit a value above.")
            else:
                st.dataframe(mask.long(result.differences, values=("original", "edited"))
                             .astype({"original": str, "edited": str}), hide_index=True)
            st.caption(repredicted_caption(seconds=result.seconds, requests=result.requests))
            space = "probability" if model.task != "regression" else "auto"
            black_box = setup.selected.model.kind == "remote"
            if st.toggle("Explain both (SHAP waterfalls)", value=not black_box, key="whatif_shap",
                         help="Through the service this sends it many model rows per row; the estimate is shown "
                              "first") and (not black_box or go_ahead(
                    service, "explaining both rows", 2 * explain_cache.explain_model_rows(
                        runtime, service=service.name, version=setup.selected.model.version, space=space,
                        rows=pd.DataFrame([result.original])[features]))):
                shown_output = compared_class_index(result)  # the compared class's Shapley values
                waterfalls = st.columns(2)
                for column, (label, values, row_id) in zip(waterfalls, (("original", result.original, origin[1]),
                                                                        ("edited", result.edited, None)),
                                                           strict=True):
                    with column:
                        try:
                            explanation = state.run_with_progress(
                                f"Explaining the {label} row", explain_cache.explain_row, runtime,
                                service=service.name, version=setup.selected.model.version, space=space,
                                row=pd.DataFrame([values])[features],
                                row_id=row_id if origin[0] == "prediction" else None,
                            ).explanation(0, output=shown_output)
                        except ExplainError as exc:
                            service_problem(runtime, exc.message)
                            continue
                        figure = explain_plots.waterfall_figure(mask.explanation(explanation))
                        figure.update_layout(title=f"{label.capitalize()}: {figure.layout.title.text}")
                        chart(figure, f"whatif_waterfall_{label}")

if tabs[1].open:
    with tabs[1]:
        resolution = st.number_input("Grid points per numeric feature", min_value=5, max_value=50, value=20,
                                     key="whatif_grid")
        point = result.edited if result is not None else original
        try:
            sensitivity = state.run_with_progress(
                "Computing the sensitivity", cache.whatif_sensitivity, runtime, service=service.name,
                point=tuple(point.items()), grid_resolution=int(resolution), output=output)
        except ExplainError as exc:
            service_problem(runtime, exc.message)
        else:
            if mask:  # a personal column's curve would show its range and the row's value: left out
                sensitivity = dataclasses.replace(
                    sensitivity, point=mask.record(sensitivity.point),
                    curves={f: c for f, c in sensitivity.curves.items() if not mask.is_personal(f)},
                    ranking=sensitivity.ranking[~sensitivity.ranking["feature"].isin(mask.columns)])
                st.caption("Personal columns are kept as they are and not charted.")
            chart(whatif_plots.sensitivity_figure(sensitivity), "whatif_sensitivity")
            st.dataframe(sensitivity.ranking.astype({"current": str, "best_value": str, "worst_value": str}),
                         hide_index=True)
            st.caption(sensitivity_caption(sensitivity))

if tabs[2].open:
    with tabs[2]:
        point = result.edited if result is not None else original
        with st.form("whatif_cf_form"):
            editable = mask.not_personal(features)  # personal values are never changed, nor their ranges shown
            allowed = st.multiselect("Features that may change", editable, default=editable, key="whatif_cf_allowed")
            n_answers = st.number_input("Answers", min_value=1, max_value=10, value=3, key="whatif_cf_n")
            target, desired = None, None
            if model.task == "regression":
                start, end = default_target_range(float(result.edited_prediction.score) if result is not None else 0.0)
                low, high = st.columns(2)
                target = (low.number_input("Target value from", value=start, key="whatif_cf_low"),
                          high.number_input("Target value to", value=end,
                                            key="whatif_cf_high",
                                            help="The range of predicted values an answer must reach."))
            elif result is not None and len(result.classes) > 2:
                desired = st.selectbox("Wanted class", [None, *result.classes], key="whatif_cf_desired",
                                       format_func=lambda c: "any other class" if c is None else class_text(c))
            bounds = {}
            with st.expander("Bounds (default: the reference range and every seen category)"):
                for name in allowed:
                    if ranges.kinds[name] == "numeric":
                        bounds[name] = st.slider(name, ranges.low[name], ranges.high[name],
                                                 (ranges.low[name], ranges.high[name]), key=f"whatif_cf_b_{name}")
                    else:
                        bounds[name] = tuple(st.multiselect(name, list(ranges.categories[name]),
                                                            default=list(ranges.categories[name]),
                                                            key=f"whatif_cf_b_{name}"))
            submitted = st.form_submit_button("Find counterfactuals")
        if submitted or st.session_state.get("whatif_cf_asked"):
            st.session_state["whatif_cf_asked"] = True
            try:
                found = state.run_with_progress(
                    "Searching counterfactuals", cache.whatif_counterfactuals, runtime, service=service.name,
                    point=tuple(point.items()), allowed=tuple(allowed),
                    bounds=tuple((k, tuple(v)) for k, v in bounds.items()), n_counterfactuals=int(n_answers),
                    target_range=target, threshold=threshold, desired_class=desired, output=output)
            except ExplainError as exc:
                service_problem(runtime, exc.message)
            else:
                st.markdown(counterfactual_summary(found))
                for note in found.notes:
                    st.caption(note)
                for i, answer in enumerate(found.counterfactuals, start=1):
                    with st.container(border=True):
                        st.markdown(answer_heading(i, answer, found=found, regression=model.task == "regression"))
                        st.dataframe(mask.long(answer.changes, values=("original", "new"))
                                     .astype({"original": str, "new": str}), hide_index=True)
        else:
            st.caption("Choose the features that may change and their bounds, then search.")

if tabs[3].open:
    with tabs[3]:
        kept = st.session_state.setdefault("whatif_scenarios", {})
        left, right = st.columns([3, 1])
        name = left.text_input("Scenario name", key="whatif_scenario_name")
        if right.button("Keep this scenario", key="whatif_keep", disabled=not name.strip()):
            kept[name.strip()] = (Scenario(name.strip(), origin[0], origin[1], changes), dict(original),
                                  dict(edited))
        st.caption("The address bar's link reproduces the current scenario (starting point and edits).")
        if kept:
            table = []
            for label, (saved, before, after) in kept.items():
                try:
                    compared = cache.whatif_compare(runtime, service=service.name, original=tuple(before.items()),
                                                    edited=tuple(after.items()), threshold=threshold)
                    if output is not None:
                        compared = compared.for_output(output)  # the class the page compares
                    table.append(scenario_row(label, saved, compared=compared))
                except ExplainError as exc:
                    table.append(scenario_row(label, saved, problem=exc.message))
            st.dataframe(pd.DataFrame(table), hide_index=True)
            if st.button("Forget all scenarios", key="whatif_forget"):
                kept.clear()
                st.rerun()
        else:
            st.caption("No scenario kept yet: name the current one and keep it to compare several here.")
