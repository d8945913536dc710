"""One service schema: which columns are features, decided once, with messages for disagreeing sources."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.config import ServiceConfig
from monitoring.schema import load_schema, resolve_schema


def service(**extra) -> ServiceConfig:
    return ServiceConfig(name="svc", url="http://127.0.0.1:9", protocol="v2", model="m", **extra)


@pytest.fixture
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "income": rng.normal(50, 10, 200), "region": rng.choice(["north", "south"], 200),
        "age": rng.integers(18, 90, 200), "target": rng.integers(0, 3, 200),
        "prediction": rng.integers(0, 3, 200), "score": rng.random(200)})


def test_without_configured_features_the_reference_minus_target_and_outputs_are_the_features(reference):
    schema = resolve_schema(service(target="target"), reference=reference)
    assert schema.features == ("income", "region", "age")
    assert schema.features_from == "reference"
    assert schema.feature_kinds == {"income": "numeric", "region": "categorical", "age": "numeric"}
    assert schema.outputs == ("prediction", "score")
    assert schema.task == "classification" and schema.classes == (0.0, 1.0, 2.0)
    assert schema.problems == ()
    assert {"target", "prediction", "score", "id", "ts", "label"} <= schema.not_features
    assert "3 features" in schema.describe() and "3 classes" in schema.describe()


def test_configured_features_win_and_keep_their_order(reference):
    schema = resolve_schema(service(target="target", features=("age", "income")), reference=reference)
    assert schema.features == ("age", "income") and schema.features_from == "config"
    assert schema.present_in(["income", "id", "age", "ts"]) == ("age", "income")


def test_server_metadata_names_the_features_in_model_order(reference):
    inputs = [{"name": n, "datatype": "FP64", "shape": [-1]} for n in ("age", "region", "income")]
    schema = resolve_schema(service(target="target"), reference=reference, metadata_inputs=inputs)
    assert schema.features == ("age", "region", "income") and schema.features_from == "server metadata"
    assert schema.problems == ()


def test_a_configured_feature_the_reference_lacks_is_named(reference):
    schema = resolve_schema(service(target="target", features=("income", "tenure")), reference=reference)
    assert any("lacks the feature column(s) tenure" in p for p in schema.problems)


def test_metadata_that_disagrees_with_the_configuration_is_named(reference):
    inputs = [{"name": n, "datatype": "FP64", "shape": [-1]} for n in ("income", "region", "tenure")]
    schema = resolve_schema(service(target="target", features=("income", "region", "age")), reference=reference,
                            metadata_inputs=inputs)
    assert schema.features == ("income", "region", "age")
    (problem,) = schema.problems
    assert "age only in the configured features" in problem and "tenure only in the server's inputs" in problem


def test_a_tensor_input_narrower_than_the_reference_says_how_many_columns_each_side_has(reference):
    # the README's case: a reference with an id-like extra column the model never saw
    extra = reference.assign(customer="c")
    inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}]
    schema = resolve_schema(service(target="target"), reference=extra, metadata_inputs=inputs)
    (problem,) = schema.problems
    assert "takes 3 columns" in problem and "offers 4 feature columns" in problem and "customer" in problem


def test_a_target_missing_from_the_reference_is_named_and_never_a_feature(reference, tmp_path):
    path = tmp_path / "reference.csv"
    reference.drop(columns=["target"]).to_csv(path, index=False)
    schema = load_schema(service(reference=str(path), target="label_col"))
    assert schema.features == ("income", "region", "age")
    assert any("target `label_col` is not a column" in p for p in schema.problems)
    assert schema.task is None


def test_regression_targets_and_the_configured_task(reference):
    values = reference.assign(target=np.linspace(0.5, 99.5, len(reference)))
    assert resolve_schema(service(target="target"), reference=values).task == "regression"
    forced = resolve_schema(service(target="target", performance={"task": "regression"}), reference=reference)
    assert forced.task == "regression" and forced.classes == ()


def test_the_digest_changes_with_the_features(reference):
    a = resolve_schema(service(target="target"), reference=reference)
    b = resolve_schema(service(target="target", features=("age", "income", "region")), reference=reference)
    assert a.digest != b.digest
    assert a.digest == resolve_schema(service(target="target"), reference=reference).digest


def test_no_reference_and_no_features_takes_the_log_columns_that_are_not_outputs():
    schema = resolve_schema(service())
    assert schema.features == () and schema.features_from == "none"
    assert schema.present_in(["id", "ts", "x1", "prediction", "score", "x2"]) == ("x1", "x2")


# -- against a real server, with a config naming only what the README requires ------------------


def test_a_readme_config_against_mlserver_never_sends_the_target(mlserver_server, tmp_path):
    """URL, protocol, model, reference and target only: the canary and the Drift page use the model's inputs."""
    import time

    from streamlit.testing.v1 import AppTest

    from monitoring.collector import ServicePoller
    from monitoring.config import load_config
    from monitoring.store import Store
    from tests.helpers import page_text

    reference = mlserver_server.X.assign(default=mlserver_server.predictions)
    reference = pd.concat([reference] * 10, ignore_index=True)  # 200 rows: enough to judge drift
    reference.to_csv(tmp_path / "reference.csv", index=False)
    store_path = tmp_path / "vantage.db"
    config_path = tmp_path / "vantage.toml"
    config_path.write_text(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "credit"
url = "{mlserver_server.url}"
protocol = "v2"
model = "{mlserver_server.model}"
reference = "reference.csv"
target = "default"
poll_interval = 3600
""")
    config = load_config(config_path)
    store = Store(config.store.url)
    poller = ServicePoller(config.services[0], store)
    assert poller.schema.features == tuple(mlserver_server.X.columns)
    outcome = poller.poll()
    canary = next(c for c in outcome.checks if c.check == "predict")
    assert canary.ok, canary.error  # the target is not sent: MLServer's pipeline would refuse "default"
    assert outcome.state == "up", outcome.reason

    logged = pd.concat([mlserver_server.X] * 10, ignore_index=True)
    logged = logged.assign(id=[f"p{i}" for i in range(len(logged))], ts=time.time() - 3600.0,
                           prediction=np.tile(mlserver_server.predictions, 10))
    store.prediction_table("credit", poller.schema.feature_kinds)
    store.log_predictions("credit", logged)
    store.dispose()

    import os
    os.environ["VANTAGE_CONFIG"] = str(config_path)
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"),
                               default_timeout=120).run()
        for page in ("views/drift.py", "views/services.py"):
            at.switch_page(page).run()
            assert not at.exception, at.exception
            text = page_text(at)
            if page.endswith("drift.py"):
                assert "default" not in text, text  # the target is never taken for a feature
                assert set(at.selectbox(key="drift_feature_credit").options) == set(mlserver_server.X.columns)
            else:
                assert "4 features: the reference's columns but the target and the model's outputs; target default; "\
                       "classification into 2 classes." in text, text
    finally:
        os.environ.pop("VANTAGE_CONFIG", None)
        from dashboard import state

        state.stop_runtime()
