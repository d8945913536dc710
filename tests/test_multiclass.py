"""More than two classes on every page: class shares, one-vs-rest fairness, What-if on one class.

A three-class random forest on a synthetic 13-feature set (twelve numbers and a region), saved
with skops and used as the services' local artifact, has its decisions logged into a store as
the template service logs them: ``prediction`` is the class, ``score`` is empty (the template
logs a score for two classes only) and no per-class probabilities are kept. Class shares are
therefore derived from the decisions. The same fixture holds a regression service, whose page
tests are in ``tests/test_regression_pages.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explain.segments import fairness_metrics, segment_metrics
from monitoring.overview import prediction_mix
from tests.fixtures_multiclass import CLASSIFIER, DAY, FEATURES, NOW, NUMBERS, chart, dataframe, whatif_page
from tests.helpers import page_text

# -- known answers of the pure functions ------------------------------------------------------


def test_prediction_mix_gives_one_share_per_class_that_sums_to_one():
    frame = pd.DataFrame({"ts": [0.0, 10.0, 20.0, 30.0, DAY + 5, DAY + 6],
                          "prediction": [0.0, 2.0, 2.0, 1.0, 1.0, 1.0]})
    mix = prediction_mix(frame, task="classification", classes=(0.0, 1.0, 2.0), now=DAY + 60)
    assert mix.attrs["measure"] == "class shares"
    assert mix.attrs["classes"] == {"class 0": 0.0, "class 1": 1.0, "class 2": 2.0}
    assert list(mix.columns) == ["bucket_ts", "n", "class 0", "class 1", "class 2", "partial"]
    assert mix["n"].tolist() == [4, 2]
    assert mix["class 0"].tolist() == pytest.approx([0.25, 0.0])
    assert mix["class 1"].tolist() == pytest.approx([0.25, 1.0])
    assert mix["class 2"].tolist() == pytest.approx([0.5, 0.0])
    assert mix[["class 0", "class 1", "class 2"]].sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    assert mix["partial"].tolist() == [False, True]
    # a class the caller did not list gets its column; no class ids are averaged
    unlisted = prediction_mix(frame.assign(prediction=[0.0, 3.0, 3.0, 1.0, 1.0, 1.0]), task="classification",
                              classes=(0.0, 1.0))
    assert "class 3" in unlisted and "value" not in unlisted
    # two classes keep the positive rate, regression the mean predicted value
    binary = prediction_mix(frame.assign(prediction=[0.0, 1.0, 1.0, 1.0, 0.0, 0.0]), task="classification",
                            classes=(0.0, 1.0))
    assert binary.attrs["measure"] == "positive rate" and binary["value"].tolist() == pytest.approx([0.75, 0.0])
    values = prediction_mix(frame.assign(prediction=[1.0, 2.0, 3.0, 6.0, 10.0, 20.0]), task="regression")
    assert values.attrs["measure"] == "mean predicted value" and values["value"].tolist() == pytest.approx([3.0, 15.0])
    empty = prediction_mix(frame, task="classification", classes=(0.0, 1.0, 2.0), since=10 * DAY)
    assert empty.empty and list(empty.columns) == ["bucket_ts", "n", "class 0", "class 1", "class 2", "partial"]


def test_the_class_share_chart_is_stacked_with_one_trace_per_class():
    from monitoring.plots.overview import prediction_mix_figure

    frame = pd.DataFrame({"ts": [0.0, 10.0, 20.0, DAY + 5], "prediction": [0.0, 2.0, 2.0, 1.0]})
    figure = prediction_mix_figure(prediction_mix(frame, task="classification", classes=(0.0, 1.0, 2.0),
                                                  now=DAY + 60))
    bars = [t for t in figure.data if t.type == "bar"]
    assert [t.name for t in bars] == ["class 0", "class 1", "class 2"]
    assert figure.layout.barmode == "stack"
    assert list(bars[2].y) == pytest.approx([2 / 3, 0.0])
    assert [t.name for t in figure.data if t.type == "scatter"] == ["predictions"]
    assert figure.layout.yaxis.tickformat == ".0%"
    # the legend (one entry per class) runs along the figure's bottom edge, where it cannot run into the title
    legend = figure.layout.legend
    assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")


def test_segment_metrics_give_per_class_decision_shares_not_a_mean_of_class_ids():
    frame = pd.DataFrame({"region": ["a"] * 4 + ["b"] * 2,
                          "prediction": [0.0, 2.0, 2.0, 1.0, 1.0, 1.0],
                          "label": [0.0, 2.0, 1.0, np.nan, 1.0, 0.0]})
    result = segment_metrics(frame, ["region"], task="classification", classes=(0.0, 1.0, 2.0), min_rows=1)
    table = result.table.set_index("segment")
    assert result.class_columns == {"class 0": 0.0, "class 1": 1.0, "class 2": 2.0}
    assert result.decision_columns == ("class 0", "class 1", "class 2")
    assert "mean_prediction" not in table and "prediction_rate" not in table
    assert table.loc["region = a", ["class 0", "class 1", "class 2"]].tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert table.loc["region = b", ["class 0", "class 1", "class 2"]].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert table.loc["region = a", "accuracy"] == pytest.approx(2 / 3)  # of the three labelled rows
    assert table.loc["region = b", "accuracy"] == pytest.approx(0.5)
    assert result.metrics == ("accuracy",)
    binary = segment_metrics(frame.assign(prediction=[0.0, 1.0, 1.0, 1.0, 0.0, 0.0], label=np.nan), ["region"],
                             task="classification", classes=(0.0, 1.0), min_rows=1)
    assert binary.decision_columns == ("prediction_rate",) and not binary.class_columns
    assert binary.table.set_index("segment").loc["region = a", "prediction_rate"] == pytest.approx(0.75)


def test_fairness_is_one_class_against_the_rest_defaulting_to_the_last_class():
    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference

    rng = np.random.default_rng(4)
    n = 3000
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    weights = {"a": [0.2, 0.3, 0.5], "b": [0.3, 0.4, 0.3], "c": [0.5, 0.3, 0.2]}
    y_pred = np.array([rng.choice(3, p=weights[g]) for g in group], dtype=float)
    y_true = np.where(rng.random(n) < 0.7, y_pred, rng.integers(0, 3, n)).astype(float)
    y_true[rng.random(n) < 0.2] = np.nan
    report = fairness_metrics(y_pred, group, y_true=y_true, min_rows=30, sensitive_feature="group")
    assert report.positive_label == 2.0 and report.one_vs_rest and report.classes == (0.0, 1.0, 2.0)
    is_two = (y_pred == 2).astype(int)
    assert report.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(is_two, is_two, sensitive_features=group))
    assert report.demographic_parity_ratio == pytest.approx(
        demographic_parity_ratio(is_two, is_two, sensitive_features=group))
    known = ~np.isnan(y_true)
    assert report.equalized_odds_difference == pytest.approx(equalized_odds_difference(
        (y_true[known] == 2).astype(int), is_two[known], sensitive_features=group[known]))
    by_group = report.by_group.set_index("group")
    assert by_group.loc["a", "selection_rate"] == pytest.approx(np.mean(y_pred[group == "a"] == 2))
    right = known & (group == "b")
    assert by_group.loc["b", "accuracy"] == pytest.approx(np.mean(y_pred[right] == y_true[right]))  # all classes
    text = " ".join(report.sentences())
    assert "Decisions of class 2 by group" in text and "class 2 against the rest" in text
    chosen = fairness_metrics(y_pred, group, y_true=y_true, positive_label=0.0, min_rows=30)
    is_zero = (y_pred == 0).astype(int)
    assert chosen.positive_label == 0.0 and chosen.demographic_parity_ratio == pytest.approx(
        demographic_parity_ratio(is_zero, is_zero, sensitive_features=group))
    assert chosen.by_group.set_index("group").loc["c", "selection_rate"] == pytest.approx(
        np.mean(y_pred[group == "c"] == 0))
    with pytest.raises(ValueError, match="positive_label must be one of the classes"):
        fairness_metrics(y_pred, group, positive_label=7.0)
    binary = fairness_metrics((y_pred == 2).astype(float), group, min_rows=30)
    assert binary.positive_label == 1.0 and not binary.one_vs_rest
    assert binary.sentences()[0].startswith("Positive decisions by sensitive feature")


# -- the pages ---------------------------------------------------------------------------------


def test_overview_shows_class_shares_per_day_named_per_class(pages, logged):
    _, history = logged
    at = pages.run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "Mean prediction" not in text and "mean prediction" not in text
    figure = chart(at, f"overview_mix_{CLASSIFIER}")
    assert figure["layout"]["title"]["text"] == "Predictions and class shares per day, last 30 days"
    assert figure["layout"]["barmode"] == "stack"
    bars = [t for t in figure["data"] if t["type"] == "bar"]
    assert [t["name"] for t in bars] == ["class 0", "class 1", "class 2"]
    rows = history[CLASSIFIER]
    yesterday = rows[(rows["ts"] >= (NOW // DAY - 1) * DAY) & (rows["ts"] < (NOW // DAY) * DAY)]
    for k, trace in enumerate(bars):
        assert trace["y"][-2] == pytest.approx(np.mean(yesterday["prediction"] == k))  # the last closed day
    shares = np.array([t["y"] for t in bars]).sum(axis=0)
    assert shares == pytest.approx(np.ones(len(shares)))
    at.run()
    assert not at.exception, at.exception


def test_segments_show_class_shares_and_fairness_for_the_chosen_class(pages, logged):
    _, history = logged
    at = pages.run()
    at.switch_page("views/segments.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="segments_service").select(CLASSIFIER).run()
    assert not at.exception, at.exception
    table, element = dataframe(at, "segment")
    assert {"class 0", "class 1", "class 2"} <= set(table.columns)
    assert "mean_prediction" not in table.columns
    rows = history[CLASSIFIER]
    rows = rows[rows["ts"] >= NOW - 30 * DAY]
    north = table.set_index("segment").loc["region = north"]
    for k in range(3):
        assert north[f"class {k}"] == pytest.approx(np.mean(rows.loc[rows["region"] == "north", "prediction"] == k))
    assert "Decided class 2" in str(element.proto)  # the column's label

    picker = at.selectbox(key=f"segments_positive_{CLASSIFIER}")
    assert picker.value == 2.0  # the last class by default
    fairness = dataframe(at, "group")[0].set_index("group")
    expected = rows.groupby("region")["prediction"].apply(lambda p: np.mean(p == 2))
    assert fairness["selection_rate"].to_dict() == pytest.approx(expected.to_dict())
    assert "Decisions of class 2 by region" in page_text(at)
    picker.select(0.0).run()
    assert not at.exception, at.exception
    fairness = dataframe(at, "group")[0].set_index("group")
    expected = rows.groupby("region")["prediction"].apply(lambda p: np.mean(p == 0))
    assert fairness["selection_rate"].to_dict() == pytest.approx(expected.to_dict())
    text = page_text(at)
    assert "Decisions of class 0 by region" in text and "needs a model that decides between two" not in text
    ratio = next(m for m in at.metric if m.label == "Demographic parity ratio")
    assert float(ratio.value) == pytest.approx(expected.min() / expected.max(), abs=1e-3)

    # a number: the fairness groups are the segments table's bins (the reference's quantiles), not others
    number = NUMBERS[0]
    at.multiselect(key=f"segments_features_{CLASSIFIER}").set_value([number]).run()
    at.selectbox(key=f"segments_sensitive_{CLASSIFIER}").set_value(number).run()
    assert not at.exception, at.exception
    segments = dataframe(at, "segment")[0]["segment"]
    groups = dataframe(at, "group")[0]["group"]
    assert len(groups) >= 2 and sorted(groups) == sorted(s.removeprefix(f"{number} ") for s in segments)


def test_whatif_compares_the_same_class_in_the_metrics_the_table_and_the_chart(pages, models):
    at = whatif_page(pages.run(), CLASSIFIER)
    assert not at.error, [e.value for e in at.error]
    edit = next(w for w in at.number_input if w.key and w.key.startswith("whatif_edit_") and w.key.endswith("x01"))
    edit.set_value(2.5).run()
    assert not at.exception, at.exception
    picker = at.selectbox(key=next(w.key for w in at.selectbox if w.key and w.key.startswith("whatif_class_")))
    for chosen in (0, 1, 2):
        picker.select(chosen).run()
        assert not at.exception, at.exception
        metrics = {m.label.split(":")[0]: m for m in at.metric}
        original, edited = float(metrics["Original"].value), float(metrics["Edited"].value)
        table = dataframe(at, "class")[0].set_index("class")
        # the metrics are the chosen class's probabilities, on both sides
        assert table.loc[f"class {chosen}", "original"] == pytest.approx(original, rel=1e-3)
        assert table.loc[f"class {chosen}", "edited"] == pytest.approx(edited, rel=1e-3)
        assert float(metrics["Edited"].delta) == pytest.approx(edited - original, abs=2e-4)
        assert f"Both numbers: the probability of class {chosen}." in page_text(at)
        # the chart draws the table's numbers
        figure = chart(at, "whatif_bars")
        bars = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure["data"]}
        for name in ("class 0", "class 1", "class 2"):
            assert bars["original"][name] == pytest.approx(table.loc[name, "original"])
            assert bars["edited"][name] == pytest.approx(table.loc[name, "edited"])
        assert f"probability of class {chosen}" in figure["layout"]["title"]["text"]
    # and they are the model's own probabilities for the edited row
    edited_row = {w.key.rsplit("_", 1)[-1]: w.value for w in at.number_input
                  if w.key and w.key.startswith("whatif_edit_")}
    edited_row["region"] = next(w.value for w in at.selectbox if w.key and w.key.startswith("whatif_edit_")
                                and w.key.endswith("_region"))
    assert edited_row["x01"] == 2.5
    expected = models["classifier"].predict_proba(pd.DataFrame([edited_row])[FEATURES])[0]
    assert table["edited"].tolist() == pytest.approx(expected.tolist())


def test_whatif_sensitivity_and_counterfactuals_keep_the_chosen_class(pages):
    at = whatif_page(pages.run(), CLASSIFIER)
    picker = at.selectbox(key=next(w.key for w in at.selectbox if w.key and w.key.startswith("whatif_class_")))
    picker.select(2).run()
    edited = float(next(m for m in at.metric if m.label.startswith("Edited")).value)
    at.query_params["whatif_tab"] = "Sensitivity"
    at.run()
    assert not at.exception, at.exception
    figure = chart(at, "whatif_sensitivity")
    assert figure["layout"]["title"]["text"].startswith("Sensitivity: probability of class 2 as each feature")
    marks = [t for t in figure["data"] if t.get("hovertemplate") == "current point<extra></extra>"]
    assert marks and all(t["y"][0] == pytest.approx(edited, rel=1e-3) for t in marks)  # the same point, same class
    at.query_params["whatif_tab"] = "Counterfactuals"
    at.run()
    assert not at.exception, at.exception
    at.button[[b.label for b in at.button].index("Find counterfactuals")].click().run()
    assert not at.exception, at.exception
    answers = [m.value for m in at.markdown if m.value.startswith("**Answer ")]
    assert answers
    for answer in answers:
        assert "probability of class 2" in answer and f"(was {edited:.4g};" in answer


def test_one_day_of_predictions_is_drawn_a_day_wide_with_the_day_as_its_tick():
    from monitoring.plots.overview import prediction_mix_figure

    frame = pd.DataFrame({"ts": [100.0, 200.0, 3000.0], "prediction": [0.0, 1.0, 2.0]})
    figure = prediction_mix_figure(prediction_mix(frame, task="classification", classes=(0.0, 1.0, 2.0),
                                                  now=4000.0))
    axis = figure.layout.xaxis
    start, end = (pd.Timestamp(x) for x in axis.range)
    assert (start, end) == (pd.Timestamp(0, unit="s"), pd.Timestamp(DAY, unit="s"))  # the day, not 3000 s of it
    assert axis.tickformat == "%b %-d" and axis.dtick == DAY * 1000.0  # "Jan 1", not "00:49:59.9995"
    bar = next(t for t in figure.data if t.type == "bar")
    assert bar.width == pytest.approx(0.9 * DAY * 1000.0)
    assert pd.Timestamp(bar.x[0]) == pd.Timestamp(DAY / 2, unit="s")  # at the middle of its day


def test_the_positive_rate_line_is_drawn_above_the_volume_bars():
    from monitoring.plots.overview import prediction_mix_figure

    frame = pd.DataFrame({"ts": [100.0, 200.0, DAY + 300.0], "prediction": [0.0, 1.0, 1.0]})
    figure = prediction_mix_figure(prediction_mix(frame, task="classification", classes=(0.0, 1.0), now=2 * DAY))
    bars, line = figure.data
    assert (bars.type, bars.yaxis, line.type, line.yaxis) == ("bar", "y", "scatter", "y2")
    assert figure.layout.yaxis2.overlaying == "y"  # an overlaying axis is drawn on top: the line stays visible
    assert figure.layout.yaxis2.tickformat == ".0%" and figure.layout.yaxis2.title.text == "positive rate"
