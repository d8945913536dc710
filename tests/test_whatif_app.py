"""The What-if page through Streamlit's AppTest, on the embedded demo."""


import json

import pytest
from streamlit.testing.v1 import AppTest

from explain.scenarios import Scenario, decode_scenario, encode_scenario
from tests.helpers import APP

PAGE = "views/whatif.py"


@pytest.fixture
def demo_app(demo_var, monkeypatch, fresh_runtime):
    monkeypatch.delenv("VANTAGE_CONFIG", raising=False)
    monkeypatch.setenv("VANTAGE_VAR", str(demo_var))
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    return at


def editor(at, feature: str):
    return next(w for w in at.number_input if w.key and w.key.startswith("whatif_edit_") and w.key.endswith(feature))


def from_reference(at):
    """Start from a reference row (a fresh demo may not have logged a prediction yet)."""
    at.segmented_control(key="whatif_source").set_value("Reference row").run()
    assert not at.exception, at.exception
    return at


def metrics(at) -> dict:
    return {m.label.split(":")[0]: m for m in at.metric}


@pytest.mark.integration
def test_whatif_page_edits_a_value_and_shows_every_tab(demo_app):
    at = demo_app
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    from_reference(at)
    before = metrics(at)
    assert before["Original"].value == before["Edited"].value

    editor(at, "credit_utilization").set_value(0.99).run()
    assert not at.exception, at.exception
    after = metrics(at)
    assert float(after["Edited"].value) > float(after["Original"].value)
    assert "credit_utilization" in at.query_params["scenario"]
    bars = [c for c in at.get("plotly_chart") if "whatif_bars" in c.proto.id]  # the two predictions side by side
    assert len(bars) == 1
    bar = json.loads(bars[0].proto.spec)["data"][0]  # the chart shows the edit raising the score, as the metrics do
    assert [x.split()[0] for x in bar["x"]] == ["original", "edited"] and float(bar["text"][1]) > float(bar["text"][0])
    waterfalls = [c for c in at.get("plotly_chart") if "whatif_waterfall" in c.proto.id]
    assert not waterfalls and at.toggle(key="whatif_shap").value is False  # a black box: only when asked
    at.toggle(key="whatif_shap").set_value(True).run()
    assert not at.exception, at.exception
    assert len([c for c in at.get("plotly_chart") if "whatif_waterfall" in c.proto.id]) == 2

    for label in ("Sensitivity", "Counterfactuals", "Scenarios"):
        at.query_params["whatif_tab"] = label
        at.run()
        assert not at.exception, (label, at.exception)
        assert not at.error, (label, [e.value for e in at.error])
    at.query_params["whatif_tab"] = "Counterfactuals"
    at.run()
    at.button[[b.label for b in at.button].index("Find counterfactuals")].click().run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**Answer 1**") for m in at.markdown)

    at.query_params["whatif_tab"] = "Scenarios"
    at.run()
    at.text_input(key="whatif_scenario_name").set_value("maxed out").run()
    at.button(key="whatif_keep").click().run()
    assert not at.exception, at.exception
    tables = [d.value for d in at.dataframe]
    assert any("scenario" in t.columns and "maxed out" in set(t["scenario"]) for t in tables)


@pytest.mark.integration
def test_a_link_with_values_outside_the_reference_names_them_and_ignores_them(demo_app):
    at = demo_app
    at.query_params["scenario"] = encode_scenario(Scenario("bad", "reference", "3", {"age": 500, "debt_ratio": 0.5}))
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert any("age must be a number between 19 and 85" in w.value and "got 500" in w.value for w in at.warning)
    assert editor(at, "debt_ratio").value == pytest.approx(0.5)
    assert "Edited" in metrics(at)


@pytest.mark.integration
def test_a_shared_link_reproduces_the_scenario(demo_app):
    at = demo_app
    link = encode_scenario(Scenario("shared", "reference", "7", {"credit_utilization": 0.9, "channel": "partner"}))
    at.query_params["scenario"] = link
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert editor(at, "credit_utilization").value == pytest.approx(0.9)
    assert at.number_input(key="whatif_ref_row").value == 7
    assert decode_scenario(at.query_params["scenario"]).changes == {"credit_utilization": 0.9, "channel": "partner"}
    assert at.session_state["whatif_scenario_name"] == "shared"


@pytest.mark.integration
def test_a_rejecting_service_shows_its_message_and_keeps_the_last_good_result_marked_stale(demo_app, monkeypatch):
    from explain import RemoteExplainError, RemoteModel

    at = demo_app
    at.switch_page(PAGE).run()
    from_reference(at)
    assert "Edited" in metrics(at)

    def reject(self, X):
        raise RemoteExplainError("POST /v2/models/credit-risk/infer", "HTTP 400: feature 'age' must be numeric",
                                 request=1, n_requests=1, rows=len(X))

    monkeypatch.setattr(RemoteModel, "predict", reject)
    editor(at, "debt_ratio").set_value(0.5).run()
    assert not at.exception, at.exception
    assert any("rejected the edited row" in e.value and "must be numeric" in e.value for e in at.error)
    assert any("Stale" in w.value for w in at.warning)
    assert "Edited" in metrics(at)


@pytest.mark.integration
def test_a_prediction_can_be_found_by_a_feature_condition(demo_app):
    import time

    at = demo_app
    at.switch_page(PAGE).run()
    deadline = time.monotonic() + 60  # the demo back-fills its history in the background
    while "whatif_find" not in [w.key for w in at.segmented_control] and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    at.segmented_control(key="whatif_find").set_value("By feature").run()
    at.selectbox(key="whatif_filter_feature").set_value("credit_utilization").run()
    at.selectbox(key="whatif_filter_op").set_value(">").run()
    at.text_input(key="whatif_filter_value").input("0.5").run()
    deadline = time.monotonic() + 60  # matching rows arrive as the back-fill proceeds
    while not at.dataframe and time.monotonic() < deadline:
        assert not at.exception, at.exception
        time.sleep(1)
        at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) and (table["credit_utilization"] > 0.5).all()
    at.text_input(key="whatif_filter_value").input("high").run()
    assert any("is numeric" in w.value for w in at.warning)
