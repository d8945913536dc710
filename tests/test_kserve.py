"""Vantage pointed at a real KServe ModelServer with the config the README's "Watching KServe" shows.

The server (``kserve_server`` in ``tests/servers.py``) is KServe's Python ``ModelServer`` running
KServe's sklearn runtime with ``predict_proba``: a RandomForest of the wine data (13 numeric
features, classes 0, 1 and 2) that names no inputs in its metadata and answers one 2-D output. The
config names only the URL, the protocol, the model, the reference, the target and the metrics URL.
The collector polls it; three weeks of traffic are sent through it and logged with its real answers
(as the capture proxy or KServe's payload logger would log them), with labels; then every page is
opened through AppTest and once in headless Chromium, with no exception and multiclass content:
class shares, never a mean class id.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import page_text

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DAY = 86400.0
SERVICE = "wine"
PAGES = ("views/overview.py", "views/health.py", "views/drift.py", "views/performance.py", "views/explain.py",
         "views/whatif.py", "views/segments.py", "views/services.py")


def readme_config(server, folder: Path) -> Path:
    """The README's "Watching KServe" config: URL, protocol, model, reference, target and metrics URL."""
    reference = folder / "wine.csv"
    reference.write_bytes(server.reference.read_bytes())
    path = folder / "vantage.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{folder / 'vantage.db'}"

[[services]]
name = "{SERVICE}"
url = "{server.url}"
protocol = "v2"
model = "{server.model}"
reference = "wine.csv"
target = "target"

[services.metrics]
url = "{server.metrics_url}"
""")
    return path


@pytest.fixture(scope="module")
def watched(kserve_server, tmp_path_factory):
    """The config, the moment the pages are frozen at, and the predictions logged from KServe's answers."""
    from monitoring.clients import make_client
    from monitoring.collector import ServicePoller
    from monitoring.config import load_config
    from monitoring.store import Store

    folder = tmp_path_factory.mktemp("kserve-vantage")
    path = readme_config(kserve_server, folder)
    config = load_config(path)
    service = config.services[0]
    store = Store(config.store.url)
    poller = ServicePoller(service, store)
    assert poller.schema.features == tuple(kserve_server.X.columns)  # the reference's columns but the target
    outcomes = [poller.poll() for _ in range(3)]
    for outcome in outcomes:
        assert outcome.state == "up", outcome.reason
        assert all(check.ok for check in outcome.checks), [(c.check, c.error) for c in outcome.checks]

    reference = pd.read_csv(kserve_server.reference)
    features = list(poller.schema.features)
    rng = np.random.default_rng(3)
    now = float(int(time.time()))
    n = 21 * 40
    picked = rng.integers(0, len(reference), n)
    rows = reference.iloc[picked].reset_index(drop=True)
    X = rows[features] * rng.normal(1.0, 0.02, size=(n, len(features)))  # traffic like the training data
    ts = np.sort(rng.uniform(now - 21 * DAY, now - 60, n))
    X.loc[ts > now - 7 * DAY, "alcohol"] += 1.0  # the last week drifts
    client = make_client(service)
    try:
        answer = client.predict(X)  # KServe's real answers, in batches of max_batch_rows
    finally:
        client.close()
    assert answer.probabilities.shape == (n, 3)
    np.testing.assert_array_equal(answer.predictions, answer.probabilities.argmax(axis=1))
    logged = X.assign(id=[f"w{i:05d}" for i in range(n)], ts=ts, prediction=answer.predictions.astype(float),
                      score=np.nan)
    store.prediction_table(SERVICE, dict(poller.schema.feature_kinds))
    store.log_predictions(SERVICE, logged)
    arrived = ts + DAY
    labels = pd.DataFrame({"prediction_id": logged["id"], "ts": arrived, "label": rows["target"].astype(float)})
    store.write_labels(SERVICE, labels[arrived < now])
    store.dispose()
    return {"config": path, "now": now, "logged": logged, "features": features}


@pytest.fixture
def app(watched, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VANTAGE_CONFIG", str(watched["config"]))
    monkeypatch.setenv("VANTAGE_NOW", str(watched["now"]))
    yield AppTest.from_file(APP, default_timeout=180)
    from dashboard import state

    state.stop_runtime()


def opened(at, page: str):
    at.switch_page(page).run()
    assert not at.exception, (page, at.exception)
    return at


def test_every_page_opens_for_kserve_with_multiclass_content(app, watched):
    at = app.run()
    assert not at.exception, at.exception
    for page in PAGES:
        opened(at, page)
        text = page_text(at)
        assert "Mean prediction" not in text and "mean prediction" not in text, page
        assert "target" not in {o for s in at.selectbox for o in (s.options or [])}, page  # never a feature
        if page.endswith("overview.py"):
            mix = [c for c in at.get("plotly_chart") if f"overview_mix_{SERVICE}" in c.proto.id]
            assert mix and all(f'"name":"class {k}"' in mix[0].proto.spec for k in range(3)), page
        elif page.endswith("health.py"):
            assert "Up" in text, text
        elif page.endswith("drift.py"):
            assert set(at.selectbox(key=f"drift_feature_{SERVICE}").options) == set(watched["features"])
        elif page.endswith("explain.py"):
            assert "black box" in text and "classification into 3 classes" in text, text
            assert at.selectbox(key="explain_output").options == ["class 0", "class 1", "class 2"]
            # as many rows as one explanation may send (at most 20): above confirm_rows_above, so the page shows
            # the estimate and waits for a go-ahead; nothing is refused or sent yet
            rows = at.number_input(key="explain_rows_permutation").value
            assert 1 <= rows < 20
            asked = [i.value for i in at.info if "through the service needs about" in i.value]
            assert asked and f"Explaining {rows:,} rows" in asked[0] and "at 2,000 rows/s" in asked[0], asked
            assert f"Go ahead: explaining {rows:,} rows" in [b.label for b in at.button]
            assert "more than the 200,000 one computation" not in text
        elif page.endswith("segments.py"):
            segments = [d.value for d in at.dataframe if "segment" in d.value.columns]
            assert segments and {"class 0", "class 1", "class 2"} <= set(segments[0].columns), page
            assert "mean_prediction" not in segments[0].columns
        elif page.endswith("services.py"):
            assert "13 features" in text and "3 classes" in text, text


def test_partial_dependence_and_what_if_through_kserve_keep_to_the_budget(app, watched):
    at = opened(app.run(), "views/explain.py")
    at.query_params["explain_tab"] = "Partial dependence"
    at.run()
    assert not at.exception, at.exception
    pd_charts = [c for c in at.get("plotly_chart") if "explain_pd" in c.proto.id]
    assert pd_charts, page_text(at)
    assert "class 0" in pd_charts[0].proto.spec
    assert any("batched grid request" in c.value and "request(s)" in c.value for c in at.caption)
    at.selectbox(key="explain_output").select("class 2").run()  # the same answers, another class
    assert not at.exception, at.exception
    assert "class 2" in next(c for c in at.get("plotly_chart") if "explain_pd" in c.proto.id).proto.spec
    # a heatmap of two features is 200 rows x 20 x 20 grid points: above confirm_rows_above, so it waits
    at.selectbox(key="explain_pd_second").select("proline").run()
    assert not at.exception, at.exception
    assert not [c for c in at.get("plotly_chart") if "explain_pd_heatmap" in c.proto.id]
    asked = [i.value for i in at.info if "Partial dependence through the service needs" in i.value]
    assert asked and "about 80,000 model rows, ~40 s at 2,000 rows/s" in asked[0], [i.value for i in at.info]
    assert "Go ahead: partial dependence" in [b.label for b in at.button]

    at = opened(at, "views/whatif.py")
    assert not at.exception, at.exception
    picker = [w for w in at.selectbox if w.key and w.key.startswith("whatif_class_")]
    assert picker and len(picker[0].options) == 3, [w.key for w in at.selectbox]
    at.query_params["whatif_tab"] = "Sensitivity"
    at.run()
    assert not at.exception, at.exception
    assert [c for c in at.get("plotly_chart") if "whatif_sensitivity" in c.proto.id], page_text(at)


@pytest.mark.browser
def test_every_page_opens_for_kserve_in_chromium(watched, open_page, tmp_path):
    from tests.browser import running_dashboard, visit_every_page

    with running_dashboard(tmp_path / "streamlit.log", config=watched["config"],
                           env={"VANTAGE_NOW": str(watched["now"]), "VANTAGE_VAR": str(tmp_path / "var")}) as dashboard:
        texts = visit_every_page(open_page(), dashboard.url)
    assert {"Overview", "Service health", "Drift", "Performance", "Explain", "What-if", "Segments",
            "Services"} <= set(texts), sorted(texts)
    for title, text in texts.items():
        assert "Mean prediction" not in text, title
