"""Configuration: valid files load, invalid ones name the key, the accepted values and what was found."""

import re
from pathlib import Path

import pytest

from monitoring.config import ConfigError, config_path_from, documented_keys, load_config, parse_config

MINIMAL = """
[[services]]
name = "credit"
url = "http://127.0.0.1:8080/"
protocol = "v2"
model = "credit-risk"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="test.toml")
    assert info.value.source == "test.toml"
    return info.value.problems


def test_minimal_config_gets_defaults():
    config = parse_config(MINIMAL)
    service = config.service("credit")
    assert service.url == "http://127.0.0.1:8080"  # trailing slash removed
    assert service.poll_interval == 10.0
    assert service.timeout == 2.0
    assert service.rest.predict == "/predict"
    assert service.slo.availability == 0.995
    assert config.store.url.startswith("sqlite:///") and config.store.url.endswith("var/vantage.db")


def test_unknown_protocol_names_the_key_and_accepted_values():
    [problem] = problems(MINIMAL.replace('"v2"', '"grpc"'))
    assert problem.startswith("services[0].protocol")
    assert "'v2', 'mlflow' or 'rest'" in problem
    assert "'grpc'" in problem


def test_missing_field_is_named():
    [problem] = problems('[[services]]\nname = "a"\nprotocol = "rest"\n')
    assert problem == "services[0].url: required key is missing"


def test_v2_without_model_is_explained():
    [problem] = problems(MINIMAL.replace('model = "credit-risk"', ""))
    assert "services[0]" in problem and "needs 'model'" in problem


def test_misspelt_key_is_reported_as_unknown():
    [problem] = problems(MINIMAL + "pol_interval = 5\n")
    assert problem.startswith("services[0].pol_interval: unknown key")


def test_wrong_type_and_range_name_the_nested_key():
    found = problems(MINIMAL + 'poll_interval = "often"\n[services.slo]\navailability = 1.5\n')
    assert any(p.startswith("services[0].poll_interval") and "'often'" in p for p in found)
    assert any(p.startswith("services[0].slo.availability") and "1.5" in p for p in found)


def test_invalid_toml_says_so():
    [problem] = problems("[[services]\nname = ")
    assert problem.startswith("not valid TOML")


def test_no_services_and_duplicate_names():
    assert problems("[store]\n") == ["services: required; add at least one [[services]] table"]
    [problem] = problems(MINIMAL + MINIMAL)
    assert "names must be unique" in problem and "credit" in problem


def test_bad_url_and_name():
    found = problems(MINIMAL.replace("http://127.0.0.1:8080/", "127.0.0.1:8080").replace('"credit"', '"a b"'))
    assert any(p.startswith("services[0].url") for p in found)
    assert any(p.startswith("services[0].name") for p in found)


def test_a_spark_log_on_an_object_store_is_refused_with_what_to_do_instead():
    found = problems('[store]\nlog = "spark://spark:7077?path=s3a://ml-logs/vantage"\n' + MINIMAL)
    assert len(found) == 1 and found[0].startswith("store.log: a Spark log's path must be a directory on disk")
    assert "'s3a://ml-logs/vantage' is not supported" in found[0] and "mount the bucket" in found[0]
    mounted = parse_config('[store]\nlog = "spark://spark:7077?path=/mnt/ml-logs/vantage"\n' + MINIMAL)
    assert mounted.store.log == "spark://spark:7077?path=/mnt/ml-logs/vantage"


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "conf" / "my.toml"
    path.parent.mkdir()
    path.write_text('[store]\nurl = "sqlite:///data/v.db"\n' + MINIMAL + 'reference = "ref.csv"\n')
    config = load_config(path)
    assert config.store.url == f"sqlite:///{tmp_path / 'conf' / 'data' / 'v.db'}"
    assert config.service("credit").reference == str(tmp_path / "conf" / "ref.csv")
    assert config.source == str(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="file not found"):
        load_config("/nonexistent/vantage.toml")


def test_auth_value_comes_from_the_environment(monkeypatch):
    config = parse_config(MINIMAL + '[services.auth]\nenv = "CREDIT_TOKEN"\nprefix = "Bearer "\n')
    auth = config.service("credit").auth
    monkeypatch.delenv("CREDIT_TOKEN", raising=False)
    assert auth.header_value() is None
    monkeypatch.setenv("CREDIT_TOKEN", "s3cret")
    assert (auth.header, auth.header_value()) == ("Authorization", "Bearer s3cret")
    assert "s3cret" not in config.model_dump_json()


def test_config_path_from_argv_and_environment():
    assert config_path_from(["--config", "a.toml"], {}) == "a.toml"
    assert config_path_from(["--config=b.toml"], {}) == "b.toml"
    assert config_path_from([], {"VANTAGE_CONFIG": "c.toml"}) == "c.toml"
    assert config_path_from([], {}) is None


def test_readme_documents_every_configuration_key():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    reference = readme.split("## Configuration reference", 1)[1]
    missing = [f"{table}.{key}" for table, keys in documented_keys().items() for key in keys
               if not re.search(rf"`{re.escape(key)}`", reference)]
    assert not missing, f"README's configuration reference lacks {missing}"


def test_unknown_drift_method_lists_the_valid_ones():
    [problem] = problems(MINIMAL + '[services.drift]\nmethods = {income = "kl"}\n')
    assert problem.startswith("services[0].drift") and "unknown drift method 'kl'" in problem
    for name in ("ks", "chi_square", "z_test", "wasserstein", "jensen_shannon", "psi", "hellinger"):
        assert name in problem


def test_drift_window_is_validated():
    [problem] = problems(MINIMAL + '[services.drift]\nwindow = "month"\n')
    assert problem.startswith("services[0].drift.window") and "'hour', 'day', 'week'" in problem


def test_readme_documents_every_drift_method():
    from monitoring.drift import METHODS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Drift methods", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in METHODS if f"| `{name}` |" not in section]
    assert not missing, f"README's drift methods table lacks {missing}"


def test_a_second_endpoint_reads_the_prediction_log_it_is_logged_as(tmp_path):
    from monitoring.labels import label_source
    from monitoring.production import production_source
    from monitoring.store import Store

    text = """
[[services]]
name = "credit-risk"
url = "http://127.0.0.1:9"
protocol = "v2"
model = "credit-risk"

[[services]]
name = "credit-risk-rest"
url = "http://127.0.0.1:9"
protocol = "rest"
logged_as = "credit-risk"
"""
    config = parse_config(text, source="test.toml", base_dir=tmp_path)
    twin = config.service("credit-risk-rest")
    assert twin.log_name == "credit-risk" and config.service("credit-risk").log_name == "credit-risk"
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    assert production_source(store, twin).service == "credit-risk"
    assert label_source(store, twin).service == "credit-risk"
    store.dispose()
    with pytest.raises(ConfigError, match="logged_as"):
        parse_config(text.replace('logged_as = "credit-risk"', 'logged_as = "no spaces allowed"'),
                     source="test.toml", base_dir=tmp_path)


@pytest.mark.parametrize("key", ["reference", "prediction_log", "labels", "explain"])
def test_a_nul_byte_in_any_path_is_named(key):
    table = {"reference": 'reference = "ref\\u0000.csv"\n',
             "prediction_log": '[services.prediction_log]\npath = "log\\u0000.csv"\n',
             "labels": '[services.labels]\npath = "labels\\u0000.csv"\n',
             "explain": '[services.explain]\nartifact = "model\\u0000.joblib"\n'}[key]
    [problem] = problems(MINIMAL + table)
    assert problem.startswith("services[0].") and "NUL byte at position" in problem, problem


def test_a_nul_byte_in_the_config_files_own_path_is_a_config_error():
    with pytest.raises(ConfigError, match="not a usable file path"):
        load_config("vantage\x00.toml")


@pytest.mark.parametrize(("url", "message"), [
    ("", "must be a SQLAlchemy URL, not empty"),
    ("bogus://x", "must use one of the backends sqlite, postgresql"),
    ("mysql://host/db", "this one names 'mysql'"),
    ("postgresql+nosuchdriver://host/db", "names the driver 'nosuchdriver', which SQLAlchemy does not know"),
    ("postgresql://host:port/db", "must be a SQLAlchemy URL"),
    ("sqlite:///var/v\\u0000.db", "NUL byte"),
])
def test_unusable_store_urls_are_refused_with_the_backends(url, message):
    [problem] = problems(f'[store]\nurl = "{url}"\n' + MINIMAL)
    assert problem.startswith("store.url:") and message in problem, problem


@pytest.mark.parametrize("url", ["sqlite:///var/v.db", "sqlite+pysqlite:////abs/v.db", "sqlite://",
                                 "postgresql+psycopg://vantage@db.internal/vantage", "postgresql://h/d"])
def test_sqlite_and_postgresql_urls_are_accepted(url):
    assert parse_config(f'[store]\nurl = "{url}"\n' + MINIMAL).store.url.split(":")[0] == url.split(":")[0]


@pytest.mark.parametrize(("url", "message"), [
    ("http://user:secret@127.0.0.1:8080", "must not carry credentials"),
    ("http://127.0.0.1:0", "port between 1 and 65535"),
    ("http://127.0.0.1:99999", "Port out of range"),
    ("http://127.0.0.1:8080/?debug=1", "without ?query"),
    ("http://127.0.0.1 :8080", "without spaces"),
    ("ftp://127.0.0.1", "http:// or https://"),
])
def test_service_urls_are_checked(url, message):
    [problem] = problems(MINIMAL.replace("http://127.0.0.1:8080/", url))
    assert problem.startswith("services[0].url") and message in problem, problem


def test_metrics_urls_and_rest_paths_are_checked():
    found = problems(MINIMAL + '[services.metrics]\nurl = "http://h:99999/metrics"\n'
                     '[services.rest]\npredict = "predict"\n')
    assert any(p.startswith("services[0].metrics.url") and "Port out of range" in p for p in found)
    assert any(p.startswith("services[0].rest.predict") and "starting with '/'" in p for p in found)
    ok = parse_config(MINIMAL + '[services.metrics]\nurl = "http://h:8082/metrics?format=text"\n')
    assert ok.service("credit").metrics.url.endswith("?format=text")


def test_max_response_mb_has_a_default_and_a_range():
    assert parse_config(MINIMAL).service("credit").max_response_mb == 16
    assert parse_config(MINIMAL + "max_response_mb = 0.5\n").service("credit").max_response_mb == 0.5
    [problem] = problems(MINIMAL + "max_response_mb = 0\n")
    assert problem.startswith("services[0].max_response_mb")
