"""More than two classes on every page: class shares, one-vs-rest fairness, What-if on one class.

A three-class random forest on a synthetic 13-feature set (twelve numbers and a region), saved
with skops and used as the services' local artifact, has its decisions logged into a store as
the template service logs them: ``prediction`` is the class, ``score`` is empty (the template
logs a score for two classes only) and no per-class probabilities are kept. Class shares are
therefore derived from the decisions. The same fixture holds a regression service, whose page
tests are in ``tests/test_regression_pages.py``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explain.segments import fairness_metrics, segment_metrics
from monitoring.overview import prediction_mix
from tests.helpers import page_text

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DAY = 86400.0
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC).timestamp()
NUMBERS = [f"x{i:02d}" for i in range(1, 13)]
FEATURES = [*NUMBERS, "region"]
KINDS = {**dict.fromkeys(NUMBERS, "numeric"), "region": "categorical"}
CLASSIFIER = "flowers"
REGRESSOR = "prices"
HISTORY_DAYS = 21
ROWS_PER_DAY = 120


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


# -- the three-class model and its logged traffic ---------------------------------------------


def synthetic(n: int, rng: np.random.Generator, *, shift: float = 0.0) -> pd.DataFrame:
    X = pd.DataFrame({name: rng.normal(0.0, 1.0, n) for name in NUMBERS})
    X["x01"] += shift
    X["region"] = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    return X


def flower_class(X: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    south = (X["region"] == "south").to_numpy(dtype=float)
    scores = np.stack([X["x01"] - X["x02"], X["x02"] + 0.8 * south, X["x03"] - 0.5 * X["x01"]], axis=1)
    return (scores + rng.normal(0.0, 0.3, scores.shape)).argmax(axis=1)


def price(X: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    south = (X["region"] == "south").to_numpy(dtype=float)
    return 200.0 + 40.0 * X["x01"] - 25.0 * X["x02"] + 30.0 * south + rng.normal(0.0, 5.0, len(X))


def pipeline(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore"), ["region"])],
                               remainder="passthrough")
    return Pipeline([("encode", encode), ("model", estimator)])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A three-class forest and a regression forest, trained once and saved with skops, with their references."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    X = synthetic(3000, rng)
    classifier = pipeline(RandomForestClassifier(n_estimators=40, max_depth=7, random_state=0))
    classifier.fit(X, flower_class(X, rng))
    regressor = pipeline(RandomForestRegressor(n_estimators=40, max_depth=8, random_state=0))
    regressor.fit(X, price(X, rng))
    skops.io.dump(classifier, folder / "flowers.skops")
    skops.io.dump(regressor, folder / "prices.skops")
    X.assign(species=flower_class(X, rng)).to_parquet(folder / "flowers.parquet")
    X.assign(price=price(X, rng)).to_parquet(folder / "prices.parquet")
    return {"folder": folder, "classifier": classifier, "regressor": regressor}


def logged_history(model, kind: str, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three weeks of traffic as the template service logs it (the last week with x01 shifted up), and labels."""
    rng = np.random.default_rng(seed)
    n = HISTORY_DAYS * ROWS_PER_DAY
    ts = np.sort(rng.uniform(NOW - HISTORY_DAYS * DAY, NOW, n))
    X = synthetic(n, rng, shift=0.0)
    X.loc[ts > NOW - 7 * DAY, "x01"] += 1.0
    rows = X.assign(id=[f"{kind[0]}{i:05d}" for i in range(n)], ts=ts, model_version="3")
    if kind == "classifier":
        rows["prediction"] = model.predict(X[FEATURES]).astype(float)
        rows["score"] = np.nan  # the template service logs a score only for two classes
        truth = flower_class(X, rng).astype(float)
    else:
        rows["prediction"] = model.predict(X[FEATURES]).astype(float)
        rows["score"] = np.nan
        truth = price(X, rng)
    arrived = ts + DAY
    labels = pd.DataFrame({"prediction_id": rows["id"], "ts": arrived, "label": truth})[arrived < NOW]
    return rows, labels


@pytest.fixture(scope="module")
def logged(models, tmp_path_factory):
    """A store with both services' logs and labels; returns its path and the logged rows."""
    from monitoring.store import Store

    folder = tmp_path_factory.mktemp("store")
    store_path = folder / "vantage.db"
    store = Store(f"sqlite:///{store_path}")
    history = {}
    for service, kind in ((CLASSIFIER, "classifier"), (REGRESSOR, "regressor")):
        rows, labels = logged_history(models[kind], kind, seed=11 if kind == "classifier" else 12)
        store.prediction_table(service, KINDS)
        store.log_predictions(service, rows)
        store.write_labels(service, labels)
        history[service] = rows
    store.dispose()
    return store_path, history


@pytest.fixture(scope="module")
def pages_config(models, logged, tmp_path_factory):
    """An offline config of the two services (their polls fail: nothing listens on port 9)."""
    store_path, _ = logged
    folder = models["folder"]
    features = ", ".join(f'"{f}"' for f in FEATURES)
    path = tmp_path_factory.mktemp("config") / "vantage.toml"
    services = []
    for name, target, performance in ((CLASSIFIER, "species", "baseline = {accuracy = 0.9}"),
                                      (REGRESSOR, "price", 'task = "regression"\nbaseline = {mae = 6.0}')):
        services.append(f"""
[[services]]
name = "{name}"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 3600
reference = "{folder / f'{name}.parquet'}"
target = "{target}"
features = [{features}]

[services.performance]
{performance}

[services.explain]
source = "local"
artifact = "{folder / f'{name}.skops'}"
""")
    path.write_text(f'[store]\nurl = "sqlite:///{store_path}"\n' + "".join(services))
    return path


@pytest.fixture
def pages(pages_config, monkeypatch):
    """The dashboard on the offline config, its clock frozen at ``NOW``."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VANTAGE_CONFIG", str(pages_config))
    monkeypatch.setenv("VANTAGE_NOW", str(NOW))
    yield AppTest.from_file(APP, default_timeout=120)
    from dashboard import state

    state._start_runtime.clear()


def decoded(value):
    """A figure's JSON with plotly's typed arrays (``{"dtype", "bdata"}``) turned into lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
        return {k: decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


def chart(at, key: str) -> dict:
    """The figure (data and layout) of the plotly chart whose widget key is ``key``."""
    found = [c for c in at.get("plotly_chart") if key in c.proto.id]
    assert found, [c.proto.id for c in at.get("plotly_chart")]
    return decoded(json.loads(found[0].proto.spec))


def frame_of(element) -> pd.DataFrame:
    value = element.value
    return value.data if hasattr(value, "data") else value


def dataframe(at, column: str):
    """The first data frame on the page with ``column``, and its element."""
    found = [d for d in at.dataframe if column in frame_of(d).columns]
    assert found, [list(frame_of(d).columns) for d in at.dataframe]
    return frame_of(found[0]), found[0]


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


def whatif_page(at, service: str):
    at.switch_page("views/whatif.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="whatif_service").select(service).run()
    assert not at.exception, at.exception
    return at


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
