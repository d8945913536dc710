"""Configuration: one TOML file that lists the prediction services to watch.

The file is validated at the boundary. Every problem is reported as the dotted key that is
wrong, what is accepted there, and what was found, so the dashboard can show it as a message
instead of a traceback.

Example::

    [store]
    url = "sqlite:///var/vantage.db"

    [[services]]
    name = "credit"
    url = "http://127.0.0.1:8080"
    protocol = "v2"
    model = "credit-risk"
    features = ["age", "income"]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV_VAR = "VANTAGE_CONFIG"
PROTOCOLS = ("v2", "mlflow", "rest")
DEFAULT_STORE_URL = "sqlite:///var/vantage.db"
DEFAULT_LOG_URL = "duckdb:var/log"
"""The prediction log's default engine: DuckDB over Parquet partitions under ``var/log`` (next to the store)."""
STORE_LOG = "store"
"""``[store] log`` value that keeps the prediction log in the SQL store's own tables."""

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_PATH = 4096
STORE_BACKENDS = ("sqlite", "postgresql")
"""SQLAlchemy backends the store runs on (any driver of theirs that SQLAlchemy knows)."""


def _control_message(value: str) -> str | None:
    found = _CONTROL.search(value)
    if found is None:
        return None
    name = "a NUL byte" if found.group() == "\x00" else f"the control character {found.group()!r}"
    return f"{name} at position {found.start()}"


def check_path(value: str | None) -> str | None:
    """A file path from the configuration: non-empty, at most 4,096 characters, no NUL or control characters.

    Raises
    ------
    ValueError
        Naming what is wrong; pydantic turns it into a problem of the key.
    """
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must be a file path, not empty")
    if len(value) > _MAX_PATH:
        raise ValueError(f"must be a file path of at most {_MAX_PATH:,} characters; got {len(value):,}")
    control = _control_message(value)
    if control:
        raise ValueError(f"must be a file path without NUL bytes or control characters; it has {control}")
    return value


ConfigPath = Annotated[str, AfterValidator(check_path)]
"""A file path key of the configuration (reference, artifact, prediction-log or label file): :func:`check_path`."""


def check_http_url(value: str, *, allow_query: bool = False) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a valid port), without credentials or control characters.

    Raises
    ------
    ValueError
    """
    control = _control_message(value)
    if control or " " in value:
        raise ValueError(f"must be a URL without spaces or control characters; it has {control or 'a space'}")
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must start with http:// or https:// followed by a host")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"must be a URL such as http://host:8080; {exc}") from None
    if not parts.hostname:
        raise ValueError("must start with http:// or https:// followed by a host")
    if port == 0:
        raise ValueError("must name a port between 1 and 65535; got port 0")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@); put the secret in the environment and name "
                         "it in [services.auth]")
    if not allow_query and (parts.query or parts.fragment or value.endswith(("?", "#"))):
        raise ValueError("must be a base URL without ?query or #fragment (paths are added to it)")
    return value


def check_log_url(value: str) -> str:
    """Where the prediction log is kept: ``"store"``, ``duckdb:<directory>`` or ``spark://<master>?path=<directory>``
    (on disk, local or mounted: an object-store path is refused, as the log's readers open its files).

    Raises
    ------
    ValueError
    """
    text = value.strip()
    control = _control_message(text)
    if control:
        raise ValueError(f"must be a log URL without NUL bytes or control characters; it has {control}")
    scheme = urlsplit(text).scheme
    if text == STORE_LOG:
        return text
    if scheme == "duckdb" and text.removeprefix("duckdb:").strip("/"):
        return text
    if scheme == "spark" and "path=" in urlsplit(text).query:
        path = parse_qs(urlsplit(text).query).get("path", [""])[0]
        if "://" in path:
            raise ValueError(f"a Spark log's path must be a directory on disk, local or mounted (such as "
                             f"'spark://<master>?path=/mnt/ml-logs/vantage'); an object-store path such as {path!r} is "
                             "not supported, as Vantage opens the log's files itself: mount the bucket where the "
                             "dashboard and the cluster both see it")
        return text
    raise ValueError(f"must be 'store' (the prediction log in the SQL store), 'duckdb:<directory>' (Parquet "
                     f"partitions read by DuckDB, the default {DEFAULT_LOG_URL!r}) or "
                     f"'spark://<master>?path=<directory>'; got {value!r}")


def check_store_url(value: str) -> str:
    """A SQLAlchemy URL of a backend the store supports (:data:`STORE_BACKENDS`), with a driver SQLAlchemy knows.

    Raises
    ------
    ValueError
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    example = "e.g. sqlite:///var/vantage.db or postgresql+psycopg://user@host/vantage"
    if not value.strip():
        raise ValueError(f"must be a SQLAlchemy URL, not empty; {example}")
    control = _control_message(value)
    if control:
        raise ValueError(f"must be a SQLAlchemy URL without NUL bytes or control characters; it has {control}")
    try:
        url = make_url(value)
        backend = url.get_backend_name()
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"must be a SQLAlchemy URL, {example} ({exc})") from None
    if backend not in STORE_BACKENDS:
        raise ValueError(f"must use one of the backends {', '.join(STORE_BACKENDS)} ({example}); this one names "
                         f"{backend!r}")
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"names the driver {url.get_driver_name()!r}, which SQLAlchemy does not know for "
                         f"{backend}; {example}") from None
    if backend == "sqlite" and url.database is not None and len(url.database) > _MAX_PATH:
        raise ValueError(f"has a database path of {len(url.database):,} characters; at most {_MAX_PATH:,}")
    return value


class ConfigError(ValueError):
    """A configuration file that cannot be used.

    Parameters
    ----------
    source : str
        The file (or ``"<text>"``) the configuration came from.
    problems : list of str
        One line per problem, each naming the key, what is accepted and what was found.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthConfig(_Strict):
    """An HTTP header whose value is read from an environment variable at call time."""

    header: str = Field("Authorization", description="Name of the HTTP header to send.")
    env: str = Field(description="Environment variable that holds the secret value.")
    prefix: str = Field("", description='Text put before the secret, e.g. "Bearer ".')

    def header_value(self) -> str | None:
        """Return the header's value, or None when the variable is not set."""
        secret = os.environ.get(self.env)
        return None if secret is None else f"{self.prefix}{secret}"


class RestPaths(_Strict):
    """Paths and body keys of a plain REST service (protocol ``rest``)."""

    health: str = Field("/health", description="GET path answering 2xx when the service is live.")
    ready: str | None = Field(None, description="GET path answering 2xx when ready; none = same as health.")
    predict: str = Field("/predict", description="POST path taking records and returning predictions.")
    metadata: str | None = Field(None, description="GET path returning JSON model metadata.")
    records_key: str = Field("instances", description="Request key holding the list of records.")
    predictions_key: str = Field("predictions", description="Response key holding the predictions.")
    probabilities_key: str = Field("probabilities", description="Response key holding class probabilities.")

    @field_validator("health", "ready", "predict", "metadata")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/") or len(value) > 2048:
            raise ValueError("must be a URL path starting with '/', such as /predict, of at most 2,048 characters")
        control = _control_message(value)
        if control or " " in value:
            raise ValueError(f"must be a URL path without spaces or control characters; it has {control or 'a space'}")
        return value


_LABEL_MATCHER = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*""")
_PROM_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def _matcher_value(quoted: str) -> str:
    """The text of a PromQL string literal (double, single or back quotes)."""
    if quoted[0] == "`":
        return quoted[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), quoted[1:-1])


def _matches_empty(operator: str, value: str) -> bool:
    """Whether a matcher selects series that lack the label (the empty value), as Prometheus judges it."""
    if operator in ("=", "!="):
        return (value == "") == (operator == "=")
    try:
        matched = re.fullmatch(value, "") is not None
    except re.error:
        return True  # cannot tell: Prometheus says so if it minds
    return matched if operator == "=~" else not matched


def check_selector(value: str) -> str:
    """A PromQL label selector such as ``{job="mlserver", instance="10.0.0.7:8082"}``, braces optional.

    Returns
    -------
    str
        The matchers in braces, each as written, joined by ``", "``.

    Raises
    ------
    ValueError
        Naming the part that is not a matcher, a metric name given in it, or a selector that every
        series would match (Prometheus refuses those).
    """
    text = value.strip()
    if text.startswith("{") != text.endswith("}"):
        raise ValueError("must be label matchers in braces, e.g. {job=\"mlserver\"}; the braces do not pair up")
    inner = text[1:-1].strip() if text.startswith("{") else text
    control = _control_message(inner)
    if control:
        raise ValueError(f"must be label matchers without control characters; it has {control}")
    matchers, position = [], 0
    while position < len(inner):
        found = _LABEL_MATCHER.match(inner, position)
        if found is None:
            raise ValueError(f"must be label matchers such as job=\"mlserver\" (a label, one of = != =~ !~ and a "
                             f"quoted value), separated by commas; cannot read {inner[position:position + 40]!r}")
        label, operator, quoted = found.group(1), found.group(2), found.group(3)
        if label == "__name__":
            raise ValueError("must not name the metric (__name__): Vantage adds the names it reads")
        matchers.append((label, operator, quoted))
        position = found.end()
        if position < len(inner):
            if inner[position] != ",":
                raise ValueError(f"must separate label matchers with commas; after {label}{operator}{quoted} "
                                 f"comes {inner[position:position + 40]!r}")
            position += 1
    if not matchers:
        raise ValueError("must name at least one label matcher, e.g. {job=\"mlserver\"}")
    if all(_matches_empty(operator, _matcher_value(quoted)) for _, operator, quoted in matchers):
        raise ValueError("must have at least one matcher that does not match every series (such as "
                         "job=\"mlserver\"): Prometheus refuses a selector that matches the empty label")
    return "{" + ", ".join(f"{label}{operator}{quoted}" for label, operator, quoted in matchers) + "}"


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus duration such as ``5m`` or ``1h30m``."""
    return sum(int(number) * _DURATION_SECONDS[unit] for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", value))


class MetricsConfig(_Strict):
    """Where the service's Prometheus metrics come from: its own endpoint, scraped, or a Prometheus server."""

    url: str | None = Field(
        None, description="Prometheus text endpoint Vantage scrapes, e.g. http://host:8080/metrics.")
    prometheus: str | None = Field(
        None, description="Base URL of a Prometheus server that scrapes the service, e.g. http://prometheus:9090; "
                          "read through its HTTP API instead of scraping.")
    selector: str | None = Field(
        None, description='Label matchers of the service\'s series in that Prometheus, e.g. {job="mlserver"}.')
    rate_window: str = Field(
        "5m", description="Shortest range rate() looks over (a Prometheus duration); at least 4 scrape intervals.")
    query_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds the Prometheus calls of one chart may take together.")
    requests: str | None = Field(
        None, description="Counter of handled requests; none = recognised (prometheus_client, MLServer, Triton).")
    latency: str | None = Field(
        None, description="Histogram of request durations in seconds; none = recognised (also KServe).")
    status_label: str | None = Field(
        None, description="Label of the request counter holding the HTTP status; none = the server's own.")
    path_regex: str = Field(
        ".*", description="Only series whose path/handler label matches count (e.g. '.*infer|.*predict')."
    )
    path_label: str | None = Field(None, description="Label holding the request path, used with path_regex.")

    @property
    def source(self) -> str:
        """Where the series are read, in words: the scraped URL, or the Prometheus server and the selector."""
        return f"{self.url}" if self.prometheus is None else f"Prometheus at {self.prometheus} for {self.selector}"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value, allow_query=True)

    @field_validator("prometheus")
    @classmethod
    def _check_prometheus(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value).rstrip("/")

    @field_validator("selector")
    @classmethod
    def _check_selector(cls, value: str | None) -> str | None:
        return None if value is None else check_selector(value)

    @field_validator("rate_window")
    @classmethod
    def _check_rate_window(cls, value: str) -> str:
        if not _PROM_DURATION.match(value) or duration_seconds(value) < 1:
            raise ValueError("must be a Prometheus duration of at least 1 s, such as 30s, 5m or 1h30m")
        return value

    @model_validator(mode="after")
    def _check_source(self) -> MetricsConfig:
        if self.selector is not None and self.prometheus is None:
            raise ValueError("selector is read with prometheus (the Prometheus server's URL); set it, or "
                             "leave selector out to scrape url")
        if self.url is None and self.prometheus is None:
            raise ValueError("set url (an endpoint Vantage scrapes, e.g. http://host:8082/metrics) or "
                             "prometheus and selector (a Prometheus server that scrapes the service)")
        if self.url is not None and self.prometheus is not None:
            raise ValueError("set url (Vantage scrapes the service) or prometheus (Vantage reads your "
                             "Prometheus instead of scraping), not both")
        if self.prometheus is not None and self.selector is None:
            raise ValueError('prometheus needs selector, the labels of the service\'s series there, e.g. '
                             'selector = \'{job="mlserver"}\'')
        return self


class SloConfig(_Strict):
    """Service-level objectives used for error budgets and burn rates."""

    availability: float = Field(0.995, gt=0, lt=1, description="Share of polls that must be up.")
    latency_ms: float = Field(500.0, gt=0, description="Canary predictions slower than this are 'slow'.")
    latency_target: float = Field(
        0.99, gt=0, lt=1, description="Share of canary predictions that must be faster than latency_ms."
    )
    window_days: int = Field(30, ge=1, le=90, description="SLO period for the error budget.")


class DriftConfig(_Strict):
    """How drift is measured for a service's features and predictions."""

    methods: dict[str, str] = Field(
        default_factory=dict,
        description='Per-column method overriding "auto", e.g. {income = "psi", channel = "chi_square"}.')
    thresholds: dict[str, float] = Field(
        default_factory=dict, description='Per-method threshold overriding the default, e.g. {psi = 0.25}.')
    drift_share: float = Field(
        0.5, gt=0, le=1, description="Data set drifts when at least this share of features drift.")
    window: str = Field("day", description='Default window: "hour", "day", "week" or a row count such as "10000".')

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        return _check_window_value(value)

    @model_validator(mode="after")
    def _check_methods(self) -> DriftConfig:
        from monitoring.drift import check_drift_settings  # the registry lives with the methods

        check_drift_settings(methods=self.methods, thresholds=self.thresholds)
        return self


def _check_window_value(value: str) -> str:
    from monitoring.windows import parse_window

    try:
        return str(parse_window(value))
    except ValueError:
        raise ValueError("must be 'hour', 'day', 'week' or a positive number of rows such as '10000'") from None


class PredictionLogConfig(_Strict):
    """A prediction-log file, for services that do not log through Vantage."""

    path: ConfigPath = Field(description="CSV, Parquet or JSON Lines file, one row per prediction.")
    timestamp: str = Field("ts", description="Column with the prediction time (Unix seconds or ISO text).")
    id: str | None = Field("id", description="Column with the prediction id (joins ground-truth labels).")
    prediction: str | None = Field("prediction", description="Column with the predicted class or value.")
    score: str | None = Field(None, description="Column with the positive-class probability, if any.")


class ExplainConfig(_Strict):
    """Where explanations get the model from."""

    source: Literal["auto", "local", "remote"] = Field(
        "auto", description="auto = the local artifact when one is configured, else the service as a black box.")
    artifact: ConfigPath | None = Field(None, description="joblib or skops file, or MLflow model directory.")
    trust_pickle: bool = Field(
        False, description="Allow loading a joblib/pickle artifact (runs code from the file; trust it first).")
    background_rows: int = Field(100, ge=10, le=1000, description="Background sample for model-agnostic SHAP.")
    max_rows_per_second: float = Field(
        2000.0, gt=0, le=1_000_000, description="Model rows per second that explanations, What-if and baselines "
                                                "may send the service, shared by every user of one dashboard.")
    max_rows_per_request: int = Field(
        500, ge=1, le=50_000, description="Rows in one request of an explanation, What-if or baseline.")
    max_rows_per_computation: int = Field(
        200_000, ge=1, le=100_000_000, description="Model rows one explanation may send in all; a larger one is "
                                                   "refused with its estimate.")
    confirm_rows_above: int = Field(
        20_000, ge=0, le=100_000_000, description="Explanations estimated above this many model rows wait for the "
                                                  "user's confirmation; 0 = always ask.")


PERFORMANCE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2")
"""Metrics a performance baseline may name."""


class LabelsConfig(_Strict):
    """A ground-truth label file, for labels that do not reach the store."""

    path: ConfigPath = Field(description="CSV or Parquet file, one row per label.")
    id: str = Field("prediction_id", description="Column with the id of the prediction the label belongs to.")
    label: str = Field("label", description="Column with the true class or value.")
    ts: str | None = Field(
        None, description="Column with the time the label arrived (Unix seconds or ISO text); none = all arrived.")


class PerformanceConfig(_Strict):
    """How model performance is measured once ground truth arrives."""

    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto = classification when predictions are a few whole numbers or a score is logged.")
    window: str = Field("day", description='Default window: "hour", "day", "week" or a row count such as "10000".')
    threshold: float = Field(
        0.5, ge=0, le=1, description="Score from which the confusion matrix counts a positive decision.")
    min_labels: int = Field(30, ge=1, description="Windows with fewer labelled predictions are marked too small.")
    judged_days: float = Field(
        7.0, gt=0, le=365, description="Days of labelled predictions pooled for the verdict against the baseline.")
    baseline: dict[str, float] = Field(
        default_factory=dict, description="Expected metric values, e.g. {accuracy = 0.87, roc_auc = 0.85}.")
    cost_false_positive: float | None = Field(None, ge=0, description="Cost of one false positive decision.")
    cost_false_negative: float | None = Field(None, ge=0, description="Cost of one false negative decision.")
    value_correct: float | None = Field(None, ge=0, description="Value of one correct decision.")
    currency: str = Field("", description='Unit shown with money, e.g. "EUR" or "$".')

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        return _check_window_value(value)

    @field_validator("baseline")
    @classmethod
    def _check_baseline(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(PERFORMANCE_METRICS))
        if unknown:
            raise ValueError(f"metric names must be among {', '.join(PERFORMANCE_METRICS)}; got {', '.join(unknown)}")
        return value

    @property
    def has_business_values(self) -> bool:
        """True when any cost or value is set, so confusion counts can be turned into money."""
        return any(v is not None for v in (self.cost_false_positive, self.cost_false_negative, self.value_correct))


class ServiceConfig(_Strict):
    """One prediction service to poll."""

    name: str = Field(description="Unique short name (letters, digits, '-', '_', '.').")
    url: str = Field(description="Base URL, e.g. http://127.0.0.1:8080.")
    protocol: Literal["v2", "mlflow", "rest"] = Field(description="Serving protocol: v2, mlflow or rest.")
    model: str | None = Field(None, description="Model name (required for protocol v2).")
    model_version: str | None = Field(None, description="Version to show when the server does not tell.")
    poll_interval: float = Field(10.0, ge=1, le=3600, description="Seconds between polls.")
    timeout: float = Field(2.0, gt=0, le=120, description="Seconds before a health call is abandoned.")
    predict_timeout: float = Field(10.0, gt=0, le=600, description="Seconds before a prediction call is abandoned.")
    retries: int = Field(1, ge=0, le=5, description="Retries of failed GET calls (never of POSTs), within timeout.")
    max_response_mb: float = Field(
        16.0, gt=0, le=1024, description="Largest answer read from a prediction, metadata or metrics call (MB); "
                                         "health checks read at most 64 KB and judge the status alone.")
    max_batch_rows: int = Field(1000, ge=1, le=1_000_000, description="Rows per prediction request.")
    v2_inputs: Literal["columns", "tensor"] = Field(
        "columns", description="v2 request shape: one input per column, or one 2-D tensor."
    )
    v2_outputs: tuple[str, ...] = Field(
        (), description='v2 outputs to request, e.g. ["predict", "predict_proba"]; empty = server default.'
    )
    rest: RestPaths = Field(default_factory=RestPaths, description="Paths for protocol rest.")
    metrics: MetricsConfig | None = Field(None, description="Prometheus metrics to scrape (optional).")
    auth: AuthConfig | None = Field(None, description="Header sent with every call (optional).")
    slo: SloConfig = Field(default_factory=SloConfig, description="Objectives for the health page.")
    reference: ConfigPath | None = Field(None, description="Reference (training) data file: CSV or Parquet.")
    target: str | None = Field(None, description="Target column in the reference data.")
    features: tuple[str, ...] = Field((), description="Feature names in the order the model expects.")
    personal: tuple[str, ...] = Field(
        (), description="Columns holding personal data (features, reference or log columns): masked in every table, "
                        "chart label, download, report and log line (monitoring.privacy).")
    canary_rows: int = Field(1, ge=1, le=100, description="Rows of reference data sent as the canary prediction.")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift methods and thresholds.")
    prediction_log: PredictionLogConfig | None = Field(
        None, description="Prediction-log file, for services that do not log through Vantage.")
    logged_as: str | None = Field(
        None, description="Name under which this service's predictions and labels are logged in the store, when "
                          "it is a second endpoint of a model logged under another name; none = its own name.")
    explain: ExplainConfig = Field(default_factory=ExplainConfig, description="Model source for explanations.")
    labels: LabelsConfig | None = Field(
        None, description="Ground-truth label file; none = labels in the store (e.g. from POST /labels).")
    performance: PerformanceConfig = Field(
        default_factory=PerformanceConfig, description="Performance windows, baseline and business values.")

    @property
    def log_name(self) -> str:
        """The name its prediction log and labels have in the store (``logged_as``, else ``name``)."""
        return self.logged_as or self.name

    @field_validator("name", "logged_as")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_PATTERN.match(value):
            raise ValueError(
                "must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
            )
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_http_url(value).rstrip("/")

    @field_validator("personal")
    @classmethod
    def _check_personal(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from monitoring.privacy import RESERVED_COLUMNS

        if any(not name.strip() for name in value):
            raise ValueError("must be column names, e.g. [\"email\", \"zip\"]; an empty name was given")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"must name each column once; repeated: {', '.join(repeated)}")
        reserved = [name for name in value if name in RESERVED_COLUMNS]
        if reserved:
            raise ValueError(f"must be input columns, not {', '.join(reserved)}: the log's ids, times and the model's "
                             f"answers are shown on every page (reserved: {', '.join(RESERVED_COLUMNS)})")
        return value

    @model_validator(mode="after")
    def _check_protocol_needs(self) -> ServiceConfig:
        if self.protocol == "v2" and not self.model:
            raise ValueError("protocol 'v2' needs 'model' (the model name on the server)")
        if self.personal and self.features and not self.reference and self.prediction_log is None:
            known = {*self.features, *([self.target] if self.target else [])}
            unknown = [name for name in self.personal if name not in known]
            if unknown:  # with a reference or a log file the names are checked against their columns on the page
                raise ValueError(f"personal: {', '.join(unknown)} is not one of the features "
                                 f"({', '.join(self.features)}); with no reference or prediction-log file, personal "
                                 "columns must be features")
        return self

    def resolve(self, base_dir: Path) -> ServiceConfig:
        """Return a copy whose file paths (reference, prediction log, artifact, labels) are absolute."""

        def absolute(path: str | None) -> str | None:
            return path if path is None or Path(path).is_absolute() else str((base_dir / path).resolve())

        update: dict = {"reference": absolute(self.reference)}
        if self.prediction_log is not None:
            update["prediction_log"] = self.prediction_log.model_copy(
                update={"path": absolute(self.prediction_log.path)})
        update["explain"] = self.explain.model_copy(update={"artifact": absolute(self.explain.artifact)})
        if self.labels is not None:
            update["labels"] = self.labels.model_copy(update={"path": absolute(self.labels.path)})
        return self.model_copy(update=update)


class StoreConfig(_Strict):
    """Where probes, metrics, predictions and labels are kept."""

    url: str = Field(DEFAULT_STORE_URL, description="SQLAlchemy URL; sqlite:/// paths are relative to the config file.")
    log: str = Field(DEFAULT_LOG_URL, description="Where the prediction log is kept: 'store' (the SQL store's tables), "
                     "'duckdb:<directory>' (Parquet partitions, relative to the config file) or "
                     "'spark://<master>?path=<path>'.")
    raw_retention_hours: float = Field(48.0, ge=1, description="Raw probes older than this are downsampled.")
    retention_days: float = Field(30.0, ge=1, description="Downsampled history older than this is deleted.")
    rollup_minutes: int = Field(5, ge=1, le=60, description="Bucket size of downsampled probe history.")
    log_retention_days: float | None = Field(
        None, ge=1, description="Days of the prediction log kept in files (whole UTC days); unset keeps all.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_store_url(value)

    @field_validator("log")
    @classmethod
    def _check_log(cls, value: str) -> str:
        return check_log_url(value)


class AccessConfig(_Strict):
    """Who may see what once sign-in is set up (the sign-in itself is configured in secrets, never here)."""

    admins: tuple[str, ...] = Field((), description='E-mails or user names with every page, settings included.')
    analysts: tuple[str, ...] = Field(
        (), description="E-mails or user names with every data page, those that send traffic to the model too.")
    viewers: tuple[str, ...] = Field(
        ("*",), description='E-mails or user names with Overview and Service health; "*" = anyone signed in.')

    def role_of(self, identity: str | None) -> str | None:
        """The role of a signed-in ``identity`` (``"admin"``, ``"analyst"``, ``"viewer"``), None when it has none.

        Names compare without case; ``"*"`` in a list matches anyone signed in.
        """
        if not identity:
            return None
        who = identity.strip().lower()
        for role, names in (("admin", self.admins), ("analyst", self.analysts), ("viewer", self.viewers)):
            if "*" in names or who in {n.strip().lower() for n in names}:
                return role
        return None


class VantageConfig(_Strict):
    """The whole configuration file."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    services: tuple[ServiceConfig, ...] = Field(description="The services to poll, at least one.")
    access: AccessConfig = Field(default_factory=AccessConfig, description="Roles of the people who sign in.")
    source: str = Field("<text>", description="Where this configuration was read from.")

    @model_validator(mode="after")
    def _unique_names(self) -> VantageConfig:
        if not self.services:
            raise ValueError("services: add at least one [[services]] table")
        names = [s.name for s in self.services]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"services: names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def service(self, name: str) -> ServiceConfig:
        """Return the service called ``name``."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(f"no service named {name!r}; configured: {', '.join(s.name for s in self.services)}")


def _format_location(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item in ("function-after", "function-before") or str(item).startswith("literal["):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def _describe(error: dict, model: type[BaseModel] = VantageConfig) -> str:
    key = _format_location(error["loc"])
    received = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see the configuration reference in README.md)"
    if kind == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if key == "(top level)" and ": " in message:
        return message
    if kind == "literal_error":
        message = message.replace("Input should be", "accepted values are")
    if isinstance(received, dict | list):
        return f"{key}: {message}"
    return f"{key}: {message} (got {received!r})"


def parse_config(text: str, *, source: str = "<text>", base_dir: Path | None = None) -> VantageConfig:
    """Parse and validate configuration text.

    Parameters
    ----------
    text : str
        TOML text.
    source : str, default="<text>"
        Name used in error messages.
    base_dir : Path, optional
        Directory relative paths (reference files, SQLite files) are resolved against.

    Returns
    -------
    VantageConfig

    Raises
    ------
    ConfigError
        With one problem per wrong key.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    if "services" not in raw:
        raise ConfigError(source, ["services: required; add at least one [[services]] table"])
    try:
        config = VantageConfig.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None
    base = base_dir or Path.cwd()
    services = tuple(s.resolve(base) for s in config.services)
    store = config.store
    if store.url.startswith("sqlite:///") and not store.url.startswith("sqlite:////"):
        relative = store.url.removeprefix("sqlite:///")
        store = store.model_copy(update={"url": f"sqlite:///{(base / relative).resolve()}"})
    if store.log.startswith("duckdb:") and not Path(store.log.removeprefix("duckdb:")).is_absolute():
        store = store.model_copy(update={"log": f"duckdb:{(base / store.log.removeprefix('duckdb:')).resolve()}"})
    return config.model_copy(update={"services": services, "store": store})


def load_config(path: str | os.PathLike) -> VantageConfig:
    """Read and validate the TOML file at ``path``.

    Raises
    ------
    ConfigError
        When the file is missing, unreadable or invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), [f"cannot be read: {exc}"]) from None
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError(repr(str(file)), [f"not a usable file path: {exc}"]) from None
    return parse_config(text, source=str(file), base_dir=file.resolve().parent)


def config_path_from(argv: list[str], environ: dict[str, str] | None = None) -> str | None:
    """Find the configuration path in ``--config PATH`` / ``--config=PATH`` or ``VANTAGE_CONFIG``.

    Returns None when neither is given, which means: run the embedded demo.
    """
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    value = (environ if environ is not None else os.environ).get(CONFIG_ENV_VAR)
    return value or None


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None = None
                       ) -> tuple[argparse.Namespace, str]:
    """Parse a Vantage command line, set up logging and find the configuration (the collector's, the proxy's).

    Parameters
    ----------
    parser : ArgumentParser
        Has ``--config`` and ``-v``/``--verbose`` among its arguments.
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    args : Namespace
    path : str
        ``--config``, else ``VANTAGE_CONFIG``.

    Notes
    -----
    Logs at DEBUG with ``--verbose``, INFO otherwise. Exits with the parser's usage error when
    neither ``--config`` nor ``VANTAGE_CONFIG`` names a configuration.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = args.config or config_path_from([], None)
    if not path:
        parser.error("give --config PATH or set VANTAGE_CONFIG")
    return args, path


def documented_keys() -> dict[str, list[str]]:
    """Return every configuration key per table, used to check the README documents them all."""
    tables = {
        "access": AccessConfig,
        "store": StoreConfig,
        "services": ServiceConfig,
        "services.rest": RestPaths,
        "services.metrics": MetricsConfig,
        "services.auth": AuthConfig,
        "services.slo": SloConfig,
        "services.drift": DriftConfig,
        "services.prediction_log": PredictionLogConfig,
        "services.explain": ExplainConfig,
        "services.labels": LabelsConfig,
        "services.performance": PerformanceConfig,
    }
    return {table: list(model.model_fields) for table, model in tables.items()}
