"""Property tests: whatever comes in at a boundary gives a result or the module's documented error.

Hypothesis feeds generated input to the configuration loader, every protocol answer parser, the
Prometheus text reader, the reference, prediction-log and label loaders, the What-if scenario
decoder and the template service's request models (and the service itself, in process). Each
test runs a modest number of examples (60, no deadline), so the whole file takes seconds; a
failure prints the smallest input that breaks the promise. ``VANTAGE_PROPERTY_EXAMPLES=2000``
searches harder; under CI (``CI`` set) the examples are the same on every run, so a submission
is never failed by a draw that another one did not get. No example database is written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.clients import (
    ModelMetadata,
    ServiceError,
    parse_mlflow_answer,
    parse_mlflow_version,
    parse_rest_answer,
    parse_rest_metadata,
    parse_v2_answer,
    parse_v2_metadata,
)
from monitoring.config import (
    ConfigError,
    LabelsConfig,
    MetricsConfig,
    PredictionLogConfig,
    ServiceConfig,
    VantageConfig,
    documented_keys,
    parse_config,
)

EXAMPLES = int(os.environ.get("VANTAGE_PROPERTY_EXAMPLES", "60"))
SETTINGS = {"max_examples": EXAMPLES, "deadline": None, "database": None, "derandomize": bool(os.environ.get("CI"))}
PROPERTY = settings(**SETTINGS, suppress_health_check=[HealthCheck.too_slow])

# -- what can arrive: JSON-like values, text with the characters that break things ---------------

AWKWARD_TEXT = st.lists(st.sampled_from(
    [*"ab_-./: 0129{}[]\"'\\,=#", "\x00", "\n", "\x7f", "é", "\u2028", "∞", "NaN", "inf", "http://", "/x"]),
    max_size=12).map("".join)
TEXT = st.one_of(st.text(max_size=20), AWKWARD_TEXT)
NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_LIKE = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(TEXT, inner, max_size=5)), max_leaves=25)


def _deep(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


# -- the configuration loader ------------------------------------------------------------------

KEYS = documented_keys()
PLAUSIBLE = {
    "name": st.sampled_from(["a", "credit-risk", "x y", ""]),
    "url": st.sampled_from(["http://127.0.0.1:8080", "https://h/prefix/", "http://u:p@h", "http://h:0",
                            "ftp://h", "http://h\x00", "http://[::1]:99999", "127.0.0.1:80", "http://h?q=1"]),
    "protocol": st.sampled_from(["v2", "mlflow", "rest", "grpc"]),
    "model": st.sampled_from(["m", "credit-risk"]),
    "reference": st.sampled_from(["ref.csv", "", "a\x00b", "/abs/ref.parquet", "x" * 5000]),
    "path": st.sampled_from(["labels.csv", "", "a\x00b.csv", "../up/log.jsonl"]),
    "artifact": st.sampled_from(["model.joblib", "m\x00.skops", ""]),
    "timeout": st.sampled_from([0, 0.5, 2, -1, 1e9]),
    "max_response_mb": st.sampled_from([0, 0.001, 16, 2000, float("nan")]),
    "health": st.sampled_from(["/health", "health", "/a b", "/\x00"]),
}
STORE_URLS = st.sampled_from(["", "bogus://x", "sqlite:///v.db", "sqlite://", "sqlite:///a\x00b",
                              "postgresql+psycopg://u@h/v", "postgresql+nosuch://h/d", "mysql://h/d", "://",
                              "postgresql://h:abc/d", "sqlite+pysqlite:///rel/v.db"])


def _toml_key(key: str) -> str:
    return json.dumps(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    return '""'


def _toml(document: dict) -> str:
    lines = []
    for table, content in document.items():
        if table == "services":
            for service in content:
                lines.append("[[services]]")
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in service.items() if v is not None]
        else:
            lines.append(f"[{_toml_key(table)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in content.items() if v is not None]
    return "\n".join(lines) + "\n"


def _entry(key: str) -> st.SearchStrategy:
    plausible = PLAUSIBLE.get(key)
    return st.tuples(st.just(key), st.one_of(plausible, JSON_LIKE) if plausible is not None else JSON_LIKE)


SERVICE_ENTRIES = st.lists(st.one_of(st.sampled_from(KEYS["services"]).flatmap(_entry),
                                     st.sampled_from(["rest", "metrics", "slo", "drift", "labels"]).flatmap(
                                         lambda k: st.tuples(st.just(k), st.dictionaries(
                                             st.sampled_from(KEYS[f"services.{k}"] + ["bogus"]), JSON_LIKE,
                                             max_size=4))),
                                     st.tuples(TEXT, JSON_LIKE)), max_size=8)
BASE_SERVICE = {"name": "s", "url": "http://127.0.0.1:9", "protocol": "rest"}
DOCUMENTS = st.fixed_dictionaries({
    "services": st.lists(SERVICE_ENTRIES.map(lambda entries: {**BASE_SERVICE, **dict(entries)}), max_size=3),
}, optional={"store": st.fixed_dictionaries({}, optional={"url": STORE_URLS, "retention_days": JSON_LIKE,
                                                         "rollup_minutes": JSON_LIKE})})


@PROPERTY
@given(document=DOCUMENTS)
def test_any_configuration_loads_or_names_its_problems(document):
    try:
        config = parse_config(_toml(document), source="prop.toml", base_dir=Path("/tmp/vantage-prop"))
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    assert isinstance(config, VantageConfig) and config.services


@PROPERTY
@given(text=st.one_of(st.text(max_size=200), AWKWARD_TEXT.map(lambda t: f"[[services]]\nname = {t}\n")))
def test_any_text_is_a_configuration_or_a_config_error(text):
    with pytest.raises(ConfigError):
        parse_config(text, source="prop.toml")


# -- protocol answers --------------------------------------------------------------------------

SERVICE = ServiceConfig(name="s", url="http://127.0.0.1:9", protocol="v2", model="m", model_version="7")
SHAPES = st.one_of(st.lists(st.integers(min_value=-2, max_value=6), max_size=3), JSON_LIKE)
OUTPUT = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["predict", "predict_proba", "proba", "label"]), JSON_LIKE),
    "shape": SHAPES,
    "data": st.one_of(st.lists(SCALARS, max_size=8), st.lists(st.lists(SCALARS, max_size=3), max_size=4), JSON_LIKE),
    "datatype": st.sampled_from(["FP64", "INT64", "BYTES"]),
})
V2_ANSWERS = st.one_of(JSON_LIKE, st.fixed_dictionaries({"outputs": st.one_of(st.lists(OUTPUT, max_size=3), JSON_LIKE)},
                                                        optional={"model_version": JSON_LIKE}))
PREDICTIONS = st.one_of(st.lists(SCALARS, max_size=6), st.lists(st.lists(NUMBERS, max_size=3), max_size=4),
                        st.lists(st.dictionaries(TEXT, SCALARS, max_size=3), max_size=3), JSON_LIKE)
REST_ANSWERS = st.one_of(JSON_LIKE, st.fixed_dictionaries({"predictions": PREDICTIONS}, optional={
    "probabilities": st.one_of(st.lists(st.lists(NUMBERS, max_size=3), max_size=4), JSON_LIKE),
    "model_version": JSON_LIKE}))


def _check_predictions(result) -> None:
    labels, proba, version = result
    assert isinstance(labels, np.ndarray) and labels.ndim == 1
    assert proba is None or (isinstance(proba, np.ndarray) and proba.ndim == 2 and len(proba) == len(labels))
    assert version is None or isinstance(version, str)


@PROPERTY
@given(body=V2_ANSWERS)
def test_any_v2_answer_gives_predictions_or_a_garbled_error(body):
    try:
        result = parse_v2_answer(body, call="POST /v2/models/m/infer")
    except ServiceError as exc:
        assert exc.kind == "garbled" and exc.message
        return
    _check_predictions(result)


@PROPERTY
@given(body=REST_ANSWERS)
def test_any_mlflow_or_rest_answer_gives_predictions_or_a_garbled_error(body):
    for parse in (lambda b: parse_mlflow_answer(b, call="POST /invocations"),
                  lambda b: parse_rest_answer(b, call="POST /predict")):
        try:
            result = parse(body)
        except ServiceError as exc:
            assert exc.kind == "garbled" and exc.message
            continue
        _check_predictions(result)


@PROPERTY
@given(model=st.one_of(JSON_LIKE, st.dictionaries(st.sampled_from(["name", "versions", "platform", "inputs",
                                                                  "outputs", "version"]), JSON_LIKE)),
       server=JSON_LIKE)
def test_any_metadata_is_read_or_garbled(model, server):
    for parse in (lambda: parse_v2_metadata(model, server, call="GET /v2/models/m", config=SERVICE),
                  lambda: parse_rest_metadata(model, call="GET /model", config=SERVICE)):
        try:
            meta = parse()
        except ServiceError as exc:
            assert exc.kind == "garbled"
            continue
        assert isinstance(meta, ModelMetadata)
        assert all(isinstance(v, str | None) for v in (meta.name, meta.version, meta.platform))
        assert all(isinstance(i, dict) for i in (*meta.inputs, *meta.outputs)) and isinstance(meta.server, dict)


@PROPERTY
@given(text=st.one_of(st.text(max_size=80), st.sampled_from(['"3.17.2"', "3.17.2\n", "<html>", ""])))
def test_any_mlflow_version_text_is_a_version_or_garbled(text):
    try:
        version = parse_mlflow_version(text)
    except ServiceError as exc:
        assert exc.kind == "garbled"
    else:
        assert version and version[0].isdigit()


# -- Prometheus text ---------------------------------------------------------------------------

PROMETHEUS_PIECES = st.sampled_from([
    "# TYPE http_requests_total counter\n", "# TYPE http_request_duration_seconds histogram\n", "# HELP x y\n",
    'http_requests_total{path="/predict",status="500"} 2\n', "http_requests_total 1e999\n",
    'http_request_duration_seconds_bucket{le="0.1"} 3\n', 'http_request_duration_seconds_bucket{le="+Inf"} 4\n',
    'http_request_duration_seconds_bucket{le="abc"} 4\n', "http_request_duration_seconds_count NaN\n",
    "# EOF\n", '{"json": 1}', "<html>", "\x00", "\n", "{", '"', "\\", "=", " ", "le", "_total", "x"])
REGEXES = st.sampled_from([".*", ".*infer|.*predict", "(", "[", "/predict", ""])


@PROPERTY
@given(text=st.one_of(st.lists(PROMETHEUS_PIECES, max_size=12).map("".join), st.text(max_size=100)),
       path_regex=REGEXES)
def test_any_scrape_gives_samples_or_a_value_error(text, path_regex):
    from monitoring.metrics import SERIES, parse_scrape

    try:
        samples = parse_scrape(text, MetricsConfig(url="http://h/metrics", path_regex=path_regex))
    except ValueError as exc:
        assert str(exc)
        return
    assert all(series in SERIES and isinstance(le, float) and isinstance(value, float)
               for series, le, value in samples)


# -- files: reference data, prediction logs, labels --------------------------------------------


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vantage-prop-") as directory:
        yield Path(directory)


CELLS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from(["a", "b", "", "1.5", "2026-01-01T00:00:00Z", "x,y", '"'] ))
COLUMNS = st.sampled_from(["a", "b", "ts", "id", "prediction", "score", "label", "prediction_id", "target"])
FRAMES = st.lists(st.tuples(COLUMNS, st.lists(CELLS, min_size=0, max_size=6)), max_size=4)
SUFFIXES = st.sampled_from([".csv", ".parquet", ".pq", ".jsonl", ".txt", ".CSV", ""])
CONTENTS = st.one_of(FRAMES.map(lambda cols: ("frame", cols)), st.binary(max_size=200).map(lambda b: ("bytes", b)),
                     st.text(alphabet=st.sampled_from(list("ab,;\n\"1.5 ts{}:")), max_size=80).map(
                         lambda t: ("bytes", t.encode())))
ODD_PATHS = st.sampled_from(["", "a\x00b.csv", "x" * 5000 + ".csv", "/nonexistent/ref.csv", "."])


_FILES = iter(range(10**9))


def _write(workdir: Path, suffix: str, content: tuple) -> Path:
    file = workdir / f"f{next(_FILES)}{suffix}"
    kind, data = content
    if kind == "bytes":
        file.write_bytes(data)
        return file
    n = min((len(values) for _, values in data), default=0)
    frame = pd.DataFrame({name: pd.Series(values[:n], dtype=object) for name, values in data})
    try:
        if suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(file)
        elif suffix == ".jsonl":
            frame.to_json(file, orient="records", lines=True)
        else:
            frame.to_csv(file, index=False)
    except Exception:  # a frame pandas cannot write that way: write its text instead
        file.write_text(frame.to_string())
    return file


@PROPERTY
@given(suffix=SUFFIXES, content=CONTENTS, features=st.lists(COLUMNS, max_size=3), target=st.none() | COLUMNS,
       odd=st.none() | ODD_PATHS)
def test_any_reference_file_is_read_or_a_reference_error(workdir, suffix, content, features, target, odd):
    from monitoring.reference import ReferenceDataError, read_reference

    path = odd if odd is not None else _write(workdir, suffix, content)
    try:
        frame = read_reference(path, features=tuple(features), target=target)
    except ReferenceDataError as exc:
        assert str(exc)
        return
    assert isinstance(frame, pd.DataFrame) and len(frame) > 0


@PROPERTY
@given(suffix=SUFFIXES, content=CONTENTS, features=st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True),
       timestamp=COLUMNS, id_column=st.none() | COLUMNS, odd=st.none() | ODD_PATHS)
def test_any_prediction_log_file_is_read_or_a_production_error(workdir, suffix, content, features, timestamp,
                                                               id_column, odd):
    from monitoring.production import ProductionDataError, read_prediction_log_file

    path = odd if odd is not None else str(_write(workdir, suffix, content))
    config = PredictionLogConfig.model_construct(path=path, timestamp=timestamp, id=id_column,
                                                 prediction="prediction", score=None)
    try:
        frame = read_prediction_log_file(config, features=tuple(features))
    except ProductionDataError as exc:
        assert str(exc)
        return
    assert isinstance(frame, pd.DataFrame) and "ts" in frame and frame["ts"].dtype == float


@PROPERTY
@given(suffix=SUFFIXES, content=CONTENTS, id_column=COLUMNS, label=COLUMNS, ts=st.none() | COLUMNS,
       odd=st.none() | ODD_PATHS)
def test_any_label_file_is_read_or_a_label_error(workdir, suffix, content, id_column, label, ts, odd):
    from monitoring.labels import LABEL_COLUMNS, LabelDataError, read_label_file

    path = odd if odd is not None else str(_write(workdir, suffix, content))
    config = LabelsConfig.model_construct(path=path, id=id_column, label=label, ts=ts)
    try:
        frame = read_label_file(config)
    except LabelDataError as exc:
        assert str(exc)
        return
    assert list(frame.columns) == list(LABEL_COLUMNS)


LABEL_RECORDS = st.one_of(JSON_LIKE, st.lists(st.one_of(JSON_LIKE, st.fixed_dictionaries(
    {}, optional={"prediction_id": st.one_of(JSON_LIKE, st.just("x" * 70), st.just(10**5000)),
                  "label": st.one_of(JSON_LIKE, st.just(10**400)), "ts": JSON_LIKE})), max_size=6))


@PROPERTY
@given(records=LABEL_RECORDS)
def test_any_label_records_are_checked_one_by_one_or_refused(records):
    from monitoring.labels import label_records

    try:
        checked = label_records(records, now=1.8e9)
    except ValueError:
        assert not isinstance(records, list)
        return
    assert len(checked.frame) + len(checked.rejected) == len(records)
    assert all(np.isfinite(checked.frame[c]).all() for c in ("ts", "label"))
    assert all(len(r["reason"]) < 300 for r in checked.rejected)


# -- What-if scenario links --------------------------------------------------------------------

SCENARIOS = st.one_of(
    st.text(max_size=120),
    JSON_LIKE.map(json.dumps),
    st.fixed_dictionaries({}, optional={"n": JSON_LIKE, "s": st.sampled_from(["prediction", "reference", "x"]),
                                        "i": st.one_of(JSON_LIKE, st.sampled_from(["abc", "7", "-1", "p-1", "a b"])),
                                        "c": st.one_of(JSON_LIKE, st.dictionaries(TEXT, JSON_LIKE, max_size=3)),
                                        "extra": JSON_LIKE}).map(lambda d: json.dumps(d, allow_nan=True)),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 3000).map(lambda depth: '{"c":' * depth + "1" + "}" * depth),
)


@PROPERTY
@given(text=SCENARIOS, features=st.none() | st.lists(TEXT, max_size=3))
def test_any_scenario_text_is_a_scenario_or_a_value_error(text, features):
    from explain.scenarios import Scenario, decode_scenario, encode_scenario

    try:
        scenario = decode_scenario(text, features=features)
    except ValueError as exc:
        assert str(exc) and not isinstance(exc, RecursionError)
        return
    assert isinstance(scenario, Scenario) and scenario.source in ("prediction", "reference")
    assert decode_scenario(encode_scenario(scenario)) == scenario


def test_a_scenario_that_is_not_text_is_a_value_error():
    from explain.scenarios import decode_scenario

    for value in (None, 5, b"{}", ["s"], _deep(5)):
        with pytest.raises(ValueError, match="scenario must be JSON text"):
            decode_scenario(value)


# -- the template service's request models, and the service itself -----------------------------

FEATURES = {"x": "numeric", "y": "numeric", "colour": "categorical"}
ROW = st.dictionaries(st.one_of(st.sampled_from(list(FEATURES)), TEXT), st.one_of(SCALARS, JSON_LIKE), max_size=4)
TENSOR = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(list(FEATURES)), JSON_LIKE), "shape": SHAPES,
    "datatype": st.sampled_from(["FP64", "BYTES"]), "data": st.one_of(st.lists(SCALARS, max_size=4), JSON_LIKE)})
PREDICT_BODIES = st.one_of(JSON_LIKE, st.fixed_dictionaries({"instances": st.one_of(st.lists(ROW, max_size=3),
                                                                                    JSON_LIKE)},
                                                            optional={"ids": JSON_LIKE, "timestamps": JSON_LIKE}))
INFER_BODIES = st.one_of(JSON_LIKE, st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(TENSOR, max_size=3), JSON_LIKE)},
    optional={"outputs": JSON_LIKE, "parameters": st.one_of(JSON_LIKE, st.fixed_dictionaries(
        {}, optional={"vantage_ids": JSON_LIKE, "vantage_timestamps": JSON_LIKE})), "id": JSON_LIKE}))


def _status_of(call) -> int:
    from fastapi import HTTPException

    try:
        call()
    except HTTPException as exc:
        assert isinstance(exc.detail, str) and exc.detail
        return exc.status_code
    return 200


@PROPERTY
@given(body=st.one_of(PREDICT_BODIES, INFER_BODIES))
def test_any_request_body_fits_the_models_or_is_a_400(body):
    from demo.service import InferRequest, PredictRequest, RequestLimits, _frame_from_records, _frame_from_v2, _validate

    def predict():
        checked = _validate(PredictRequest, body)
        _frame_from_records(checked.instances, FEATURES)

    def infer():
        checked = _validate(InferRequest, body)
        _frame_from_v2(checked.inputs, FEATURES, RequestLimits(max_rows=3))

    assert _status_of(predict) in (200, 400)
    assert _status_of(infer) in (200, 400, 413)


@PROPERTY
@given(body=st.one_of(st.binary(max_size=100), st.text(max_size=100).map(str.encode),
                      JSON_LIKE.map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth)),
       depth=st.integers(0, 3))
def test_any_body_decodes_or_is_a_400_or_413(body, depth):
    from demo.service import loads_request

    assert _status_of(lambda: loads_request([body], depth=depth, max_items=20)) in (200, 400, 413)


def _dumps(value: object) -> bytes:
    """JSON of ``value``; an integer too long for text (10**5000) is written digit by digit."""
    try:
        return json.dumps(value, allow_nan=True).encode()
    except ValueError:
        return b'{"labels": [{"prediction_id": ' + b"1" * 5000 + b', "label": 1}]}'


@pytest.fixture(scope="module")
def service(workdir):
    """The template service on a small model, in process (no server: it is the handlers that are tested)."""
    from fastapi.testclient import TestClient
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from demo.service import RequestLimits, ServedModel, create_app
    from monitoring.store import Store

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60), "colour": rng.choice(["red", "blue"], 60)})
    pipeline = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["colour"]),
                                                     remainder="passthrough"),
                             LogisticRegression()).fit(X, (X["x"] > 0).astype(int))
    store = Store(f"sqlite:///{workdir / 'service.db'}")
    app = create_app(ServedModel(pipeline, "1", FEATURES, name="m"), store=store, service_name="prop",
                     limits=RequestLimits(max_rows=20, max_labels=20))
    with TestClient(app) as client:
        yield client
    store.dispose()


@settings(**SETTINGS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["/predict", "/v2/models/m/infer", "/labels"]),
       body=st.one_of(PREDICT_BODIES, INFER_BODIES, st.builds(lambda r: {"labels": r}, LABEL_RECORDS)).map(_dumps))
def test_the_service_never_answers_500(service, route, body):
    response = service.post(route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400, 413, 422), (response.status_code, response.text[:300])
    if response.status_code != 200:
        assert response.json()["detail"]
