"""The traffic budget of black-box explanations: a token bucket of model rows per second shared by every
user, requests of a bounded size, a cap per computation, streamed masked rows; and, against a real
MLServer serving 30 features, a remote explanation that leaves its health checks and canary unharmed."""

from __future__ import annotations

import threading
import time
import tracemalloc
import urllib.request

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from explain import RemoteModel, ShapExplainer, open_model_source, partial_dependence, permutation_shap
from explain._budget import BudgetExceededError, RowBudget, paced_predict, rows_estimate, service_budget
from explain._permutation import plan_model_rows
from monitoring.clients import Predictions, ServiceError, make_client
from monitoring.config import ExplainConfig, ServiceConfig


class FakeClock:
    """A monotonic clock that moves only when someone sleeps (or the test moves it)."""

    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


class NoSleepClock(FakeClock):
    """A clock that stands still: every caller's wait is its reserved place in the queue."""

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)


class CountingClient:
    """A client answering from a local estimator, counting requests and their rows."""

    _predict_call = "POST /predict"

    def __init__(self, estimator):
        self.estimator = estimator
        self.sizes: list[int] = []
        self.session = type("Session", (), {"headers": {}})()

    def metadata(self):
        raise ServiceError("GET /model", "http", "HTTP 404: not found", status=404)

    def predict(self, X):
        self.sizes.append(len(X))
        proba = self.estimator.predict_proba(X)
        return Predictions(proba.argmax(axis=1), proba, 1.0, 1)

    def close(self):
        pass


def service(name="budgeted", **explain) -> ServiceConfig:
    return ServiceConfig(name=name, url="http://127.0.0.1:9", protocol="rest", explain=ExplainConfig(**explain))


def numeric(n=200, features=4, random_state=0):
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame(rng.normal(size=(n, features)), columns=[f"x{i}" for i in range(features)])
    y = (X.iloc[:, 0] + 0.5 * X.iloc[:, 1] * X.iloc[:, 2 % features] + rng.normal(0, 0.3, n) > 0).astype(int)
    return X, y


# -- the token bucket, on a fake clock --------------------------------------------------------


def test_a_full_bucket_lets_one_request_through_then_paces_at_the_rate():
    clock = FakeClock()
    budget = RowBudget(1000, burst=500, monotonic=clock.monotonic, sleep=clock.sleep)
    assert budget.acquire(500) == 0.0  # the bucket starts full
    assert budget.acquire(500) == pytest.approx(0.5)
    assert budget.acquire(250) == pytest.approx(0.25)
    clock.now += 10.0  # idle: the bucket refills, but never above its size
    assert budget.acquire(500) == 0.0
    assert budget.acquire(100) == pytest.approx(0.1)
    counters = budget.counters
    assert (counters.rows, counters.requests) == (1850, 5)
    assert counters.waited_s == pytest.approx(0.85)


def test_over_any_stretch_no_more_than_burst_plus_rate_times_time_goes_out():
    clock = FakeClock()
    budget = RowBudget(2000, burst=500, monotonic=clock.monotonic, sleep=clock.sleep)
    rng = np.random.default_rng(1)
    sent_at, sizes = [], []
    for _ in range(300):
        size = int(rng.integers(1, 501))
        budget.acquire(size)
        sent_at.append(clock.now)
        sizes.append(size)
        clock.now += float(rng.choice([0.0, 0.0, 0.01, 0.3]))  # callers think between requests now and then
    sent_at, sizes = np.asarray(sent_at), np.asarray(sizes)
    for i in range(0, 300, 17):
        for j in range(i, 300, 23):
            rows = sizes[i:j + 1].sum()
            assert rows <= 500 + 2000 * (sent_at[j] - sent_at[i]) + 1e-6


def test_two_users_share_one_budget_and_each_waits_for_their_place():
    clock = NoSleepClock()
    budget = RowBudget(1000, burst=100, monotonic=clock.monotonic, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def user():
        for _ in range(10):
            wait = budget.acquire(100)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=user) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # 20 requests of 100 rows at 1,000 rows/s: one slot every 0.1 s, whoever asks
    assert sorted(round(w, 6) for w in waits) == [round(0.1 * k, 6) for k in range(20)]


def test_the_budget_of_a_service_is_one_per_process_and_follows_its_settings():
    first, again = service_budget(service("shared")), service_budget(service("shared"))
    assert first is again
    assert service_budget(service("shared", max_rows_per_second=10)) is not first
    assert service_budget(service("other")) is not first
    assert (first.rows_per_second, first.burst) == (2000.0, 500)  # the conservative defaults


def test_budget_settings_are_validated_with_messages():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_rows_per_second"):
        ExplainConfig(max_rows_per_second=0)
    with pytest.raises(ValidationError, match="max_rows_per_request"):
        ExplainConfig(max_rows_per_request=60_000)
    with pytest.raises(ValueError, match="rows_per_second must be > 0"):
        RowBudget(0, burst=1)


def test_the_estimate_speaks_of_rows_and_time():
    assert rows_estimate(service(), 60_000) == "about 60,000 model rows, ~30 s at 2,000 rows/s"
    assert rows_estimate(service(max_rows_per_second=100), 60_000) == "about 60,000 model rows, ~10 min at 100 rows/s"


# -- black boxes behind the budget -----------------------------------------------------------


def test_requests_hold_at_most_max_rows_per_request_and_progress_counts_model_rows():
    X, y = numeric(300)
    client = CountingClient(GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y))
    clock = FakeClock()
    budget = RowBudget(1000, burst=300, monotonic=clock.monotonic, sleep=clock.sleep)
    remote = RemoteModel(service(max_rows_per_request=300), features=list(X.columns), client=client, budget=budget)
    texts = []
    answers = remote.predict_batches([X.iloc[:250], X.iloc[:250], X.iloc[:100]],
                                     progress=lambda f, t: texts.append((f, t)))
    assert [len(a[0]) for a in answers] == [250, 250, 100]
    assert client.sizes == [300, 300]  # rows of several frames packed into full requests
    np.testing.assert_allclose(answers[1][1], client.estimator.predict_proba(X.iloc[:250]))
    assert texts[0] == (0.0, "0 of 600 model rows") and texts[1] == (0.5, "300 of 600 model rows")
    assert texts[-1] == (1.0, "600 of 600 model rows, 2 request(s)")
    assert remote.rows_sent == 600 and remote.waited_s == pytest.approx(0.3) and clock.slept == [pytest.approx(0.3)]


def test_a_computation_above_the_cap_is_refused_before_any_request_with_its_estimate():
    X, y = numeric(features=6)
    client = CountingClient(GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y))
    remote = RemoteModel(service("capped", max_rows_per_computation=5_000), features=list(X.columns), client=client)
    explainer = ShapExplainer(remote, X, background_rows=50)
    needed = explainer.model_rows_needed(X.iloc[:10])
    assert needed > 5_000
    before = len(client.sizes)
    with pytest.raises(BudgetExceededError) as raised:
        explainer.explain(X.iloc[:10])
    assert len(client.sizes) == before  # nothing was sent
    message = raised.value.message
    assert f"about {needed:,} model rows from service capped" in message
    assert "max_rows_per_computation" in message and "5,000" in message
    with pytest.raises(BudgetExceededError):
        partial_dependence(remote, X, "x0", grid_resolution=50)  # 200 rows x 50 points
    assert len(client.sizes) == before


def test_the_planned_rows_are_the_rows_sent():
    X, y = numeric(features=5)
    client = CountingClient(GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y))
    remote = RemoteModel(service("planned", max_rows_per_second=1e6), features=list(X.columns), client=client)
    explainer = ShapExplainer(remote, X, background_rows=30)
    planned = explainer.model_rows_needed(X.iloc[:7])
    before = remote.rows_sent
    values = explainer.explain(X.iloc[:7])
    assert remote.rows_sent - before == planned == values.model_rows
    assert explainer.model_rows_needed(X.iloc[:7]) == planned - 30  # the background's outputs are known now


def test_the_baseline_scoring_waits_for_the_same_budget():
    config = service("baseline-paced", max_rows_per_second=1e6)
    budget = service_budget(config)
    before = budget.counters
    predict = paced_predict(config, lambda X: Predictions(np.zeros(len(X)), None, 1.0, 1))
    predict(pd.DataFrame({"a": range(40)}))
    after = budget.counters
    assert (after.rows - before.rows, after.requests - before.requests) == (40, 1)


# -- streamed masked rows -------------------------------------------------------------------


def _additive_model(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=float)
    return (values[:, 0] * values[:, 1] + np.sin(values).sum(axis=1)).reshape(-1, 1)


def test_streamed_values_do_not_depend_on_how_rows_are_cut_into_calls():
    X, _ = numeric(60, features=6)
    X["cat"] = np.where(X["x0"] > 0, 1.0, 0.0)  # duplicates among the masked rows
    background = X.iloc[:15]

    def predict(frames, progress):
        for k in range(len(frames)):
            yield _additive_model(frames[k])

    whole = permutation_shap(predict, X.iloc[20:26], background, n_permutations=3, max_rows_per_call=1_000_000)
    cut = permutation_shap(predict, X.iloc[20:26], background, n_permutations=3, max_rows_per_call=7)
    np.testing.assert_allclose(cut[0], whole[0], atol=1e-12)
    assert cut[3] == whole[3] == plan_model_rows(X.iloc[20:26], background, n_permutations=3)
    np.testing.assert_allclose(whole[1][0] + whole[0][:, :, 0].sum(axis=1), _additive_model(X.iloc[20:26])[:, 0],
                               atol=1e-10)


def test_masked_rows_are_streamed_not_materialised():
    X, _ = numeric(130, features=30)
    background = X.iloc[:100]
    largest_frame = [0]

    def predict(frames, progress):
        for k in range(len(frames)):
            frame = frames[k]
            largest_frame[0] = max(largest_frame[0], len(frame))
            yield _additive_model(frame)

    peaks, sent = {}, {}
    for n_rows in (2, 20):
        rows = X.iloc[100:100 + n_rows]
        tracemalloc.start()
        try:
            values, _, _, sent[n_rows], _ = permutation_shap(predict, rows, background, n_permutations=10,
                                                             max_rows_per_call=5_000)
            peaks[n_rows] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert sent[n_rows] == plan_model_rows(rows, background, n_permutations=10)
    assert sent[20] > 1_000_000  # ~57,000 masked rows per explained row
    materialised = sent[20] * 30 * 4  # every masked row's integer codes at once, as before
    assert peaks[20] < 1.3 * peaks[2], peaks  # memory does not grow with the rows explained
    assert peaks[20] < materialised / 3, (peaks, materialised)
    assert largest_frame[0] == 5_000 and values.shape == (20, 30, 1)


# -- against a real MLServer of 30 features ------------------------------------------------


def _poll(url: str, timeout: float) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout) as response:
            ok = response.status == 200
    except OSError:
        ok = False
    return ok, time.perf_counter() - started


@pytest.mark.integration
@pytest.mark.exclusive
def test_a_remote_explanation_leaves_the_servers_health_checks_and_canary_within_their_limits(mlserver_wide_server):
    server = mlserver_wide_server
    reference = pd.read_csv(server.reference)
    features = [c for c in reference.columns if c != "target"]
    config = ServiceConfig(name="breast-cancer-budget", url=server.url, protocol="v2", model=server.model,
                           features=tuple(features), explain=ExplainConfig(
                               source="remote", max_rows_per_second=1000, max_rows_per_request=250))
    remote = open_model_source(config, reference[features]).model
    assert isinstance(remote, RemoteModel) and remote.binary
    explainer = ShapExplainer(remote, reference[features], background_rows=20, n_permutations=2)
    explainer.warm_up()
    rows = reference[features].iloc[[3, 50, 120]]
    planned = explainer.model_rows_needed(rows)
    assert 5_000 < planned < 20_000
    progress: list[str] = []
    outcome: dict = {}
    sent_before, waited_before = remote.rows_sent, remote.waited_s

    def explain():
        started = time.perf_counter()
        try:
            outcome["values"] = explainer.explain(rows, progress=lambda f, t: progress.append(t))
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    canary = make_client(config)
    canary_row = reference[features].iloc[[7]]
    health, canaries = [], []
    worker = threading.Thread(target=explain, daemon=True)
    worker.start()
    deadline = time.monotonic() + 120
    while worker.is_alive() and time.monotonic() < deadline:
        health.append(_poll(f"{server.url}/v2/health/ready", config.timeout))
        started = time.perf_counter()
        canary.predict(canary_row)
        canaries.append(time.perf_counter() - started)
        time.sleep(0.2)
    worker.join(5)
    canary.close()
    assert "error" not in outcome, outcome.get("error")
    values = outcome["values"]
    assert len(health) >= 10  # the explanation ran long enough to be watched
    assert all(ok for ok, _ in health)
    assert max(s for _, s in health) < config.timeout, max(s for _, s in health)
    assert max(canaries) * 1000 < config.slo.latency_ms, max(canaries)
    sent = remote.rows_sent - sent_before
    assert sent == planned == values.model_rows
    assert sent / outcome["seconds"] <= 1000 * 1.1, (sent, outcome["seconds"])
    assert remote.waited_s - waited_before > 0
    assert any(f"of {planned:,} model rows" in text for text in progress)
    assert progress[0] == f"about {planned:,} model rows, ~{planned / 1000:.0f} s at 1,000 rows/s"
    np.testing.assert_allclose(values.base_values[0] + values.values[:, :, 0].sum(axis=1), values.outputs(0),
                               atol=1e-9)
    assert server.alive()
