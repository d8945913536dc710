"""A baseline by default: the reference scored through the model, in batches, cached; failures as reasons."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from demo.data import FEATURES, TARGET
from demo.model import predict_frame
from monitoring.baseline import BASELINE_ROWS, baseline_for, reference_sample
from monitoring.clients import Predictions, ServiceError, make_client
from monitoring.config import PerformanceConfig, parse_config


def service_config(tmp_path, reference, *, extra=""):
    return parse_config(f'[[services]]\nname = "s"\nurl = "http://127.0.0.1:9"\nprotocol = "rest"\n'
                        f'max_batch_rows = 700\nreference = "{reference}"\ntarget = "{TARGET}"\n{extra}'
                        '[services.explain]\nmax_rows_per_request = 1000\n',  # batches of max_batch_rows
                        base_dir=tmp_path).service("s")


@pytest.fixture
def bare_reference(tmp_path, demo_model):
    """The demo's training data without the model's outputs on it."""
    frame = pd.read_parquet(demo_model.reference_path).drop(columns=["prediction", "score"])
    path = tmp_path / "bare.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


class ModelCalls:
    """``predict(X) -> Predictions`` of the demo model, counting the rows of every call."""

    def __init__(self, model, version=None):
        self.model, self.version, self.calls = model, version, []

    def __call__(self, X):
        self.calls.append(len(X))
        assert list(X.columns) == list(FEATURES)
        decided, proba = predict_frame(self.model, X)
        return Predictions(predictions=decided, probabilities=proba, latency_ms=1.0, requests=1,
                           model_version=self.version)


def test_the_reference_is_scored_through_the_model_in_batches_with_known_metrics(tmp_path, demo_model,
                                                                                  bare_reference):
    path, frame = bare_reference
    predict = ModelCalls(demo_model)
    baseline = baseline_for(service_config(tmp_path, path), task="classification", predict=predict,
                            model_version="3", cache_dir=tmp_path / "cache")
    assert predict.calls == [700, 700, 600] and sum(predict.calls) == BASELINE_ROWS
    sample = reference_sample(frame, target=TARGET, task="classification", max_rows=BASELINE_ROWS, random_state=0)
    decided, proba = predict_frame(demo_model, sample[list(FEATURES)])
    assert baseline.values["accuracy"] == pytest.approx(accuracy_score(sample[TARGET], decided))
    assert baseline.values["roc_auc"] == pytest.approx(roc_auc_score(sample[TARGET], proba[:, 1]))
    assert baseline.values["log_loss"] == pytest.approx(log_loss(sample[TARGET], proba[:, 1]))
    assert baseline.source == ("the service's predictions on 2,000 reference rows, model version 3 "
                               "(training data: may be optimistic)")
    assert baseline.n_rows == 2000 and baseline.model_version == "3" and not baseline.reason
    # close to what the model scores on the whole reference
    decided_all, _ = predict_frame(demo_model, frame[list(FEATURES)])
    assert abs(baseline.values["accuracy"] - accuracy_score(frame[TARGET], decided_all)) < 0.03


def test_the_sample_is_stratified_bounded_and_reproducible():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(10_000), TARGET: (rng.random(10_000) < 0.17).astype(int)})
    frame.loc[:9, TARGET] = np.nan  # rows without a target are never drawn
    sample = reference_sample(frame, target=TARGET, task="classification", max_rows=2000, random_state=1)
    assert len(sample) == 2000 and sample.index.is_monotonic_increasing and sample[TARGET].notna().all()
    assert abs(sample[TARGET].mean() - frame[TARGET].mean()) < 1 / 2000 + 1e-9
    again = reference_sample(frame, target=TARGET, task="classification", max_rows=2000, random_state=1)
    pd.testing.assert_frame_equal(sample, again)
    other = reference_sample(frame, target=TARGET, task="classification", max_rows=2000, random_state=2)
    assert not sample.index.equals(other.index)
    small = reference_sample(frame.head(500), target=TARGET, task="regression", max_rows=2000)
    assert len(small) == 490


def test_the_cache_spares_the_service_until_the_model_or_the_reference_changes(tmp_path, demo_model,
                                                                               bare_reference):
    path, frame = bare_reference
    service = service_config(tmp_path, path)
    cache = tmp_path / "cache"
    first = ModelCalls(demo_model)
    baseline = baseline_for(service, task="classification", predict=first, model_version="3", cache_dir=cache)
    files = list(cache.glob("baseline-*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["model_version"] == "3" and stored["features"] == list(FEATURES)
    assert len(stored["reference_sha256"]) == 64

    second = ModelCalls(demo_model)
    cached = baseline_for(service, task="classification", predict=second, model_version="3", cache_dir=cache)
    assert second.calls == [] and cached == baseline

    newer = ModelCalls(demo_model)
    rescored = baseline_for(service, task="classification", predict=newer, model_version="4", cache_dir=cache)
    assert sum(newer.calls) == 2000 and "model version 4" in rescored.source
    assert len(list(cache.glob("baseline-*.json"))) == 2

    frame.head(5000).to_parquet(path, index=False)  # a new reference file
    changed = ModelCalls(demo_model)
    baseline_for(service, task="classification", predict=changed, model_version="3", cache_dir=cache)
    assert sum(changed.calls) == 2000

    files[0].write_text("{not json")  # a damaged cache file is scored again, never an error
    damaged = ModelCalls(demo_model)
    assert baseline_for(service, task="classification", predict=damaged, model_version="3",
                        cache_dir=cache).values
    without_cache = ModelCalls(demo_model)
    baseline_for(service, task="classification", predict=without_cache, model_version="3")
    assert sum(without_cache.calls) == 2000


def test_scoring_failures_are_reasons_and_are_not_cached(tmp_path, demo_model, bare_reference):
    path, _ = bare_reference
    service = service_config(tmp_path, path)
    cache = tmp_path / "cache"

    def down(X):
        raise ServiceError("POST /predict", "connection",
                           "connection refused (is the service running on this host and port?)")

    baseline = baseline_for(service, task="classification", predict=down, model_version="3", cache_dir=cache)
    assert baseline.values == {} and not baseline.source
    assert baseline.reason.startswith("No baseline: scoring 2,000 reference rows through the service failed")
    assert "connection refused" in baseline.reason and not list(cache.glob("*.json"))

    class Answer:
        def __init__(self, predictions, probabilities=None):
            self.predictions, self.probabilities = predictions, probabilities

    garbled = {
        "sent 700 rows but got 3 predictions": lambda X: Answer(np.zeros(3)),
        "the predictions are not numbers, such as 'yes'": lambda X: Answer(np.array(["yes"] * len(X))),
        "the answer is a dict, not predictions": lambda X: {"predictions": [0] * len(X)},
        "ZeroDivisionError": lambda X: 1 / 0,
    }
    for expected, predict in garbled.items():
        reason = baseline_for(service, task="classification", predict=predict, cache_dir=cache).reason
        assert expected in reason, reason
    assert not list(cache.glob("*.json"))
    # after the failures, a working service is asked and its answer kept
    working = ModelCalls(demo_model)
    assert baseline_for(service, task="classification", predict=working, model_version="3", cache_dir=cache).values
    assert sum(working.calls) == 2000


def test_the_configuration_and_the_references_own_predictions_come_first(tmp_path, demo_model, bare_reference):
    path, _ = bare_reference
    predict = ModelCalls(demo_model)
    configured = baseline_for(service_config(tmp_path, path, extra="[services.performance]\nbaseline = "
                                                                   "{accuracy = 0.9}\n"),
                              task="classification", predict=predict)
    assert configured.values == {"accuracy": 0.9}
    own = baseline_for(service_config(tmp_path, demo_model.reference_path), task="classification", predict=predict)
    assert "reference data's own predictions (20,000 rows)" in own.source
    assert predict.calls == []
    unscored = baseline_for(service_config(tmp_path, path), task="classification")  # no predict: as before
    assert "has no 'prediction' column" in unscored.reason

    missing = baseline_for(service_config(tmp_path, path, extra='features = ["age", "height"]\n'),
                           task="classification", predict=predict)
    assert "lacks the feature columns ['height']" in missing.reason and predict.calls == []
    with pytest.raises(ValueError, match="max_rows must be an integer >= 2; got 1"):
        baseline_for(service_config(tmp_path, path), task="classification", predict=predict, max_rows=1)


def test_a_regression_reference_is_scored_too(tmp_path):
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"size": rng.uniform(10, 200, 3000)})
    frame["price"] = 3 * frame["size"] + rng.normal(0, 10, 3000)
    frame.to_csv(tmp_path / "houses.csv", index=False)
    service = parse_config('[[services]]\nname = "h"\nurl = "http://x"\nprotocol = "rest"\n'
                           'reference = "houses.csv"\ntarget = "price"\n', base_dir=tmp_path).service("h")

    def predict(X):
        return Predictions(predictions=3 * X["size"].to_numpy(), probabilities=None, latency_ms=0, requests=1,
                           model_version="7")

    baseline = baseline_for(service, task="regression", classes=(), predict=predict, max_rows=1000)
    assert set(baseline.values) == {"mae", "rmse", "r2"} and 6 < baseline.values["mae"] < 10
    assert baseline.n_rows == 1000 and "model version 7" in baseline.source  # the version the answers reported


@pytest.mark.integration
def test_the_demo_service_scores_its_reference_through_its_client(tmp_path, demo_runtime, bare_reference):
    path, _ = bare_reference
    service = demo_runtime.config.service("credit-risk")
    service = service.model_copy(update={"reference": str(path), "performance": PerformanceConfig(),
                                         "max_batch_rows": 500})
    client = make_client(service)
    client.session.headers["X-Vantage-Probe"] = "1"  # not production traffic
    try:
        baseline = baseline_for(service, task="classification", predict=client.predict,
                                model_version=demo_runtime.model.version, cache_dir=tmp_path / "cache")
    finally:
        client.close()
    assert {"accuracy", "roc_auc", "log_loss"} <= set(baseline.values), baseline.reason
    assert 0.7 < baseline.values["accuracy"] < 1 and "2,000 reference rows" in baseline.source
    stopped = service.model_copy(update={"url": "http://127.0.0.1:9"})
    down = make_client(stopped)
    try:
        failed = baseline_for(stopped, task="classification", predict=down.predict, model_version="x")
    finally:
        down.close()
    assert failed.values == {} and "failed" in failed.reason
