"""The three-class and the regression services the multiclass and regression page tests share.

A three-class random forest and a regression forest on a synthetic 13-feature set (twelve numbers
and a region), saved with skops and used as the services' local artifacts, with three weeks of
their decisions logged into a store as the template service logs them (``prediction`` is the class
or value, ``score`` is empty, no per-class probabilities) and labels a day later. Registered as a
pytest plugin in ``conftest.py``; the plain helpers are imported by the test modules.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tests.helpers import APP

DAY = 86400.0
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC).timestamp()
NUMBERS = [f"x{i:02d}" for i in range(1, 13)]
FEATURES = [*NUMBERS, "region"]
KINDS = {**dict.fromkeys(NUMBERS, "numeric"), "region": "categorical"}
CLASSIFIER = "flowers"
REGRESSOR = "prices"
HISTORY_DAYS = 21
ROWS_PER_DAY = 120


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

    state.stop_runtime()


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


def whatif_page(at, service: str):
    at.switch_page("views/whatif.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="whatif_service").select(service).run()
    assert not at.exception, at.exception
    return at
