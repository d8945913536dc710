"""Benchmarks of the foundation: collector CPU per probe, health-page queries over 30 days.

Usage::

    python benchmarks/health.py [--quick] [--seconds 40] [--services 10] [--days 30]

1. **Collector CPU.** The demo service runs in a separate process; this process runs only a
   :class:`~monitoring.collector.Collector` polling ``--services`` services (all pointed at
   the demo service, each with its health checks, a canary prediction and a metrics
   scrape). CPU time of this process over the run gives CPU per poll and per probe, and the
   share of one core needed for the target load (10 services every 10 s). Target: ≤ 2 %.
2. **Health-page queries.** A store filled with 30 days of 10-second polls for 10 services
   (the last 48 h raw, the rest downsampled as the collector leaves it) is queried the way
   the Service-health page does: the live panel (:func:`service_health`), the 30-day charts
   (:func:`time_series`) and the fleet table (:func:`fleet_overview`). Target: ≤ 300 ms.

Prints a table and writes the ``health`` section of ``benchmarks/results.md``; with ``--quick``
(6 s of polling 3 services, 3 days of history: seconds, as ``.ci/run`` runs it) the section goes
to the git-ignored ``var/bench/results-quick.md`` instead (see :mod:`benchmarks`). No peers.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, write_section  # noqa: E402
from demo.runtime import free_port  # noqa: E402
from monitoring.collector import Collector  # noqa: E402
from monitoring.config import parse_config  # noqa: E402
from monitoring.service_health import fleet_overview, service_health, time_series  # noqa: E402
from monitoring.store import Store, latency_histogram  # noqa: E402
from monitoring.store_schema import probe_rollups, probes  # noqa: E402

DAY = 86400.0
CHECKS = ("live", "ready", "model_ready", "predict", "metrics")


def start_demo_service(var: Path) -> tuple[subprocess.Popen, str]:
    """Start the demo service (no faults, no replay) in its own process on a free 127.0.0.1 port.

    Parameters
    ----------
    var : Path
        Its working folder (model artifact, store).

    Returns
    -------
    tuple of (subprocess.Popen, str)
        The process (the caller stops it) and the service's base URL.
    """
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "demo.runtime", "--port", str(port), "--var", str(var),
                                "--no-faults", "--no-replay"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import requests

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return process, url
        except requests.RequestException:
            time.sleep(0.5)
    process.kill()
    process.wait(timeout=20)
    raise RuntimeError("the demo service did not start")


def collector_cpu(seconds: float, n_services: int, interval: float, var: Path) -> dict:
    """CPU of a collector polling ``n_services`` services (all the demo service) for ``seconds``.

    Parameters
    ----------
    seconds : float
        How long the collector runs.
    n_services : int
        Services configured.
    interval : float
        Their poll interval in seconds.
    var : Path
        Working folder of the demo service and the collector's store.

    Returns
    -------
    dict
        Polls, probe rows, CPU and wall seconds, CPU per poll and per probe, share of a core.
    """
    process, url = start_demo_service(var)
    try:
        from demo.data import FEATURES

        features = ", ".join(f'"{f}"' for f in FEATURES)
        reference = var / "demo" / "reference.parquet"
        services = "".join(f"""
[[services]]
name = "svc-{i}"
url = "{url}"
protocol = "v2"
model = "credit-risk"
poll_interval = {interval}
v2_outputs = ["predict", "predict_proba"]
reference = "{reference}"
features = [{features}]
[services.metrics]
url = "{url}/metrics"
""" for i in range(n_services))
        config = parse_config(f'[store]\nurl = "sqlite:///{var / "bench.db"}"\n' + services)
        collector = Collector(config)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        collector.start()
        time.sleep(seconds)
        collector.stop()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        store = collector.store
        polls = sum(len(store.read_probes(s.name, since=0, checks=["poll"])) for s in config.services)
        rows = sum(len(store.read_probes(s.name, since=0)) for s in config.services)
        per_poll = cpu / polls
        return {"polls": polls, "probe_rows": rows, "cpu_s": cpu, "wall_s": wall,
                "cpu_ms_per_poll": per_poll * 1000, "cpu_ms_per_probe": cpu / rows * 1000,
                "core_share_10x10s": per_poll * 10 / 10.0}
    finally:
        process.terminate()
        process.wait(timeout=20)


def fill_store(store: Store, *, n_services: int, days: int, now: float, seed: int = 0) -> int:
    """Write ``days`` days of 10-second polls: the last 48 h raw, older ones as rollups.

    Parameters
    ----------
    store : Store
        The store to fill.
    n_services : int
        Services (``svc-0``, ``svc-1``, …).
    days : int
        Days of history before ``now``.
    now : float
        End of the history (Unix seconds).
    seed : int, default=0
        Seed of the random states and latencies.

    Returns
    -------
    int
        Probe rows represented (raw rows plus the rows the rollups stand for).
    """
    rng = np.random.default_rng(seed)
    raw_since = now - 48 * 3600
    width = 300.0
    written = 0
    with store.engine.begin() as conn:
        for s in range(n_services):
            service = f"svc-{s}"
            ts = np.arange(raw_since, now, 10.0)
            state = rng.choice(["up", "degraded", "down"], p=[0.985, 0.01, 0.005], size=len(ts))
            latency = rng.lognormal(np.log(40), 0.4, size=len(ts))
            rows = []
            for check in (*CHECKS, "poll"):
                ok = state != "down" if check in ("poll", "live") else np.ones(len(ts), dtype=bool)
                rows.append(pd.DataFrame({
                    "ts": ts, "service": service, "check": check, "ok": ok,
                    "state": state if check == "poll" else None,
                    "status": 200, "latency_ms": latency if check == "predict" else latency / 8,
                    "error": np.where(state == "up", "all checks passed", "scripted") if check == "poll" else None,
                }))
            frame = pd.concat(rows, ignore_index=True)
            frame = frame.astype(object).where(frame.notna(), None)
            conn.execute(probes.insert(), frame.to_dict("records"))
            written += len(frame)
            first_bucket = np.floor((now - days * DAY) / width) * width
            buckets = np.arange(first_bucket, np.floor(raw_since / width) * width, width)
            rollups = []
            for check in (*CHECKS, "poll"):
                n = np.full(len(buckets), 30)
                down = rng.binomial(30, 0.005, size=len(buckets))
                degraded = rng.binomial(30, 0.01, size=len(buckets)) if check == "poll" else np.zeros(len(buckets), int)
                ok = n - down if check in ("poll", "live") else n
                for b, n_b, ok_b, dg in zip(buckets, n, ok, degraded, strict=True):
                    lat = rng.lognormal(np.log(40), 0.4, size=30) / (1 if check == "predict" else 8)
                    rollups.append({"service": service, "check": check, "bucket_ts": float(b), "n": int(n_b),
                                    "n_ok": int(ok_b), "n_degraded": int(dg), "latency_sum_ms": float(lat.sum()),
                                    "latency_max_ms": float(lat.max()),
                                    "latency_hist": ",".join(map(str, latency_histogram(lat.tolist())))})
            conn.execute(probe_rollups.insert(), rollups)
            written += len(rollups) * 30
    return written


def time_call(function, repeat: int = 5) -> float:
    """Median wall time of ``function()`` over ``repeat`` calls.

    Parameters
    ----------
    function : callable
        Called without arguments.
    repeat : int, default=5
        Calls timed.

    Returns
    -------
    float
        Milliseconds.
    """
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def health_queries(n_services: int, days: int, var: Path) -> dict:
    """Time the Service-health page's queries over a store filled by :func:`fill_store`.

    Parameters
    ----------
    n_services : int
        Services in the stored history.
    days : int
        Days of history.
    var : Path
        Where the store's file goes.

    Returns
    -------
    dict
        Probe rows represented, fill time and each query's median milliseconds.
    """
    store = Store(f"sqlite:///{var / 'history.db'}")
    now = time.time()
    started = time.perf_counter()
    represented = fill_store(store, n_services=n_services, days=days, now=now)
    fill_s = time.perf_counter() - started
    config = parse_config("".join(
        f'[[services]]\nname = "svc-{i}"\nurl = "http://127.0.0.1:1"\nprotocol = "rest"\n' for i in range(n_services)))
    service = config.services[0]
    return {
        "probes_represented": represented,
        "fill_s": fill_s,
        "live_panel_ms": time_call(lambda: service_health(store, service, now=now)),
        "charts_24h_ms": time_call(lambda: time_series(store, service, window="24h", now=now)),
        "charts_30d_ms": time_call(lambda: time_series(store, service, window="30d", now=now)),
        "fleet_table_ms": time_call(lambda: fleet_overview(store, config.services, now=now)),
    }


def main() -> None:
    """Run both measurements, print the table and write the ``health`` section."""
    args = parse_args(__doc__, {
        "seconds": Size(40.0, 6.0, "collector run time in seconds"),
        "services": Size(10, 3, "services polled, and services in the stored history"),
        "interval": Size(2.0, 2.0, "poll interval during the CPU run (shorter than 10 s to get more polls)"),
        "days": Size(30, 3, "days of stored history"),
    })
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        cpu = collector_cpu(args.seconds, args.services, args.interval, var)
        queries = health_queries(args.services, args.days, var)
    window = "30 d" if args.days >= 30 else f"{args.days} d (30-day window)"
    rows = [
        ("collector CPU per poll (health + canary + scrape)", f"{cpu['cpu_ms_per_poll']:.1f} ms", ""),
        ("collector CPU per probe row", f"{cpu['cpu_ms_per_probe']:.2f} ms", ""),
        ("collector share of one core, 10 services every 10 s", f"{cpu['core_share_10x10s'] * 100:.2f} %", "≤ 2 %"),
        ("health page: live panel of one service", f"{queries['live_panel_ms']:.0f} ms", "≤ 300 ms"),
        ("health page: charts, 24 h", f"{queries['charts_24h_ms']:.0f} ms", "≤ 300 ms"),
        (f"health page: charts, {window}", f"{queries['charts_30d_ms']:.0f} ms", "≤ 300 ms"),
        (f"health page: fleet table of {args.services} services", f"{queries['fleet_table_ms']:.0f} ms", "≤ 300 ms"),
    ]
    header = ("measure", "result", "target")
    print_table(rows, header)
    write_section("health", "Foundation: collector and Service-health page", "\n".join([
        f"Collector: {args.services} services polled every {args.interval:g} s for {cpu['wall_s']:.0f} s "
        f"({cpu['polls']} polls, {cpu['probe_rows']} probe rows, {cpu['cpu_s']:.2f} s CPU); the demo service ran in "
        "another process. The share of a core is CPU per poll × 10 services / 10 s.", "",
        f"Health page: a SQLite store holding {args.days} days of 10-second polls for {args.services} services "
        f"({queries['probes_represented']:,} probe rows represented: the last 48 h raw, the rest as 5-minute "
        "rollups); median of 5 runs.", "",
        markdown_table(rows, header),
    ]), args=args)


if __name__ == "__main__":
    main()
