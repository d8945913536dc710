"""The Explain page through Streamlit's AppTest, on the embedded demo."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "views/explain.py"


@pytest.fixture
def fresh_runtime():
    """Stop the collector (and demo) the app started, after the test."""
    yield
    from dashboard import state

    state._start_runtime.clear()


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
