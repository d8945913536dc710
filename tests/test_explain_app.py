"""The Explain page through Streamlit's AppTest, on the embedded demo."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import APP

PAGE = "views/explain.py"


def charts(at) -> list:
    return at.get("plotly_chart")


def open_tab(at, label: str):
    at.query_params["explain_tab"] = label
    return at.run()


@pytest.mark.integration
def test_explain_page_on_the_demo_shows_every_tab(demo_var, monkeypatch, fresh_runtime):
    monkeypatch.delenv("VANTAGE_CONFIG", raising=False)
    monkeypatch.setenv("VANTAGE_VAR", str(demo_var))
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explain_service").options == ["credit-risk", "credit-risk-rest"]
    page = "\n".join(m.value for m in at.markdown)
    assert "black box" in page
    assert len(charts(at)) >= 1  # the first tab: feature importance

    at.selectbox(key="explain_service").select("credit-risk-rest").run()
    assert not at.exception, at.exception
    assert "Local artifact" in "\n".join(m.value for m in at.markdown)
    assert any("predicts what the service predicts" in s.value for s in at.success)
    assert len(charts(at)) >= 1

    for label in ("Beeswarm", "Dependence", "One prediction", "Partial dependence"):
        open_tab(at, label)
        assert not at.exception, (label, at.exception)
        assert not at.error, (label, [e.value for e in at.error])
        assert len(charts(at)) >= 1, label


def write_unreachable_config(tmp_path, *, explain: str) -> str:
    """A service nobody answers for, with reference data and a small skops model."""
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X["a"] + rng.normal(0, 0.5, 300) > 0).astype(int)
    X.assign(label=y).to_csv(tmp_path / "reference.csv", index=False)
    skops.io.dump(GradientBoostingClassifier(n_estimators=20).fit(X, y), tmp_path / "model.skops")
    config = tmp_path / "vantage.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"

[[services]]
name = "offline"
url = "http://127.0.0.1:9"
protocol = "rest"
timeout = 1
poll_interval = 60
reference = "reference.csv"
target = "label"

[services.explain]
{explain}
""")
    return str(config)


def test_local_artifact_of_an_unreachable_service_is_explained_and_the_check_says_why_not(
        tmp_path, monkeypatch, fresh_runtime):
    monkeypatch.setenv("VANTAGE_CONFIG", write_unreachable_config(tmp_path, explain='artifact = "model.skops"'))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert any("could not check the artifact against the service" in i.value for i in at.info)
    assert len(charts(at)) == 1
    for label in ("One prediction", "Partial dependence"):
        open_tab(at, label)
        assert not at.exception, (label, at.exception)
        assert len(charts(at)) >= 1, label


def test_an_unreachable_black_box_and_a_missing_artifact_are_messages(tmp_path, monkeypatch, fresh_runtime):
    monkeypatch.setenv("VANTAGE_CONFIG", write_unreachable_config(tmp_path, explain='source = "remote"'))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    message = "\n".join(e.value for e in at.error)
    assert "cannot be used as a black box" in message and "refused" in message
    from dashboard import state

    state.stop_runtime()
    monkeypatch.setenv("VANTAGE_CONFIG", write_unreachable_config(tmp_path, explain='artifact = "gone.skops"'))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert "gone.skops: does not exist" in "\n".join(e.value for e in at.error)


@pytest.mark.parametrize("logged_in", ["store", "file", "file beside the store's tables"])
def test_logged_predictions_window_and_picker_by_id_and_by_feature(logged_in, tmp_path, monkeypatch, fresh_runtime):
    """Logged predictions, in the store or in a prediction-log file (staged beside the Parquet log, or in the
    dashboard's folder when the store keeps its log in its tables): production windows and the prediction picker."""
    import time

    import numpy as np
    import pandas as pd

    from monitoring.store import Store

    config = write_unreachable_config(tmp_path, explain='source = "local"\nartifact = "model.skops"')
    reference = pd.read_csv(tmp_path / "reference.csv")
    now = time.time()
    logged = reference[["a", "b"]].iloc[:200].assign(
        id=[f"p{i}" for i in range(200)], ts=np.linspace(now - 3600, now - 60, 200), prediction=0.0)
    if logged_in == "store":
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        store.prediction_table("offline", {"a": "numeric", "b": "numeric"})
        store.log_predictions("offline", logged)
        store.dispose()
    else:  # a service that does not log through Vantage: its own log file, no score column
        logged.to_parquet(tmp_path / "predictions.parquet")
        with open(config, "a", encoding="utf-8") as file:
            file.write('\n[services.prediction_log]\npath = "predictions.parquet"\n')
        if logged_in != "file":
            path = Path(config)
            path.write_text(path.read_text().replace("[store]\n", '[store]\nlog = "store"\n', 1))
    monkeypatch.setenv("VANTAGE_CONFIG", config)
    monkeypatch.setenv("VANTAGE_VAR", str(tmp_path / "var"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    at.selectbox(key="explain_window").select("24h").run()
    assert not at.exception, at.exception
    assert any("rows of the last 24 hours of predictions" in c.value for c in at.caption), [c.value for c in at.caption]
    assert len(charts(at)) == 1
    open_tab(at, "One prediction")
    assert any("`p199`" in c.value for c in at.caption)  # the newest is picked first
    at.segmented_control(key="explain_pick_mode").set_value("By id").run()
    at.text_input(key="explain_pick_id").input("p7").run()
    assert not at.exception, at.exception
    assert any("`p7`" in c.value for c in at.caption)
    assert any("Why prediction p7" in str(c.proto.spec) for c in charts(at))
    at.segmented_control(key="explain_pick_mode").set_value("By feature").run()
    at.selectbox(key="explain_pick_feature").select("a").run()
    at.selectbox(key="explain_pick_op").select(">").run()
    at.text_input(key="explain_pick_value").input("100").run()
    assert not at.exception, at.exception
    assert any("No logged prediction matches" in i.value for i in at.info)
    open_tab(at, "Partial dependence")
    assert not at.exception, at.exception
    picked = at.query_params["prediction"]
    picked = picked[0] if isinstance(picked, list) else picked
    assert any(f"`{picked}` picked under One prediction" in c.value for c in at.caption)  # highlighted
    at.switch_page("views/whatif.py").run()  # What-if finds the same logged predictions
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    listed = [d.value for d in at.dataframe if "prediction" in d.value.columns]
    assert listed and listed[0]["id"].iloc[0] == "p199", listed  # "Most recent" first
    staged = tmp_path / "var" / "staged-files" / "offline" / "log-file"
    assert staged.is_dir() == (logged_in == "file beside the store's tables")  # never read into memory whole
