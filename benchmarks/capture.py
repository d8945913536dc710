"""Latency the capturing proxy adds: a v2 server called directly and through the proxy, side by side.

Usage::

    python benchmarks/capture.py [--quick] [--rate 200] [--seconds 40] [--block 2]

A v2 server that costs almost nothing (a raw ASGI app on uvicorn answering ``predict`` and
``predict_proba``, so that what is measured is the proxy, not a model) runs in one process and
``python -m monitoring.capture`` in another, in front of it, logging into a SQLite store. This
process sends one-row v2 ``infer`` requests at a fixed rate (open loop: request *i* leaves at
*i* / rate, whatever the earlier ones do) over keep-alive connections, alternating blocks of
``--block`` seconds sent directly and through the proxy, so that both see the same machine.
Latency is measured from sending to the last byte of the answer. A third kind of block goes
through the proxy while another connection holds the store's write lock (``BEGIN EXCLUSIVE``):
the requests must not wait for the store, and the rows must be written once it is free.

Targets at 200 requests per second: the proxy adds at most 2 ms at p50 and 5 ms at p99.
Prints a table and writes the ``capture`` section of ``benchmarks/results.md``; ``--quick``
(100 requests per second for 6 s) writes to ``var/bench/results-quick.md`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, wait_http, write_section  # noqa: E402
from demo.runtime import free_port  # noqa: E402

SERVE = """
import json, math, sys, uvicorn

async def app(scope, receive, send):
    # A v2 model server that costs almost nothing, so what is measured is the proxy, not the model.
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        request = json.loads(body)
        columns = {t["name"]: t["data"] for t in request["inputs"]}
        n = len(next(iter(columns.values())))
        scores = [1 / (1 + math.exp(-((columns["age"][i] or 40) - 40) / 10)) for i in range(n)]
        answer = {"model_name": "credit-risk", "model_version": "1", "id": request.get("id", "x"), "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [n], "data": [int(s > 0.5) for s in scores]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [n, 2],
             "data": [v for s in scores for v in (1 - s, s)]}]}
        out = json.dumps(answer).encode()
    else:
        out = b'{"live": true}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

CONFIG = """
[store]
url = "sqlite:///{store}"

[[services]]
name = "credit"
url = "{url}"
protocol = "v2"
model = "credit-risk"
reference = "{reference}"
target = "default"
"""


def start(command: list[str], log: Path, health_url: str) -> subprocess.Popen:
    """Start ``command`` in its own process group and wait for ``health_url`` to answer."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_http(health_url, 180)
    except Exception:
        stop(process)
        raise RuntimeError(f"{command[:3]} did not start: {log.read_text()[-2000:]}") from None
    return process


def stop(process: subprocess.Popen) -> None:
    """Terminate ``process`` (SIGTERM, then SIGKILL after 10 s)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def infer_body(var: Path) -> bytes:
    """One row of the reference as a v2 infer request, one input per column."""
    import pandas as pd

    reference = pd.read_parquet(var / "demo" / "reference.parquet")
    from demo.model import load_or_train

    features = load_or_train(var / "demo").features
    row = reference.iloc[0]
    inputs = [{"name": name, "shape": [1], "datatype": "FP64" if kind == "numeric" else "BYTES",
               "data": [None if pd.isna(row[name]) else (float(row[name]) if kind == "numeric" else str(row[name]))]}
              for name, kind in features.items()]
    return json.dumps({"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}).encode()


class Connections:
    """Keep-alive HTTP/1.1 connections to one server, reused one request at a time.

    A few lines of asyncio streams instead of an HTTP client library: the load generator must cost
    far less than what it measures (httpx spends about 0.6 ms of CPU per call, this 0.1 ms).
    """

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.idle: list = []

    async def post(self, raw: bytes) -> int:
        """Send a whole encoded request; read the answer; return its status."""
        reader, writer = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return int(head[9:12])

    def close(self) -> None:
        """Close the idle connections."""
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def encode(body: bytes) -> bytes:
    """A keep-alive HTTP/1.1 POST of ``body`` to the v2 infer path."""
    return (b"POST /v2/models/credit-risk/infer HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def run_blocks(blocks: list[tuple[str, str]], body: bytes, rate: float, block_s: float,
                     on_block=None) -> dict[str, dict]:
    """Send ``rate`` requests per second for ``block_s`` seconds per block; latencies (ms) per block kind.

    ``blocks`` is a list of ``(kind, base_url)``; ``on_block(kind, starting)`` is called before and after each.
    """
    raw = encode(body)
    pools = {url: Connections(url) for _, url in blocks}
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in blocks} | {"warm-up": []}
    errors: dict[str, int] = dict.fromkeys(latencies, 0)

    async def one(pool: Connections, kind: str) -> None:
        started = time.perf_counter()
        try:
            ok = await asyncio.wait_for(pool.post(raw), 10.0) == 200
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            ok = False
        if ok:
            latencies[kind].append((time.perf_counter() - started) * 1000.0)
        else:
            errors[kind] += 1

    for pool in pools.values():  # warm the connections and both processes
        await asyncio.gather(*(one(pool, "warm-up") for _ in range(20)))
    latencies.pop("warm-up", None)
    errors.pop("warm-up", None)
    n = max(1, int(rate * block_s))
    for kind, url in blocks:
        pools[url].close()  # uvicorn drops keep-alive connections idle for 5 s: start each block on fresh ones
        if on_block is not None:
            on_block(kind, True)
        tasks = []
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(pools[url], kind)))
        await asyncio.gather(*tasks)
        if on_block is not None:
            on_block(kind, False)
    for pool in pools.values():
        pool.close()
    return {"latencies": latencies, "errors": errors}


def count_rows(store: Path) -> int:
    """Rows in the captured prediction log (0 before the table exists)."""
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as conn:
        try:
            return conn.execute("select count(*) from predictions__credit").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def main() -> None:
    """Run the blocks, print the table and write the ``capture`` section."""
    args = parse_args(__doc__, {
        "rate": Size(200.0, 100.0, "requests per second"),
        "seconds": Size(40.0, 6.0, "seconds of traffic in all"),
        "block": Size(2.0, 1.0, "seconds per block"),
    })
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        var = ROOT / "var"
        from demo.model import load_or_train

        load_or_train(var / "demo")
        upstream_port, proxy_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{upstream_port}"
        proxy = f"http://127.0.0.1:{proxy_port}"
        store = work / "capture.db"
        config = work / "capture.toml"
        config.write_text(CONFIG.format(store=store, url=upstream, reference=var / "demo" / "reference.parquet"))
        server = start([sys.executable, "-c", SERVE, str(upstream_port)], work / "upstream.log",
                       f"{upstream}/v2/health/live")
        try:
            capture = start([sys.executable, "-m", "monitoring.capture", "--config", str(config), "--listen",
                             f"127.0.0.1:{proxy_port}", "--upstream", upstream], work / "proxy.log",
                            f"{proxy}/capture/stats")
            try:
                body = infer_body(var)
                n_blocks = max(3, round(args.seconds / args.block))
                cycle = [("direct", upstream), ("proxy", proxy), ("proxy, store locked", proxy)]
                blocks = [cycle[i % 3] for i in range(n_blocks - n_blocks % 3 or 3)]
                lock: dict = {}

                def on_block(kind: str, starting: bool) -> None:
                    if kind != "proxy, store locked":
                        return
                    if starting:
                        conn = sqlite3.connect(store, timeout=30, isolation_level=None)
                        conn.execute("BEGIN EXCLUSIVE")
                        lock["conn"] = conn
                    else:
                        lock.pop("conn").rollback()

                load_before = os.getloadavg()[0]
                result = asyncio.run(run_blocks(blocks, body, args.rate, args.block, on_block))
                load_after = os.getloadavg()[0]
                sent_through_proxy = 20 + sum(len(v) for k, v in result["latencies"].items() if k != "direct")
                deadline = time.monotonic() + 60
                logged = count_rows(store)
                while logged < sent_through_proxy and time.monotonic() < deadline:
                    time.sleep(0.5)
                    logged = count_rows(store)
                import requests

                stats = requests.get(f"{proxy}/capture/stats", timeout=5).json()["counts"]["credit"]
            finally:
                stop(capture)
        finally:
            stop(server)
    lat = {k: np.asarray(v) for k, v in result["latencies"].items()}
    p = {k: (np.percentile(v, 50), np.percentile(v, 99)) for k, v in lat.items()}
    rows = []
    for kind in ("direct", "proxy", "proxy, store locked"):
        p50, p99 = p[kind]
        added = "" if kind == "direct" else f"+{p50 - p['direct'][0]:.2f} / +{p99 - p['direct'][1]:.2f}"
        rows.append((kind, f"{len(lat[kind]):,}", str(result["errors"][kind]), f"{p50:.2f}", f"{p99:.2f}",
                     f"{np.max(lat[kind]):.1f}", added))
    header = ("path", "requests", "errors", "p50 ms", "p99 ms", "max ms", "added p50 / p99 ms")
    print_table(rows, header)
    added_p50 = p["proxy"][0] - p["direct"][0]
    added_p99 = p["proxy"][1] - p["direct"][1]
    verdict = "met" if added_p50 <= 2.0 and added_p99 <= 5.0 else "NOT met"
    summary = (f"Captured through the proxy: {sent_through_proxy:,} requests answered, {logged:,} rows in the "
               f"prediction log ({stats['rows_dropped']} dropped, {stats['exchanges_dropped']} not queued). "
               f"Target (+2 ms p50, +5 ms p99 at 200 requests per second): {verdict} at {args.rate:g} per second. "
               f"Load average of the machine (1 min, {os.cpu_count()} cores) before and after: {load_before:.1f} and "
               f"{load_after:.1f}: the p99s are those of whatever else runs.")
    print(summary)
    write_section("capture", "Capture proxy: latency added", "\n".join([
        f"One-row v2 `infer` requests (12 features, the demo's) to a v2 server that costs almost nothing (a raw ASGI "
        f"app on uvicorn: what is measured is the proxy, not a model), {args.rate:g} per second, open loop, "
        f"in alternating blocks of {args.block:g} s sent directly, through `python -m monitoring.capture`, and "
        "through it while another connection holds the SQLite store's write lock (released after each block). "
        "Latency from sending to the last byte of the answer; 'added' is the proxy's percentile minus the direct "
        "one, from the same run.", "",
        markdown_table(rows, header), "", summary,
    ]), args=args)


if __name__ == "__main__":
    main()
