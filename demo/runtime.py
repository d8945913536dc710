"""Starts the whole embedded demo inside the current process.

``streamlit run dashboard/app.py`` with no configuration calls :func:`start_demo`, which

1. trains the demo model on the synthetic data set (first start only; later starts load it),
2. serves it with the reference FastAPI service (:mod:`demo.service`) on a free 127.0.0.1
   port, in a background thread,
3. writes the matching Vantage configuration to ``var/demo/vantage.toml`` (an example of a
   real configuration: two services, the same model over v2 and over plain REST),
4. starts the traffic replayer (back-fill, then live traffic) and returns; the caller starts
   the collector on the returned configuration.

It can also run on its own, as a template service for trying Vantage's collector::

    python -m demo.runtime --port 8080
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from demo.data import TARGET
from demo.model import DemoModel, load_or_train
from demo.replayer import DAY, TrafficReplayer
from demo.service import FaultSchedule, ServedModel, create_app
from monitoring.clients import V2Client, make_client
from monitoring.clock import Clock, SystemClock
from monitoring.config import DEFAULT_LOG_URL, VantageConfig, parse_config
from monitoring.store import Store

log = logging.getLogger(__name__)

SERVICE_NAME = "credit-risk"
MODEL_NAME = "credit-risk"
HISTORY_DAYS = 28.0


@dataclass
class DemoRuntime:
    """A running demo: its model, server thread, replayer and the configuration to poll it."""

    config: VantageConfig
    model: DemoModel
    server: uvicorn.Server
    thread: threading.Thread
    replayer: TrafficReplayer | None
    store: Store
    url: str
    app: object = None

    def flush_predictions(self) -> None:
        """Write the predictions the service has queued for its log, now."""
        logger = getattr(getattr(self.app, "state", None), "prediction_logger", None)
        if logger is not None:
            logger.flush()

    def stop(self) -> None:
        """Stop the replayer and the server (which drains the prediction log)."""
        if self.replayer is not None:
            self.replayer.stop()
        self.server.should_exit = True
        self.thread.join(timeout=15)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_config_text(*, url: str, store_url: str, model: DemoModel, poll_interval: float = 5.0,
                     log_url: str = DEFAULT_LOG_URL) -> str:
    """The Vantage configuration that watches the demo service (TOML text)."""
    features = ", ".join(f'"{f}"' for f in model.features)
    metrics = model.metrics
    explain = ("" if model.skops_path is None else
               "\n[services.explain]                         # explained from the model file, checked against it\n"
               f'artifact = "{model.skops_path}"\n')
    return f"""\
# Written by the embedded demo; an example of a real configuration.
[store]
url = "{store_url}"
log = "{log_url}"                   # the prediction log: Parquet partitions read by DuckDB

[[services]]
name = "{SERVICE_NAME}"
url = "{url}"
protocol = "v2"
model = "{MODEL_NAME}"
poll_interval = {poll_interval}
timeout = 2.0
v2_outputs = ["predict", "predict_proba"]
reference = "{model.reference_path}"
target = "{TARGET}"
features = [{features}]

[services.metrics]
url = "{url}/metrics"
path_regex = ".*infer|.*predict"

[services.slo]
availability = 0.99
latency_ms = 300

[services.performance]
# measured on held-out data when the model was trained (the reference is its training data)
baseline = {{accuracy = {metrics["accuracy"]}, roc_auc = {metrics["roc_auc"]}, log_loss = {metrics["log_loss"]}}}

[services.explain]
source = "remote"                          # explained as a black box, through its v2 endpoint
# The demo service runs next to the dashboard and takes 100,000 rows per request, so its explanation
# traffic budget is far above the conservative default (2,000 model rows/s in requests of 500).
max_rows_per_second = 200000
max_rows_per_request = 50000
max_rows_per_computation = 2000000
confirm_rows_above = 500000

[[services]]
name = "{SERVICE_NAME}-rest"                # the same model's plain REST endpoint, on the same server
url = "{url}"
protocol = "rest"
poll_interval = {poll_interval * 2}
reference = "{model.reference_path}"
target = "{TARGET}"
features = [{features}]
logged_as = "{SERVICE_NAME}"               # both endpoints log into one prediction log: same data pages

[services.performance]
baseline = {{accuracy = {metrics["accuracy"]}, roc_auc = {metrics["roc_auc"]}, log_loss = {metrics["log_loss"]}}}

[services.rest]
health = "/health"
ready = "/ready"
predict = "/predict"
metadata = "/model"
{explain}"""


def offline_config_text(*, store_path: Path | str, model: DemoModel, service: str = "credit", extra: str = "") -> str:
    """Configuration for a service that logged demo traffic into ``store_path`` but is not running.

    For tests and benchmarks of the data pages (its health polls simply fail). ``extra`` is
    appended, e.g. ``[services.performance]`` settings or more services.
    """
    features = ", ".join(f'"{f}"' for f in model.features)
    return f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "{service}"
url = "http://127.0.0.1:9"
protocol = "rest"
poll_interval = 3600
reference = "{model.reference_path}"
features = [{features}]
{extra}"""


def _history_start(directory: Path, now: float) -> float:
    """Day 0 of the demo's history: fixed at the first start, so restarts continue it."""
    path = directory / "history.json"
    if path.exists():
        return float(json.loads(path.read_text())["history_start"])
    start = now - HISTORY_DAYS * DAY
    path.write_text(json.dumps({"history_start": start}))
    return start


def start_demo(var_dir: Path | str = "var", *, port: int = 0, faults: bool = True, replay: bool = True,
               poll_interval: float = 5.0, clock: Clock | None = None) -> DemoRuntime:
    """Train or load the demo model, serve it, start the replayer; return the running demo.

    Parameters
    ----------
    var_dir : path, default="var"
        Working folder (git-ignored): the store, the model artifact, the written config.
    port : int, default=0
        Port of the service; 0 picks a free one.
    faults : bool, default=True
        Whether the service plays its scripted faults (brief not-ready and slow spells).
    replay : bool, default=True
        Whether to back-fill history and send live traffic.
    poll_interval : float, default=5.0
        Poll interval written into the demo configuration.
    clock : Clock, optional
        Where the replayer's "now" comes from (:mod:`monitoring.clock`); the system clock by default.
    """
    var = Path(var_dir).resolve()
    directory = var / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = load_or_train(directory)
    store_url = f"sqlite:///{var / 'vantage.db'}"
    log_url = f"duckdb:{var / 'log'}"
    store = Store(store_url, log=log_url)
    served = ServedModel(model.pipeline, model.version, dict(model.features), name=MODEL_NAME)
    app = create_app(served, store=store, service_name=SERVICE_NAME,
                     faults=FaultSchedule() if faults else None)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name="vantage-demo-service")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the demo service did not start on {url}")
        time.sleep(0.05)
    text = demo_config_text(url=url, store_url=store_url, model=model, poll_interval=poll_interval,
                            log_url=log_url)
    (directory / "vantage.toml").write_text(text)
    config = parse_config(text, source=str(directory / "vantage.toml"), base_dir=directory)
    replayer = None
    if replay:
        client = make_client(config.service(SERVICE_NAME))
        assert isinstance(client, V2Client)
        clock = clock if clock is not None else SystemClock()
        replayer = TrafficReplayer(client, store, SERVICE_NAME, clock=clock,
                                   history_start=_history_start(directory, clock.now())).start()
    log.info("demo service up on %s after %.1f s", url, time.perf_counter() - started)
    return DemoRuntime(config=config, model=model, server=server, thread=thread, replayer=replayer,
                       store=store, url=url, app=app)


def main() -> None:
    """Run the demo service (and its replayer) until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m demo.runtime", description="Run the Vantage demo service.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--var", default=os.environ.get("VANTAGE_VAR", "var"))
    parser.add_argument("--no-faults", action="store_true", help="do not play the scripted faults")
    parser.add_argument("--no-replay", action="store_true", help="send no synthetic traffic")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = start_demo(args.var, port=args.port, faults=not args.no_faults, replay=not args.no_replay)
    print(f"demo service on {runtime.url}; configuration in {Path(args.var) / 'demo' / 'vantage.toml'}")
    try:
        while runtime.thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        runtime.stop()


if __name__ == "__main__":
    main()
