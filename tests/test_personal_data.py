"""Personal data never leaves in clear: a planted e-mail and a planted number, marked ``personal``, are in no
page, table, chart, download, report or log line, and their pseudonyms are (so nothing passes by showing nothing)."""

from __future__ import annotations

import base64
import json
import logging
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.privacy import (
    MASKED,
    PERSONAL_KEY_ENV,
    PersonalData,
    install_log_masking,
    personal_key,
    unknown_columns,
)
from tests.helpers import wait_for

PLANTED_EMAIL = "zorblax.quimby@example.org"
PLANTED_NUMBER = 9876.54321
PLANTED_TEXTS = (PLANTED_EMAIL, "9876.54321", "9,876.54321", "9876.54")
KEY = "test-pseudonym-key-3d9f1c77a0b24e6b"
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
FEATURES = {"email": "categorical", "channel": "categorical", "balance": "numeric", "age": "numeric"}


def policy(key: bytes = KEY.encode()) -> PersonalData:
    return PersonalData({"private": ["email", "balance"], "plain": []}, key)


# -- the policy


def test_text_becomes_a_stable_keyed_pseudonym_and_numbers_are_masked():
    mask = policy().for_service("private")
    frame = pd.DataFrame({"email": [PLANTED_EMAIL, "other@example.org", None, PLANTED_EMAIL],
                          "balance": [PLANTED_NUMBER, 12.5, np.nan, 3.0], "age": [30, 40, 50, 60]})
    shown = mask.frame(frame)
    assert shown["email"][0] == shown["email"][3] != shown["email"][1]  # one value, one pseudonym
    assert shown["email"][0].startswith("email#") and len(shown["email"][0]) == len("email#") + 8
    assert shown["email"][2] is None  # missing stays missing
    assert list(shown["balance"][[0, 1, 3]]) == [MASKED] * 3 and shown["balance"][2] is None
    assert list(shown["age"]) == [30, 40, 50, 60]  # other columns as they were
    assert frame["email"].iloc[0] == PLANTED_EMAIL  # the model's data is not changed
    again = policy().for_service("private").value("email", PLANTED_EMAIL)
    assert again == shown["email"][0]  # the same key gives the same pseudonym in another process
    assert policy(b"another key").for_service("private").value("email", PLANTED_EMAIL) != again
    assert policy().pseudonym("zip", PLANTED_EMAIL) != policy().pseudonym("email", PLANTED_EMAIL)  # keyed by column


def test_a_service_without_personal_columns_is_shown_as_it_is():
    mask = policy().for_service("plain")
    frame = pd.DataFrame({"email": [PLANTED_EMAIL]})
    assert not mask and mask.frame(frame) is frame
    assert mask.text(f"hello {PLANTED_EMAIL}") == f"hello {PLANTED_EMAIL}"
    assert mask.export(b"x") == b"x"


def test_free_text_has_every_learned_value_masked_as_a_whole_word():
    data = policy()
    data.learn("private", pd.DataFrame({"email": [PLANTED_EMAIL, "New York office", "ab"],
                                        "balance": [PLANTED_NUMBER, 35.0, 1200.0]}))
    pseudonym = data.pseudonym("email", PLANTED_EMAIL)
    text = (f"row {PLANTED_EMAIL} failed: balance={PLANTED_NUMBER}, 9,876.54321 or 1,200; "
            f"'{PLANTED_EMAIL}'. email = {PLANTED_EMAIL} & channel = web; in New York office; lab; 35 rows")
    masked = data.text(text)
    assert PLANTED_EMAIL not in masked and "9876.54321" not in masked and "9,876.54321" not in masked
    assert masked.count(pseudonym) == 3 and "balance=masked" in masked and "masked or 1,200" in masked
    assert "New York office" not in masked and data.pseudonym("email", "New York office") in masked
    assert "lab" in masked and "35 rows" in masked  # short values are not hunted in text (they would mangle it)
    assert data.text("1200.0 and 1200.00") == "masked and masked"  # at full precision, a number is hunted
    assert "zorblax.quimby@example.org.uk" in data.text("zorblax.quimby@example.org.uk")  # another word


def test_labels_long_tables_and_text_cells():
    data = policy()
    mask = data.for_service("private")
    labels = mask.labels("email", [PLANTED_EMAIL, "(unseen)", "(missing)"])
    assert labels == [data.pseudonym("email", PLANTED_EMAIL), "(unseen)", "(missing)"]
    assert mask.labels("channel", ["web"]) == ["web"]
    explanation = pd.DataFrame({"feature": ["email", "balance", "age"], "value": [PLANTED_EMAIL, "9876.54321", "30"],
                                "shap_value": [0.1, 0.2, 0.3]})
    shown = mask.long(explanation)
    assert list(shown["value"]) == [data.pseudonym("email", PLANTED_EMAIL), data.pseudonym("balance", "9876.54321"),
                                    "30"]
    segments = pd.DataFrame({"segment": [f"email = {PLANTED_EMAIL} & channel = web"], "n": [3]})
    expected = f"email = {data.pseudonym('email', PLANTED_EMAIL)} & channel = web"
    assert mask.text_cells(segments)["segment"][0] == expected
    labels = ["channel = web & email = a@b.org", "balance = 1200.0", "balance < 1,234", "email = (missing)"]
    assert mask.segment_labels(labels, ["channel", "email", "balance"]) == [  # values masked, quantile bins kept
        f"channel = web & email = {data.pseudonym('email', 'a@b.org')}",
        f"balance = {data.pseudonym('balance', '1200.0')}", "balance < 1,234", "email = (missing)"]
    assert mask.groups("email", ["a@b.org", "(missing)"]) == [data.pseudonym("email", "a@b.org"), "(missing)"]
    assert mask.groups("balance", ["balance < 1,234"]) == ["balance < 1,234"]


def test_a_numeric_distribution_is_shown_on_the_reference_quantile_scale():
    from monitoring.drift import build_profile, compute_drift, feature_distribution

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"balance": np.append(rng.lognormal(8, 1, 999), PLANTED_NUMBER * 100)})
    profile = build_profile(reference, {"balance": "numeric"})
    current = pd.DataFrame({"balance": rng.lognormal(8.3, 1, 500), "ts": np.arange(500.0)})
    report = compute_drift(profile, current, window="500", now=1000.0)
    mask = policy().for_service("private")
    shown = mask.distribution("balance", feature_distribution(report, "balance"))
    inner = shown[shown["bin_kind"] == "bin"]
    assert inner["left"].min() == pytest.approx(0.0) and inner["right"].max() == pytest.approx(1.0)
    assert inner["reference_share"].sum() == pytest.approx(1.0)
    assert str(PLANTED_NUMBER * 100) not in shown.to_csv() and "987654" not in shown.to_csv()
    categories = pd.DataFrame({"bin": [PLANTED_EMAIL, "(unseen)", "(missing)"],
                               "bin_kind": ["category", "unseen", "missing"], "left": np.nan, "right": np.nan,
                               "reference_count": [1, 0, 0], "reference_share": [1.0, 0, 0],
                               "current_count": [0, 0, 0], "current_share": [0.0, 0, 0]})
    assert PLANTED_EMAIL not in mask.distribution("email", categories).to_csv()


def test_figures_and_exports_are_masked():
    import plotly.graph_objects as go

    data = policy()
    mask = data.for_service("private")
    data.learn("private", pd.DataFrame({"email": [PLANTED_EMAIL], "balance": [PLANTED_NUMBER]}))
    figure = go.Figure(go.Bar(x=[PLANTED_EMAIL, "web"], y=[1, 2], hovertext=[f"{PLANTED_EMAIL}!", "x"]))
    figure.update_layout(title=f"about {PLANTED_EMAIL}")
    assert PLANTED_EMAIL not in mask.figure(figure).to_json()
    assert PLANTED_EMAIL in figure.to_json()  # the original is left alone
    assert PLANTED_EMAIL not in mask.export(f"a,{PLANTED_EMAIL}\n".encode()).decode()
    assert PLANTED_EMAIL not in mask.export(lambda: f"<td>{PLANTED_EMAIL}</td>")()


def test_log_lines_are_masked(caplog):
    data = policy()
    data.learn("private", pd.DataFrame({"email": [PLANTED_EMAIL], "balance": [PLANTED_NUMBER]}))
    caplog.set_level(logging.INFO)
    log_filter = install_log_masking(data, loggers=[logging.getLogger()])
    try:
        logging.getLogger("vantage.test").warning("row %s with balance %s failed", PLANTED_EMAIL, PLANTED_NUMBER)
        try:
            raise ValueError(f"cannot take {PLANTED_EMAIL}")
        except ValueError:
            logging.getLogger("vantage.test").exception("prediction failed")
    finally:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(log_filter)
    assert "failed" in caplog.text and data.pseudonym("email", PLANTED_EMAIL) in caplog.text
    assert PLANTED_EMAIL not in caplog.text and "9876.54321" not in caplog.text


def test_the_key_comes_from_the_environment_or_a_private_file_made_once(tmp_path):
    assert personal_key(tmp_path, {PERSONAL_KEY_ENV: "from-the-env"}) == b"from-the-env"
    first = personal_key(tmp_path / "var", {})
    assert personal_key(tmp_path / "var", {}) == first and len(first) == 64
    assert stat.S_IMODE((tmp_path / "var" / "personal.key").stat().st_mode) == 0o600
    assert KEY not in repr(policy())  # the repr never shows the key
    from monitoring.config import parse_config

    config = parse_config('[[services]]\nname = "a"\nurl = "http://127.0.0.1:1"\nprotocol = "rest"\n'
                          'personal = ["email"]')
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    fallback = PersonalData.from_config(config, blocked / "var", {})
    assert fallback.key_problem and "cannot be used" in fallback.key_problem and fallback.for_service("a")
    assert PersonalData.from_config(config, tmp_path / "var", {}).key_problem is None


def test_personal_columns_are_validated_in_the_config():
    from monitoring.config import ConfigError, parse_config

    base = '[[services]]\nname = "a"\nurl = "http://127.0.0.1:1"\nprotocol = "rest"\n'
    assert parse_config(base + 'personal = ["email"]').services[0].personal == ("email",)
    for extra, message in (('personal = ["email", "email"]', "repeated: email"),
                           ('personal = ["score"]', "must be input columns, not score"),
                           ('personal = [""]', "an empty name"),
                           ('features = ["age"]\npersonal = ["emial"]', "emial is not one of the features (age)")):
        with pytest.raises(ConfigError) as caught:
            parse_config(base + extra)
        assert message in str(caught.value), (extra, caught.value.problems)
    assert unknown_columns(["email", "emial"], ["email", "age"]) == ["emial"]


def test_the_key_and_the_guarantee_are_documented_in_the_readme():
    from monitoring.config import documented_keys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "personal" in documented_keys()["services"]  # tests/test_config.py checks every key is in the README
    assert "| `personal` |" in readme and "**Personal data.**" in readme and PERSONAL_KEY_ENV in readme


# -- the whole dashboard, with a real service, store and model


def _train(reference: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pipeline = Pipeline([
        ("columns", ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"), ["email", "channel"])],
                                      remainder="passthrough")),
        ("model", GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0)),
    ])
    return pipeline.fit(reference[list(FEATURES)], reference["default"])


def _reference(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "email": [f"person{i:04d}@example.org" for i in range(rows)],
        "channel": rng.choice(["web", "branch", "phone"], rows),
        "balance": np.round(rng.lognormal(7, 0.8, rows), 2),
        "age": rng.integers(18, 80, rows).astype(float),
    })
    frame.loc[0, ["email", "balance"]] = [PLANTED_EMAIL, PLANTED_NUMBER]
    risk = 1 / (1 + np.exp(-(frame["balance"] / 2000 - 1 + (frame["channel"] == "phone") * 0.8)))
    frame["default"] = (rng.uniform(size=rows) < risk).astype(int)
    return frame


@pytest.fixture(scope="module")
def private_service(tmp_path_factory):
    """The template service serving a model with an e-mail and a balance, logging to a store; 120 predictions
    logged through it (the newest and the worst-labelled carry the planted values), with their labels."""
    import joblib
    import requests
    import uvicorn

    from demo.runtime import free_port
    from demo.service import ServedModel, create_app
    from monitoring.sealing import Sealer
    from monitoring.store import Store

    folder = tmp_path_factory.mktemp("personal")
    reference = _reference()
    reference.to_parquet(folder / "reference.parquet")
    pipeline = _train(reference)
    joblib.dump(pipeline, folder / "model.joblib")
    store_url = f"sqlite:///{folder / 'store.db'}"
    store = Store(store_url, sealer=Sealer({"private": ("email", "balance")}, KEY.encode()))  # as from_config
    app = create_app(ServedModel(pipeline, "v1", FEATURES), store=store, service_name="private")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="the private service to start", every=0.05)
    url = f"http://127.0.0.1:{port}"

    now = time.time()
    order = [*range(1, 119), 0, 0]  # the planted row twice, last: the newest predictions
    rows = reference.iloc[order].reset_index(drop=True)
    ids = [f"p-{i:03d}" for i in range(len(rows))]
    answer = requests.post(f"{url}/predict", timeout=30, json={
        "instances": [{f: (None if pd.isna(v) else v) for f, v in zip(FEATURES, r, strict=True)}
                      for r in rows[list(FEATURES)].itertuples(index=False)],
        "ids": ids, "timestamps": [now - 3600 + 25 * i for i in range(len(rows))]})
    answer.raise_for_status()
    predicted = answer.json()["predictions"]
    labels = [{"prediction_id": i, "label": int(t)} for i, t in zip(ids, reference["default"].iloc[order],
                                                                     strict=True)]
    labels[-2]["label"] = 1 - int(predicted[-2])  # the planted row is wrong: it tops "largest error"
    requests.post(f"{url}/labels", json={"labels": labels}, timeout=30).raise_for_status()
    wait_for(lambda: store.count_predictions("private") >= len(rows), timeout=30, what="the 120 logged predictions")
    assert store.count_predictions("private") == len(rows)

    config = folder / "vantage.toml"
    config.write_text(f"""
[store]
url = "{store_url}"

[[services]]
name = "private"
url = "{url}"
protocol = "rest"
poll_interval = 3600
reference = "{folder / 'reference.parquet'}"
target = "default"
features = ["email", "channel", "balance", "age"]
personal = ["email", "balance"]

[services.rest]
health = "/health"
ready = "/ready"
predict = "/predict"
metadata = "/model"

[services.performance]
min_labels = 5

[services.explain]
source = "local"
artifact = "{folder / 'model.joblib'}"
trust_pickle = true
""")
    yield config
    server.should_exit = True
    thread.join(timeout=10)
    store.dispose()


class _Downloads:
    """Every download button's data of the runs, through Streamlit's own media file manager."""

    def __init__(self) -> None:
        self.static: list[bytes | str] = []
        self.deferred: list = []

    def manager(self):
        from streamlit.runtime.media_file_manager import MediaFileManager

        downloads = self

        class Recording(MediaFileManager):
            def add(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
                if is_for_static_download:
                    downloads.static.append(path_or_data)
                return super().add(path_or_data, mimetype, coordinates, file_name, is_for_static_download)

            def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, *, element_id=""):
                downloads.deferred.append(data_callable)
                return super().add_deferred(data_callable, mimetype, coordinates, file_name, element_id=element_id)

        return Recording


def _decoded(node):
    """A plotly spec with its typed arrays (``{"dtype": "f8", "bdata": base64}``) read back as numbers."""
    if isinstance(node, dict):
        if "bdata" in node and "dtype" in node:
            return np.frombuffer(base64.b64decode(node["bdata"]), dtype=np.dtype(node["dtype"])).tolist()
        return {k: _decoded(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decoded(v) for v in node]
    return node


def _everything_shown(at) -> str:
    """What a page sends to the browser: every element's message, the tables' cells, the charts' numbers, the
    link's query."""
    parts, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        stack.extend(getattr(node, "children", {}).values())
    parts += [d.value.to_csv() for d in at.dataframe]  # Arrow bytes hold numbers in binary: read them back
    parts += [json.dumps(_decoded(json.loads(chart.proto.spec))) for chart in at.get("plotly_chart")]  # base64 too
    parts += [str(value) for value in at.query_params.values()]
    return "\n".join(parts)


def _leaks(text: str) -> list[str]:
    return [planted for planted in PLANTED_TEXTS if planted in text]


@pytest.mark.integration
def test_no_page_download_report_or_log_line_shows_a_planted_personal_value(private_service, monkeypatch, caplog,
                                                                           tmp_path):
    import streamlit.testing.v1.app_test as app_test
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VANTAGE_CONFIG", str(private_service))
    monkeypatch.setenv(PERSONAL_KEY_ENV, KEY)
    monkeypatch.setenv("VANTAGE_VAR", str(tmp_path / "var"))
    downloads = _Downloads()
    monkeypatch.setattr(app_test, "MediaFileManager", downloads.manager())
    caplog.set_level(logging.INFO)
    pseudonym = policy().pseudonym("email", PLANTED_EMAIL)

    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    shown: dict[str, list[str]] = {}

    def visit(label: str) -> None:
        assert not at.exception, (label, at.exception)
        shown.setdefault(label, []).append(_everything_shown(at))

    for page in ("overview", "health", "drift", "performance", "segments", "services"):
        at.switch_page(f"views/{page}.py").run()
        visit(page)
    for feature in ("email", "balance"):  # the distribution of each personal column
        at.switch_page("views/drift.py").run()
        at.selectbox(key="drift_feature_private").set_value(feature).run()
        visit(f"drift {feature}")
    at.switch_page("views/segments.py").run()
    at.multiselect(key="segments_features_private").set_value(["email", "balance"]).run()
    at.selectbox(key="segments_sensitive_private").set_value("email").run()
    visit("segments by email and balance")

    at.switch_page("views/explain.py").run()
    for tab in ("Feature importance", "Beeswarm", "Dependence", "One prediction", "Partial dependence"):
        at.query_params["explain_tab"] = tab
        at.run()
        visit(f"explain {tab}")
    at.query_params["explain_tab"] = "One prediction"
    at.run()
    assert any(pseudonym in str(v.value.to_csv()) for v in at.dataframe), "the newest prediction is listed masked"

    at.switch_page("views/whatif.py").run()
    for finder in ("Most recent", "Largest error", "Most uncertain", "By id"):
        at.segmented_control(key="whatif_find").set_value(finder).run()
        if finder == "By id":
            at.text_input(key="whatif_id").input("p-118").run()
        visit(f"whatif {finder}")
        for tab in ("Prediction", "Sensitivity", "Counterfactuals", "Scenarios"):
            at.query_params["whatif_tab"] = tab
            at.run()
            if tab == "Counterfactuals":
                at.button[[b.label for b in at.button].index("Find counterfactuals")].click().run()
            if tab == "Scenarios":
                at.text_input(key="whatif_scenario_name").set_value("kept").run()
                at.button(key="whatif_keep").click().run()
            visit(f"whatif {finder} {tab}")
        at.query_params["whatif_tab"] = "Prediction"
    masked_editor = [w for w in at.text_input if w.key and w.key.endswith("_email_masked")]
    assert masked_editor and masked_editor[0].value == pseudonym and masked_editor[0].disabled
    assert [w.value for w in at.text_input if w.key and w.key.endswith("_balance_masked")] == [MASKED]

    from explain.scenarios import Scenario, decode_scenario, encode_scenario

    at.query_params["scenario"] = encode_scenario(Scenario("crafted", "reference", "0",
                                                           {"email": "someone.else@example.net", "age": 30.0}))
    at.run()  # a link cannot set a personal value: reference row 0 keeps its own, shown masked
    visit("whatif crafted link")
    assert any("personal data and cannot be edited" in i.value for i in at.info)
    assert [w.value for w in at.text_input if w.key and w.key.endswith("_email_masked")] == [pseudonym]
    assert decode_scenario(at.query_params["scenario"]).changes == {"age": 30.0}  # the link the page writes back

    at.switch_page("views/overview.py").run()  # the report, built on click from what the page gathered
    visit("overview again")
    files = [data() if callable(data) else data for data in downloads.deferred] + downloads.static
    assert len(files) >= 4  # the report and the drift, performance and segments tables
    texts = [f.decode("utf-8", errors="replace") if isinstance(f, bytes) else str(f) for f in files]
    report = next(t for t in texts if t.startswith("<!DOCTYPE html>"))
    assert "private" in report

    logging.getLogger("vantage.test").warning("a value a page might log: %s, %s", PLANTED_EMAIL, PLANTED_NUMBER)

    leaks = {label: _leaks(text) for label, texts_ in shown.items() for text in texts_ if _leaks(text)}
    assert not leaks, leaks
    assert not [t[:80] for t in texts if _leaks(t)]
    assert not _leaks(caplog.text), [line for line in caplog.text.splitlines() if _leaks(line)]
    everything = "\n".join(text for texts_ in shown.values() for text in texts_)
    assert pseudonym in everything  # shown, masked: the test cannot pass by showing nothing
    assert pseudonym in caplog.text  # the log line was written, masked
    assert "@example.org" not in everything  # no other e-mail either
    written = [f for f in (tmp_path / "var").rglob("*") if f.is_file() and f.name != "personal.key"]
    assert written and not [str(f) for f in written if PLANTED_EMAIL.encode() in f.read_bytes()]  # caches included
    stored = [f for f in private_service.parent.glob("store.db*") if f.is_file()]  # the database and its WAL
    assert stored and not [str(f) for f in stored if PLANTED_EMAIL.encode() in f.read_bytes()
                           or b"9876.54321" in f.read_bytes()]  # sealed at rest

    from dashboard import state

    state.stop_runtime()


def test_the_report_masks_segments_groups_and_sentences_named_after_a_personal_value():
    from explain.segments import fairness_metrics, segment_metrics
    from monitoring.report import render_report, service_report

    rows = 40
    frame = pd.DataFrame({"email": [PLANTED_EMAIL] * rows + ["other@example.org"] * rows,
                          "prediction": [1.0, 0.0] * rows, "label": [1.0, 1.0, 0.0, 0.0] * (rows // 2)})
    segments = segment_metrics(frame, ["email"], task="classification", classes=(0.0, 1.0), min_rows=5)
    fairness = fairness_metrics(frame["prediction"], frame["email"], y_true=frame["label"], min_rows=5,
                                sensitive_feature="email")
    data = policy()
    html = render_report([service_report(
        "private", state="down", status_line=f"Status: the service refused {PLANTED_EMAIL}.", model_line="Model: m.",
        segments=segments, fairness=fairness, mask=data.for_service("private"))], generated_at=0.0)
    assert "@example.org" not in html
    assert html.count(data.pseudonym("email", PLANTED_EMAIL)) >= 3  # segment, group and the status line
