"""Model artifacts: skops, joblib and MLflow model directories, and the messages for bad ones."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from explain import ArtifactError, LocalModel, ShapExplainer, load_artifact

FEATURES = ["region", "age", "income", "tenure"]


def halve(values):
    """A function of this module: a type skops cannot know to be safe."""
    return values / 2


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"region": rng.choice(["north", "south", "east"], 300), "age": rng.uniform(18, 80, 300),
                      "income": rng.lognormal(10, 0.5, 300), "tenure": rng.integers(0, 30, 300).astype(float)})
    y = (X["age"] / 60 + (X["region"] == "south") + rng.normal(0, 0.5, 300) > 1.2).astype(int)
    model = Pipeline([("prep", ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["region"])],
                                                 remainder="passthrough")),
                      ("clf", LogisticRegression(max_iter=2000))]).fit(X, y)
    return model, X


def write_mlflow_dir(directory, estimator, *, serialization="cloudpickle", features=FEATURES):
    """The layout ``mlflow.sklearn.save_model`` writes (MLmodel + model.pkl), written by hand."""
    directory.mkdir()
    signature = json.dumps([{"type": "double", "name": f, "required": True} for f in features])
    meta = {"flavors": {"python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
                        "sklearn": {"pickled_model": "model.pkl", "serialization_format": serialization,
                                    "sklearn_version": "1.9.1"}},
            "model_uuid": "0123456789abcdef", "signature": {"inputs": signature}}
    (directory / "MLmodel").write_text(yaml.safe_dump(meta))
    if serialization == "skops":
        skops.io.dump(estimator, directory / "model.pkl")
    else:
        joblib.dump(estimator, directory / "model.pkl")
    return directory


def test_skops_file_loads_without_trusting_pickles(fitted, tmp_path):
    model, X = fitted
    skops.io.dump(model, tmp_path / "model.skops")
    loaded = load_artifact(tmp_path / "model.skops", features=FEATURES)
    assert isinstance(loaded, LocalModel) and loaded.binary and loaded.classes == (0, 1)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.feature_kinds["region"] == "categorical" and loaded.version


def test_skops_file_with_untrusted_types_names_them(fitted, tmp_path):
    _, X = fitted
    risky = Pipeline([("halve", FunctionTransformer(halve)), ("clf", LogisticRegression())])
    risky.fit(X[["age", "income"]], (X["age"] > 50).astype(int))
    skops.io.dump(risky, tmp_path / "risky.skops")
    halve_type = "tests.test_explain_artifacts.halve"
    with pytest.raises(ArtifactError, match=r"not trusted: \['tests\.test_explain_artifacts\.halve'\].*trust_pickle"):
        load_artifact(tmp_path / "risky.skops", features=["age", "income"])
    assert load_artifact(tmp_path / "risky.skops", features=["age", "income"], trusted_types=[halve_type])
    assert load_artifact(tmp_path / "risky.skops", features=["age", "income"], trust_pickle=True)


def test_joblib_file_needs_trust_pickle(fitted, tmp_path):
    model, X = fitted
    joblib.dump(model, tmp_path / "model.joblib")
    with pytest.raises(ArtifactError, match=r"loading a pickle runs code.*trust_pickle = true"):
        load_artifact(tmp_path / "model.joblib", features=FEATURES)
    loaded = load_artifact(tmp_path / "model.joblib", features=FEATURES, trust_pickle=True)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_missing_file_and_unknown_kinds_are_explained(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope.skops")
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ArtifactError, match=r"unknown type '\.txt'; accepted: \.skops, \.joblib"):
        load_artifact(tmp_path / "model.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ArtifactError, match="directory without an MLmodel file"):
        load_artifact(tmp_path / "folder")
    (tmp_path / "garbage.skops").write_bytes(b"not a zip file")
    with pytest.raises(ArtifactError, match="not a readable skops file"):
        load_artifact(tmp_path / "garbage.skops")


def test_a_file_that_is_not_a_model_says_so(tmp_path):
    joblib.dump({"weights": [1, 2, 3]}, tmp_path / "weights.joblib")
    with pytest.raises(ArtifactError, match=r"holds a builtins\.dict, which has no predict method: it is not a model"):
        load_artifact(tmp_path / "weights.joblib", trust_pickle=True)
    skops.io.dump(np.arange(3), tmp_path / "array.skops")
    with pytest.raises(ArtifactError, match=r"numpy\.ndarray, which has no predict method"):
        load_artifact(tmp_path / "array.skops")


def test_other_features_than_the_service_are_named(fitted, tmp_path):
    model, _ = fitted
    skops.io.dump(model, tmp_path / "model.skops")
    service = ["region", "age", "income", "balance"]
    with pytest.raises(ArtifactError) as caught:
        load_artifact(tmp_path / "model.skops", features=service)
    message = str(caught.value)
    assert "expects columns the service does not have: ['tenure']" in message
    assert "lacks the service's features ['balance']" in message


def test_hand_written_mlflow_model_directory_loads_with_trust_pickle(fitted, tmp_path):
    model, X = fitted
    directory = write_mlflow_dir(tmp_path / "mlflow-model", model)
    with pytest.raises(ArtifactError, match=r"MLflow model saved as a cloudpickle pickle.*trust_pickle = true"):
        load_artifact(directory, features=FEATURES)
    loaded = load_artifact(directory, features=FEATURES, trust_pickle=True)
    assert loaded.version == "0123456789ab" and "MLflow" in loaded.description
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    values = ShapExplainer(loaded, X).explain(X.iloc[:5])
    np.testing.assert_allclose(values.outputs(), model.decision_function(X.iloc[:5]), atol=1e-9)


def test_mlflow_directory_saved_with_skops_needs_no_pickle_trust(fitted, tmp_path):
    model, X = fitted
    directory = write_mlflow_dir(tmp_path / "skops-model", model, serialization="skops")
    loaded = load_artifact(directory, features=FEATURES)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_mlflow_directory_without_sklearn_flavor_or_with_other_features(fitted, tmp_path):
    model, _ = fitted
    directory = write_mlflow_dir(tmp_path / "m1", model)
    meta = yaml.safe_load((directory / "MLmodel").read_text())
    del meta["flavors"]["sklearn"]
    (directory / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(ArtifactError, match=r"without the sklearn flavor \(flavors: \['python_function'\]\)"):
        load_artifact(directory, trust_pickle=True)


@pytest.mark.integration
def test_real_mlflow_model_directory_built_by_mlflow_loads():
    from tests.servers import _known_answers, ensure_model

    model_dir = ensure_model("mlflow")
    answers = _known_answers(model_dir)
    loaded = load_artifact(model_dir / "model", features=list(answers["X"].columns), trust_pickle=True)
    assert "MLflow model directory" in loaded.description
    np.testing.assert_allclose(loaded.predict_proba(answers["X"]), answers["probabilities"], atol=1e-12)
    values = ShapExplainer(loaded, answers["X"]).explain(answers["X"])
    assert values.method == "linear"
    np.testing.assert_allclose(values.outputs(), loaded.estimator.decision_function(answers["X"]), atol=1e-9)
