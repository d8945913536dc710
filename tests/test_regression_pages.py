"""A regression service on Overview, Segments and What-if: the pages speak of values, never of classes.

The service is the regression forest of ``tests/fixtures_multiclass.py`` (13 synthetic features, saved
with skops and used as a local artifact), with three weeks of predictions and labels in a store.
"""

from __future__ import annotations

import pytest

from tests.fixtures_multiclass import DAY, FEATURES, NOW, REGRESSOR, chart, dataframe, whatif_page
from tests.helpers import page_text


def test_overview_gives_the_mean_predicted_value_per_day(pages, logged):
    _, history = logged
    at = pages.run()
    assert not at.exception, at.exception
    figure = chart(at, f"overview_mix_{REGRESSOR}")
    assert figure["layout"]["title"]["text"] == "Predictions and mean predicted value per day, last 30 days"
    line = next(t for t in figure["data"] if t["type"] == "scatter")
    assert line["name"] == "mean predicted value"
    rows = history[REGRESSOR]
    yesterday = rows[(rows["ts"] >= (NOW // DAY - 1) * DAY) & (rows["ts"] < (NOW // DAY) * DAY)]
    assert line["y"][-2] == pytest.approx(yesterday["prediction"].mean())
    assert not [t for t in figure["data"] if str(t.get("name", "")).startswith("class ")]


def test_segments_give_the_mean_predicted_value_and_no_fairness_of_classes(pages, logged):
    _, history = logged
    at = pages.run()
    at.switch_page("views/segments.py").run()
    at.selectbox(key="segments_service").select(REGRESSOR).run()
    assert not at.exception, at.exception
    table, element = dataframe(at, "segment")
    assert "mean_prediction" in table.columns and not [c for c in table.columns if str(c).startswith("class ")]
    assert "Mean predicted value" in str(element.proto)
    assert {"mae", "rmse"} <= set(table.columns)
    rows = history[REGRESSOR]
    rows = rows[rows["ts"] >= NOW - 30 * DAY]
    south = table.set_index("segment").loc["region = south"]
    assert south["mean_prediction"] == pytest.approx(rows.loc[rows["region"] == "south", "prediction"].mean())
    text = page_text(at)
    assert "predicts values, not classes" in text
    assert "two classes" not in text and "Demographic parity ratio" not in [m.label for m in at.metric]
    assert not [w for w in at.selectbox if w.key and w.key.startswith("segments_positive_")]


def test_whatif_compares_predicted_values_in_the_metrics_and_the_chart(pages, models):
    at = whatif_page(pages.run(), REGRESSOR)
    assert not at.error, [e.value for e in at.error]
    edit = next(w for w in at.number_input if w.key and w.key.startswith("whatif_edit_") and w.key.endswith("x01"))
    edit.set_value(2.0).run()
    assert not at.exception, at.exception
    metrics = {m.label.split(":")[0]: m for m in at.metric}
    assert metrics["Original"].label == "Original: predicted value"
    assert metrics["Edited"].label == "Edited: predicted value"
    original, edited = float(metrics["Original"].value), float(metrics["Edited"].value)
    figure = chart(at, "whatif_bars")
    assert figure["layout"]["title"]["text"] == "predicted value"
    assert figure["data"][0]["y"] == pytest.approx([original, edited], rel=1e-3)
    row = {w.key.rsplit("_", 1)[-1]: w.value for w in at.number_input if w.key and w.key.startswith("whatif_edit_")}
    row["region"] = next(w.value for w in at.selectbox if w.key and w.key.endswith("_region"))
    import pandas as pd

    expected = models["regressor"].predict(pd.DataFrame([row])[FEATURES])[0]
    assert edited == pytest.approx(expected, rel=1e-3)
    text = page_text(at)
    assert "Both numbers: the predicted value." in text
    assert "class" not in " ".join(m.label for m in at.metric)
    assert not [w for w in at.selectbox if w.key and w.key.startswith("whatif_class_")]
    assert not [d for d in at.dataframe if "class" in dataframe_columns(d)]


def dataframe_columns(element) -> list:
    value = element.value
    return list((value.data if hasattr(value, "data") else value).columns)


def test_regression_sensitivity_and_counterfactuals_speak_of_values(pages):
    at = whatif_page(pages.run(), REGRESSOR)
    value = float(next(m for m in at.metric if m.label.startswith("Original")).value)
    at.query_params["whatif_tab"] = "Sensitivity"
    at.run()
    assert not at.exception, at.exception
    figure = chart(at, "whatif_sensitivity")
    assert figure["layout"]["title"]["text"].startswith("Sensitivity: predicted value as each feature")
    at.query_params["whatif_tab"] = "Counterfactuals"
    at.run()
    assert not at.exception, at.exception
    assert "Wanted class" not in [w.label for w in at.selectbox]
    at.number_input(key="whatif_cf_low").set_value(value + 40.0)
    at.number_input(key="whatif_cf_high").set_value(value + 80.0)
    at.button[[b.label for b in at.button].index("Find counterfactuals")].click().run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "Goal: **bring the predicted value into" in text
    answers = [m.value for m in at.markdown if m.value.startswith("**Answer ")]
    assert answers and not any("class" in a for a in answers)
    for answer in answers:
        reached = float(answer.split("predicted value ", 1)[1].split(" ", 1)[0])
        assert value + 40.0 <= reached <= value + 80.0
