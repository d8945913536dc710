"""Segments: how the model treats subpopulations, and whether it treats groups fairly."""

import streamlit as st

from dashboard import state
from dashboard.components import (
    demo_backfill,
    download_button,
    personal,
    service_picker,
    service_problem,
    show_message,
)
from dashboard.state import data
from dashboard.state import segments as cache
from dashboard.state.explain import explain_setup
from explain import ExplainError, explains_through_service
from explain.segment_tables import (
    SEGMENT_DAYS,
    SEGMENT_EXPLAIN_ROWS,
    categorical_features,
    four_fifths_verdict,
    interval_texts,
    judged_text,
    segment_columns,
    segments_headline,
    top_features,
)
from explain.segments import class_column
from monitoring.performance_tables import number_text
from monitoring.production import ProductionDataError

METRIC_NAMES = {"accuracy": "Accuracy", "f1": "F1", "mae": "MAE", "rmse": "RMSE"}

current = state.settings()
runtime = state.runtime(current)
tick = state.tick(data.LABELS_TICK_SECONDS)

st.title("Segments")
st.caption("The logged predictions cut into segments by one or two features (categories as they are, numbers in "
           "quantile bins taken from the training data): how many predictions each segment got, what the model "
           "predicted there (the share of each decision, or the mean predicted value), how right it was once "
           "outcomes arrived, and which features drove its predictions. Below, fairness across the groups of a "
           "sensitive feature, computed with fairlearn.")

if demo_backfill(runtime):
    st.stop()
service = service_picker(runtime, key="segments_service")
mirror = data.prediction_log_mirror(runtime, service=service.name)
try:
    logged = data.production_summary(runtime, service=service.name)
    columns = mirror.columns()
except ProductionDataError as exc:
    st.warning(f"Segments need logged predictions: {exc}")
    st.stop()
if logged.rows == 0:
    st.info(f"No predictions of {service.name} have been logged yet.")
    st.stop()

mask = personal(runtime, service.name)  # segments and groups named after a personal value show its pseudonym
# only the personal columns are read (a Parquet log's warm_up), for the mask to know their values
runtime.privacy.learn(service.name, mirror.warm_up(tuple(runtime.privacy.columns.get(service.name, ()))))
schema = runtime.schema(service.name)
features = list(schema.present_in(columns))
categorical = categorical_features(schema.feature_kinds, features)
usual = mask.not_personal(categorical) or mask.not_personal(features) or features  # a default is not personal
controls = st.columns([3, 1, 1, 1])
chosen = controls[0].multiselect("Segment by (one or two features)", features, max_selections=2,
                                 default=usual[:1], key=f"segments_features_{service.name}")
n_bins = int(controls[1].number_input("Bins of a number", min_value=2, max_value=10, value=4,
                                      key="segments_bins"))
days = controls[2].selectbox("Period", SEGMENT_DAYS, index=1, format_func=lambda d: f"Last {d} days",
                             key="segments_days")
min_rows = int(controls[3].number_input("Smallest judged segment", min_value=1, max_value=10_000,
                                        value=service.performance.min_labels, key="segments_min_rows",
                                        help="Segments with fewer predictions (or, once outcomes arrive, fewer "
                                             "labelled ones) are marked too small to judge."))
if not chosen:
    st.info("Pick one or two features to segment by.")
    st.stop()

with st.spinner("Measuring every segment…"):
    result = cache.segments_table(runtime, service=service.name, features=tuple(chosen), n_bins=n_bins,
                                  days=float(days), min_rows=min_rows, tick=tick)
table = mask.text_cells(result.table.assign(segment=mask.segment_labels(result.table["segment"], chosen)))
st.markdown(segments_headline(len(table), days=days, too_small=int(table["too_small"].sum())))
shown = interval_texts(table, result.metrics).assign(judged=judged_text(table["too_small"]))
intervals = [c for c in (f"{m}_interval" for m in result.metrics) if c in shown]  # e.g. "0.830–0.860"
st.dataframe(shown[segment_columns(shown, decision_columns=result.decision_columns, metrics=result.metrics)],
             hide_index=True, column_config={
    "n_drifted": st.column_config.NumberColumn(
        "Drifted features", format="%d",
        help="Features whose distribution in this segment moved away from the same segment in training"),
    "drifted_features": st.column_config.TextColumn("Which"),
    "segment": "Segment",
    "judged": st.column_config.TextColumn("Enough data"),
    "n": st.column_config.NumberColumn("Predictions", format="%d"),
    "share": st.column_config.NumberColumn("Share now", format="percent"),
    "reference_share": st.column_config.NumberColumn("Share in training", format="percent"),
    "share_change": st.column_config.NumberColumn("Change of share", format="percent",
                                                  help="Share now minus share in the training data: how this "
                                                       "segment's population drifted."),
    "prediction_rate": st.column_config.NumberColumn("Positive decisions", format="percent"),
    "mean_prediction": st.column_config.NumberColumn("Mean predicted value", format="%.3g"),
    **{c: st.column_config.NumberColumn(f"Decided {c}", format="percent",
                                        help=f"Share of the segment's predictions that decided {c}")
       for c in result.class_columns},
    "n_labelled": st.column_config.NumberColumn("With known outcome", format="%d"),
    **{m: st.column_config.NumberColumn(METRIC_NAMES[m], format="%.3f") for m in result.metrics},
    **{c: st.column_config.TextColumn("95 % interval", help="Where the segment's true value lies with 95 % "
                                      "confidence, given how few outcomes it has (as on the Performance page)")
       for c in intervals},
}, key="segments_table")
download_button(mask, "Download the segments (CSV)", table.to_csv(index=False).encode(),
                file_name=f"segments-{service.name}.csv", mime="text/csv", key="segments_download")


def fairness_section() -> None:
    """Fairness across the groups of a sensitive feature (fairlearn), before the slower explanations."""
    st.subheader("Fairness")
    if result.task == "regression":
        st.info("Fairness metrics compare how often groups get a decision; this model predicts values, not classes, "
                "so there is no decision to compare. The table above gives the mean predicted value per segment.")
        return
    pickers = st.columns(2)
    sensitive = pickers[0].selectbox("Sensitive feature", features,
                                     index=features.index(usual[0]),
                                     key=f"segments_sensitive_{service.name}")
    positive = None
    if len(result.classes) > 2:
        positive = pickers[1].selectbox(
            "Positive class", list(result.classes), index=len(result.classes) - 1, format_func=class_column,
            key=f"segments_positive_{service.name}",
            help="The decision the fairness metrics count as positive; every other class counts as negative "
                 "(one against the rest).")
    fairness = cache.segments_fairness(runtime, service=service.name, sensitive=sensitive, n_bins=n_bins,
                                       days=float(days), min_rows=min_rows, positive=positive, tick=tick)
    if fairness is None:
        st.info("Fairness metrics need a model that decides between classes.")
        return
    decision = fairness.decision_name
    kpis = st.columns(3)
    kpis[0].metric("Demographic parity difference", number_text(fairness.demographic_parity_difference),
                   help=f"Largest minus smallest share of {decision} between groups (0 = equal).")
    kpis[1].metric("Demographic parity ratio", number_text(fairness.demographic_parity_ratio),
                   help=f"Smallest over largest share of {decision} (1 = equal; under 0.8 fails the "
                        "four-fifths rule).")
    kpis[2].metric("Equalised odds difference", number_text(fairness.equalized_odds_difference),
                   help="The larger gap, between groups, of true-positive or false-positive rates (0 = equal); needs "
                        "known outcomes.")
    if (rule := four_fifths_verdict(fairness.four_fifths_ok, sensitive=sensitive)) is not None:
        show_message(*rule)
    for sentence in fairness.sentences():
        st.markdown(mask.text(sentence))
    groups = mask.text_cells(fairness.by_group.assign(group=mask.groups(sensitive, fairness.by_group["group"])))
    groups = groups.assign(judged=judged_text(groups["too_small"]))
    st.dataframe(groups.drop(columns="too_small"), hide_index=True, column_config={
        "group": "Group", "judged": "Enough data", "n": st.column_config.NumberColumn("Predictions", format="%d"),
        "selection_rate": st.column_config.NumberColumn(decision[0].upper() + decision[1:], format="percent"),
        "n_labelled": st.column_config.NumberColumn("With known outcome", format="%d"),
        "true_positive_rate": st.column_config.NumberColumn("True-positive rate", format="%.3f"),
        "false_positive_rate": st.column_config.NumberColumn("False-positive rate", format="%.3f"),
        "accuracy": st.column_config.NumberColumn("Accuracy", format="%.3f"),
    }, key="segments_fairness")
    st.caption("Computed with fairlearn's MetricFrame. Groups too small to judge are listed but left out of the "
               "differences and the ratio.")


fairness_section()

st.subheader("What drives the decisions in each segment")
if explains_through_service(service) and not st.session_state.get(f"segments_explain_{service.name}_asked"):
    st.caption(f"This model is explained through the service as a black box: a sample of at most "
               f"{SEGMENT_EXPLAIN_ROWS} predictions (fewer when the service's budget, `[services.explain] "
               "max_rows_per_computation`, allows fewer), each sent again with features masked, costs the service "
               "many model rows, so it runs only when asked (with the model file configured in "
               "`[services.explain] artifact`, it runs locally at once).")
    if st.button("Explain a sample of each segment through the service", key=f"segments_explain_{service.name}",
                 icon=":material/psychology:"):
        st.session_state[f"segments_explain_{service.name}_asked"] = True
        st.rerun()
else:
    try:
        version = explain_setup(runtime, service=service.name).selected.model.version
        importance = state.run_with_progress(
            "Explaining a sample of each segment", cache.segments_importance, runtime, service=service.name,
            version=version, features=tuple(chosen), n_bins=n_bins, days=float(days), tick=state.tick(3600))
    except ExplainError as exc:
        service_problem(runtime, f"Feature importance per segment is not available: {exc.message}", box=st.info)
    else:
        top = top_features(importance)
        top = mask.text_cells(top.assign(segment=mask.segment_labels(top["segment"], chosen)))
        st.dataframe(top, hide_index=True, column_config={
            "segment": "Segment", "top_features": "Top 3 features (mean |SHAP|)",
            "explained": st.column_config.NumberColumn("Rows explained", format="%d")}, key="segments_importance")
        st.caption("Mean absolute Shapley value of each feature over a sample of the segment's predictions (at "
                   f"most {SEGMENT_EXPLAIN_ROWS} rows in all), with the Explain page's explainer.")
