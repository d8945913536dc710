"""Every page in headless Chromium for servers Vantage did not write, with shapes the demo does not have.

MLServer (scikit-learn runtime, a pipeline with a categorical column, labels only by default, so no
score column), watched with a config naming only what the README requires, its predictions read from a
prediction-log file (data from a file, not the store).
"""

import time

import numpy as np
import pandas as pd
import pytest

from tests.browser import running_dashboard, visit_every_page

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_mlserver_with_a_readme_config_and_a_log_file_opens_every_page(mlserver_server, open_page, tmp_path):
    rng = np.random.default_rng(0)
    X = pd.concat([mlserver_server.X] * 25, ignore_index=True)  # 500 rows like the server's known ones
    reference = X.assign(default=np.tile(mlserver_server.predictions, 25))
    reference.to_csv(tmp_path / "reference.csv", index=False)
    now = time.time()
    logged = X.sample(400, random_state=0).reset_index(drop=True)
    logged["income"] = logged["income"] * rng.uniform(1.0, 1.6, len(logged))  # drift for the Drift page to find
    logged = logged.assign(request_id=[f"r{i}" for i in range(len(logged))],
                           ts=np.linspace(now - 3 * 86400.0, now - 60.0, len(logged)),
                           predicted=rng.integers(0, 2, len(logged)))
    logged.to_csv(tmp_path / "predictions.csv", index=False)
    pd.DataFrame({"prediction_id": logged["request_id"][:300], "label": rng.integers(0, 2, 300)}).to_csv(
        tmp_path / "labels.csv", index=False)
    config = tmp_path / "vantage.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'vantage.db'}"

[[services]]
name = "credit"
url = "{mlserver_server.url}"
protocol = "v2"
model = "{mlserver_server.model}"
reference = "reference.csv"
target = "default"

[services.prediction_log]
path = "predictions.csv"
id = "request_id"
prediction = "predicted"

[services.labels]
path = "labels.csv"
""")
    with running_dashboard(tmp_path / "streamlit.log", config=config,
                           env={"VANTAGE_VAR": str(tmp_path / "var")}) as dashboard:
        texts = visit_every_page(open_page(), dashboard.url)
    assert "credit" in texts["Services"] and "4 features" in texts["Services"], texts["Services"]
    assert "1 of 4 features drifted" in texts["Drift"] and "income" in texts["Drift"], texts["Drift"]
    assert "prediction-log file" in texts["Drift"] and "predictions with a known outcome" in texts["Overview"].lower()
    for title, text in texts.items():
        assert "Traceback" not in text and "unseen at fit time" not in text, (title, text[:3000])
        assert "lacks feature column" not in text, (title, text[:3000])  # the target is never a feature


def test_mlserver_with_30_features_and_its_traffic_from_the_capture_proxy_opens_every_page(
        mlserver_wide_server, open_page, tmp_path):
    """A 30-feature model on MLServer, labels only (no score column), whose predictions Vantage knows only
    from the capture proxy in front of it; the config names only what the README requires."""
    import sys

    import requests

    from monitoring.config import load_config
    from monitoring.store import Store
    from tests.browser import ROOT
    from tests.helpers import wait_for
    from tests.servers import server_process

    reference = pd.read_csv(mlserver_wide_server.reference)
    features = [c for c in reference.columns if c != "target"]
    assert len(features) == 30
    config = tmp_path / "vantage.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'vantage.db'}"

[[services]]
name = "cancer"
url = "{mlserver_wide_server.url}"
protocol = "v2"
model = "{mlserver_wide_server.model}"
reference = "{mlserver_wide_server.reference}"
target = "target"
""")

    def proxy(port: int) -> list:
        return [sys.executable, "-m", "monitoring.capture", "--config", str(config), "--service", "cancer",
                "--listen", f"127.0.0.1:{port}"]

    rows = reference[features].sample(240, random_state=1).reset_index(drop=True)
    with server_process("capture proxy", proxy, health_path="/capture/stats", log_path=tmp_path / "proxy.log",
                        cwd=ROOT) as capture:
        for start in range(0, len(rows), 8):  # the service's own traffic, through the proxy
            batch = rows.iloc[start:start + 8]
            answer = requests.post(f"{capture.url}/v2/models/{mlserver_wide_server.model}/infer", timeout=30, json={
                "inputs": [{"name": "input-0", "shape": [len(batch), 30], "datatype": "FP64",  # as clients send it
                            "data": batch.to_numpy().ravel().tolist()}]})
            assert answer.status_code == 200, answer.text
            assert answer.headers.get("X-Vantage-Prediction-Id")
        store = Store.from_config(load_config(config))  # as the proxy opens it: the log where the config says
        wait_for(lambda: store.count_predictions("cancer") >= len(rows), timeout=30, what="the captured rows")
        store.dispose()
    with running_dashboard(tmp_path / "streamlit.log", config=config,
                           env={"VANTAGE_VAR": str(tmp_path / "var")}) as dashboard:
        texts = visit_every_page(open_page(), dashboard.url)
    assert "30 features" in texts["Services"], texts["Services"]
    assert "prediction log in Parquet (240 rows)" in texts["Drift"], texts["Drift"]  # the default engine
    assert "240" in texts["Overview"], texts["Overview"]
    for title, text in texts.items():
        assert "Traceback" not in text and "lacks feature column" not in text, (title, text[:3000])
