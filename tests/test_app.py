"""Every view through Streamlit's AppTest: the demo, a configured service, an invalid file."""


import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import APP, wait_for


def texts(at) -> str:
    parts = ([m.value for m in at.markdown] + [t.value for t in at.title] + [c.value for c in at.caption]
             + [t.value for t in at.text])
    parts += [str(e.value) for e in at.error] + [str(i.value) for i in at.info] + [str(w.value) for w in at.warning]
    return "\n".join(parts)


def write_config(path, demo_runtime, store_path):
    demo = demo_runtime.config.service("credit-risk")
    features = ", ".join(f'"{f}"' for f in demo.features)
    path.write_text(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "scoring"
url = "{demo.url}"
protocol = "v2"
model = "{demo.model}"
poll_interval = 1
reference = "{demo.reference}"
features = [{features}]
[services.metrics]
url = "{demo.url}/metrics"

[[services]]
name = "scoring-rest"
url = "{demo.url}"
protocol = "rest"
poll_interval = 1
""")


@pytest.mark.integration
def test_health_and_services_views_with_a_configured_fleet(demo_runtime, tmp_path, monkeypatch, fresh_runtime):
    config = tmp_path / "vantage.toml"
    write_config(config, demo_runtime, tmp_path / "app.db")
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    def polled() -> str | None:  # the landing page is the Overview; the collector polls every second
        at.switch_page("views/health.py").run()
        assert not at.exception, at.exception
        return texts(at) if "all checks passed" in texts(at) else None

    page = wait_for(polled, timeout=30, every=0.5, what="a poll of the fleet that passes every check")
    assert "Service health" in page
    assert at.selectbox(key="health_service").options == ["scoring", "scoring-rest"]
    assert any("Fleet" in s.value for s in at.subheader)
    uptime = {m.label: m.value for m in at.metric if m.label.startswith("Uptime ")}
    assert uptime and all(re.fullmatch(r"\d{1,3}\.\d{2} %", v) for v in uptime.values()), uptime
    at.selectbox(key="health_service").select("scoring-rest").run()
    assert not at.exception
    assert at.query_params["service"] == ["scoring-rest"] or at.query_params["service"] == "scoring-rest"

    at.switch_page("views/services.py").run()
    assert not at.exception, at.exception
    assert "scoring-rest" in "\n".join(s.value for s in at.subheader)


def test_invalid_configuration_is_explained_not_raised(tmp_path, monkeypatch, fresh_runtime):
    config = tmp_path / "bad.toml"
    config.write_text('[[services]]\nname = "a"\nurl = "http://127.0.0.1:1"\nprotocol = "grpc"\n')
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert "services[0].protocol" in message and "'v2', 'mlflow' or 'rest'" in message


@pytest.mark.integration
def test_embedded_demo_starts_and_shows_the_health_page(demo_var, monkeypatch, fresh_runtime):
    monkeypatch.delenv("VANTAGE_CONFIG", raising=False)
    monkeypatch.setenv("VANTAGE_VAR", str(demo_var))
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"  # the landing page
    at.switch_page("views/health.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="health_service").options == ["credit-risk", "credit-risk-rest"]
    at.switch_page("views/services.py").run()
    assert not at.exception, at.exception
    assert "embedded demo" in texts(at)
