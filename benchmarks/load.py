"""Load: concurrent sessions over Streamlit's websocket on Overview, Service health and Drift.

Usage::

    python benchmarks/load.py [--quick] [--sessions 20] [--services 10] [--seconds 60] [--think 2]

Not 20 browsers: each session is what a browser tab is to the server, one websocket on
``/_stcore/stream`` speaking Streamlit's own protocol (``BackMsg`` up, ``ForwardMsg`` down,
from ``streamlit.proto``), driven by the ``websockets`` client Streamlit itself depends on.
A session opens a page the way the browser does when its sidebar link is clicked: a
``rerun_script`` message naming the page (its script hash, learnt from the ``navigation``
message, and its URL path) with the query string (``service=svc-k``: session *k* looks at
service *k* mod the number of services). The page's **render time** is from that message to
the ``script_finished`` message of the run (``FINISHED_SUCCESSFULLY``); an exception element
or any other ending counts as a failure. While a session stays on a page it behaves as the
browser does with ``st.fragment(run_every=…)``: it reruns each fragment the ``auto_rerun``
messages named, at their interval, until it leaves the page.

Set-up, all on 127.0.0.1: ``--services`` copies of the template service (``demo/service.py``,
the demo model, no faults, one uvicorn server per port in one helper process), a store with
``--rows`` logged demo predictions (labels for half, built once under ``var/bench/`` as
``benchmarks/pages.py`` does, then copied), the collector (``python -m monitoring.collector``)
polling every service every 10 s, and ``streamlit run dashboard/app.py`` without sign-in
(127.0.0.1) and without its file watcher, as in production. The dashboard's own collector
finds the leases held and leaves the polling to the collector process, so the dashboard's CPU
is the pages'.

Every session opens Overview, Service health and Drift in turn, again and again, pausing
``--think`` seconds (±50 %, seeded) on each, for ``--seconds``. Each page is first visited
once for every service, one session after the other (the warm-up: first views, caches filled;
the first session's views are timed and shown apart). Then the same server
runs one session alone, then ``--sessions`` at once: p50/p95 render time per page for both,
their ratio, the Streamlit process's CPU (CPU seconds per wall second from
``/proc/<pid>/stat``: 1.0 is one core busy; beside it, how busy the whole machine was, from
``/proc/stat``) and its resident memory (sampled ``VmRSS`` every
0.25 s, and the kernel's peak ``VmHWM``).

``--quick``: 3 sessions, 2 services, 6 s per phase, 20,000 logged predictions (as ``.ci/run``
runs it). Prints a table and writes the ``load`` section of ``benchmarks/results.md`` at full
size; other runs write it to the git-ignored ``var/bench/results-quick.md`` (see
:mod:`benchmarks`). No peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, wait_http, write_section  # noqa: E402
from demo.runtime import free_port  # noqa: E402

PAGES = ("Overview", "Service health", "Drift")
"""The pages each session opens, in this order (Overview is the landing page, the first one opened)."""
POLL_INTERVAL = 10.0
RENDER_TIMEOUT = 180.0
"""A render that has not finished by then counts as a failure (and the session goes on)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOGS = ROOT / "var" / "bench" / "load"
"""Where the last run's server logs are kept."""


# -- the set-up: services, store, collector, dashboard -----------------------------------------------


def serve_services(var: str, ports: list[int]) -> None:
    """Serve the template service with the demo model on each of ``ports`` (127.0.0.1) until killed.

    Run in the helper process :func:`services_process` starts: one uvicorn server per port, each
    in its own thread, no faults, no prediction log (the collector's canaries are not logged anyway).

    Parameters
    ----------
    var : str
        Folder holding the demo model (``demo/model.joblib``…).
    ports : list of int
        The ports to listen on.
    """
    import threading

    import uvicorn

    from demo.model import load_or_train
    from demo.runtime import MODEL_NAME
    from demo.service import ServedModel, create_app

    model = load_or_train(Path(var) / "demo")
    served = ServedModel(model.pipeline, model.version, dict(model.features), name=MODEL_NAME)
    servers = []
    for index, port in enumerate(ports):
        app = create_app(served, service_name=f"svc-{index}")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               access_log=False))
        threading.Thread(target=server.run, daemon=True, name=f"svc-{index}").start()
        servers.append(server)
    threading.Event().wait()


@contextlib.contextmanager
def process(command: list[str], log: Path, *, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group with its output in ``log``; stop it on exit.

    Parameters
    ----------
    command : list of str
        The command.
    log : Path
        Where its standard output and error go.
    env : dict, optional
        Its environment (this process's by default).

    Yields
    ------
    subprocess.Popen
        The running process.
    """
    with open(log, "w") as output:
        running = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield running
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.pid, 15)
            try:
                running.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(running.pid, 9)
                running.wait(timeout=20)


def store_copy(rows: int, folder: Path) -> tuple[Path, object]:
    """A copy of the benchmark store with ``rows`` logged predictions (built once, see ``benchmarks/pages.py``).

    Parameters
    ----------
    rows : int
        Logged demo predictions under the name ``credit`` (labels for half of them).
    folder : Path
        Where the copy goes (the collector adds its probes to it).

    Returns
    -------
    tuple of (Path, DemoModel)
        The copied store file and the demo model (its reference data and features).
    """
    from benchmarks.pages import build_store
    from demo.model import load_or_train

    built, _ = build_store(rows)
    target = folder / "load.db"
    shutil.copy2(built, target)
    return target, load_or_train(ROOT / "var" / "demo")


def config_text(store_path: Path, model, ports: list[int]) -> str:
    """The configuration of the run: one v2 service per port, all logging as ``credit``.

    Parameters
    ----------
    store_path : Path
        The SQLite store.
    model : DemoModel
        The demo model (reference data, features, held-out metrics).
    ports : list of int
        The services' ports.

    Returns
    -------
    str
        TOML text.
    """
    features = ", ".join(f'"{name}"' for name in model.features)
    metrics = model.metrics
    services = "".join(f"""
[[services]]
name = "svc-{index}"
url = "http://127.0.0.1:{port}"
protocol = "v2"
model = "credit-risk"
poll_interval = {POLL_INTERVAL}
v2_outputs = ["predict", "predict_proba"]
reference = "{model.reference_path}"
target = "default"
features = [{features}]
logged_as = "credit"

[services.metrics]
url = "http://127.0.0.1:{port}/metrics"
path_regex = ".*infer|.*predict"

[services.performance]
baseline = {{accuracy = {metrics["accuracy"]}, roc_auc = {metrics["roc_auc"]}, log_loss = {metrics["log_loss"]}}}
""" for index, port in enumerate(ports))
    return f'[store]\nurl = "sqlite:///{store_path}"\n' + services


def wait_for_polls(store_url: str, names: list[str], seconds: float) -> None:
    """Wait until every service in ``names`` has a recorded poll.

    Parameters
    ----------
    store_url : str
        The store.
    names : list of str
        The services.
    seconds : float
        How long to wait.

    Raises
    ------
    RuntimeError
        When some service has no poll in time.
    """
    from monitoring.store import Store

    store = Store(store_url)
    deadline = time.monotonic() + seconds
    try:
        while True:
            since = time.time() - 3600
            missing = [n for n in names if store.read_probes(n, since=since, checks=["poll"]).empty]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no poll recorded for {', '.join(missing)} within {seconds:g} s")
            time.sleep(0.5)
    finally:
        store.dispose()


# -- the server process's CPU and memory ---------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (all its threads), from ``/proc/<pid>/stat``.

    Parameters
    ----------
    pid : int
        The process.

    Returns
    -------
    float
        CPU seconds since it started.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat(5))


def machine_cpu() -> tuple[float, float]:
    """This machine's CPU time so far, all cores: (busy, total) seconds from ``/proc/stat``.

    Returns
    -------
    tuple of (float, float)
        Seconds not idle (nor waiting for I/O), and all seconds.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return (total - values[3] - values[4]) / CLOCK_TICKS, total / CLOCK_TICKS


def memory_mb(pid: int, key: str) -> float:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in MB.

    Parameters
    ----------
    pid : int
        The process.
    key : str
        The line's name.

    Returns
    -------
    float
        Megabytes (10^6 bytes).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(key)


# -- one session: a websocket speaking Streamlit's protocol --------------------------------------------


@dataclass
class Render:
    """One page view: which page, how long from ``rerun_script`` to ``script_finished``, and whether it failed."""

    page: str
    seconds: float
    failure: str = ""
    nbytes: int = 0
    """Bytes of the ``ForwardMsg`` frames received meanwhile (after the websocket's own decompression)."""


@dataclass
class Session:
    """One browser tab's worth of websocket traffic, as the Streamlit frontend sends and receives it.

    Parameters
    ----------
    base : str
        The dashboard's base URL (``http://127.0.0.1:PORT``).
    query : str
        The query string every page is opened with (``service=svc-3``).
    """

    base: str
    query: str
    pages: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Page title → (script hash, URL path), from the server's ``navigation`` messages."""
    fragments: dict[str, float] = field(default_factory=dict)
    """Fragment id → auto-rerun interval (s) on the page shown now."""
    fragment_runs: list[float] = field(default_factory=list)
    """Seconds each auto-rerun of a fragment took."""
    current: str = ""

    async def __aenter__(self) -> Session:
        from websockets.asyncio.client import connect

        address = self.base.replace("http://", "ws://") + "/_stcore/stream"
        self._ws = await connect(address, subprotocols=["streamlit"], max_size=None, open_timeout=30,
                                 ping_interval=None)
        self._finished: asyncio.Queue = asyncio.Queue()
        self._exception = ""
        self._received = 0
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self._ws.close()

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        async for frame in self._ws:
            self._received += len(frame)
            msg = ForwardMsg()
            msg.ParseFromString(frame)
            kind = msg.WhichOneof("type")
            if kind == "navigation":
                self.pages.update({p.page_name: (p.page_script_hash, p.url_pathname) for p in msg.navigation.app_pages})
            elif kind == "auto_rerun":
                self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fragment in msg.stop_auto_rerun.fragment_ids:
                    self.fragments.pop(fragment, None)
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                if msg.delta.new_element.WhichOneof("type") == "exception":
                    self._exception = self._exception or msg.delta.new_element.exception.message[:200]
            elif kind == "page_not_found":
                self._exception = f"page not found: {msg.page_not_found.page_name}"
            elif kind == "script_finished":
                self._finished.put_nowait(msg.script_finished)

    async def _run(self, *, page: str, fragment: str = "") -> tuple[float, str, int]:
        """Send one ``rerun_script`` and wait for the ``script_finished`` of that run."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        back = BackMsg()
        state = back.rerun_script
        state.query_string = self.query
        script_hash, path = self.pages.get(page, ("", ""))  # unknown before the first run: the landing page
        state.page_script_hash = script_hash
        state.page_name = path
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-GB"
        state.context_info.url = f"{self.base}/{path}?{self.query}"
        if fragment:
            state.fragment_id = fragment
            state.is_auto_rerun = True
        self._exception = ""
        before = self._received
        started = time.perf_counter()
        await self._ws.send(back.SerializeToString())
        wanted = (ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY if fragment else ForwardMsg.FINISHED_SUCCESSFULLY,)
        deadline = started + RENDER_TIMEOUT
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return time.perf_counter() - started, "timed out", self._received - before
            try:
                status = await asyncio.wait_for(self._finished.get(), left)
            except TimeoutError:
                continue
            if status in wanted:
                return time.perf_counter() - started, self._exception, self._received - before
            if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                return time.perf_counter() - started, "compile error", self._received - before
            # FINISHED_EARLY_FOR_RERUN: an earlier run gave way to this one; keep waiting

    async def open(self, page: str) -> Render:
        """Open ``page`` as its sidebar link does, and time it.

        Parameters
        ----------
        page : str
            The page's title, as in the navigation (``Overview``, ``Service health``, ``Drift``).

        Returns
        -------
        Render
            The page view.
        """
        self.fragments.clear()  # a new page run replaces the last page's auto-reruns, as in the browser
        while not self._finished.empty():
            self._finished.get_nowait()
        seconds, failure, nbytes = await self._run(page=page)
        self.current = page
        return Render(page, seconds, failure, nbytes)

    async def stay(self, seconds: float) -> None:
        """Stay on the page for ``seconds``, rerunning its ``run_every`` fragments at their intervals.

        Parameters
        ----------
        seconds : float
            How long.
        """
        end = time.perf_counter() + seconds
        due = {fragment: time.perf_counter() + interval for fragment, interval in self.fragments.items()}
        while True:
            now = time.perf_counter()
            upcoming = min(due.values(), default=end)
            if upcoming >= end:
                await asyncio.sleep(max(end - now, 0.0))
                return
            await asyncio.sleep(max(upcoming - now, 0.0))
            fragment = min(due, key=due.get)
            taken, failure, _ = await self._run(page=self.current, fragment=fragment)
            if not failure:
                self.fragment_runs.append(taken)
            due[fragment] = time.perf_counter() + self.fragments.get(fragment, seconds)


async def browse(base: str, index: int, n_services: int, seconds: float, think: float, *,
                 rounds: int | None = None) -> tuple[list[Render], list[float]]:
    """One session: Overview, Service health, Drift, again and again, for ``seconds`` (or ``rounds``).

    Parameters
    ----------
    base : str
        The dashboard's base URL.
    index : int
        The session's number: it looks at service ``svc-{index % n_services}`` and seeds its pauses.
    n_services : int
        Services configured.
    seconds : float
        How long it browses; a page opened before the end is waited for.
    think : float
        Mean pause on each page (uniform between half and one and a half of it).
    rounds : int, optional
        Stop after this many rounds of the three pages instead.

    Returns
    -------
    tuple of (list of Render, list of float)
        Its page views, and its fragment auto-reruns' seconds.
    """
    rng = random.Random(index)
    renders = []
    end = time.perf_counter() + seconds
    async with Session(base, f"service=svc-{index % n_services}") as session:
        await asyncio.sleep(rng.uniform(0, think))  # sessions do not all start in the same instant
        done = 0
        while (rounds is None and time.perf_counter() < end) or (rounds is not None and done < rounds):
            for page in PAGES:
                renders.append(await session.open(page))
                await session.stay(rng.uniform(0.5 * think, 1.5 * think) if rounds is None else 0.0)
                if rounds is None and time.perf_counter() >= end:
                    break
            done += 1
        return renders, session.fragment_runs


@dataclass
class Phase:
    """What one phase measured: page views, fragment reruns, the server's CPU and memory."""

    sessions: int
    wall_s: float
    renders: list[Render]
    fragment_runs: list[float]
    cpu_s: float
    machine_busy: float
    """Share of all the machine's cores busy meanwhile (this server, the services, the collector, the
    sessions' client and everybody else's work)."""
    rss_start_mb: float
    rss_peak_mb: float
    hwm_mb: float

    def times(self, page: str) -> np.ndarray:
        """Render seconds of the successful views of ``page``."""
        return np.array([r.seconds for r in self.renders if r.page == page and not r.failure])

    def kilobytes(self, page: str) -> float:
        """Median kilobytes received per successful view of ``page``."""
        sizes = [r.nbytes for r in self.renders if r.page == page and not r.failure]
        return float(np.median(sizes)) / 1000 if sizes else float("nan")

    @property
    def failures(self) -> list[Render]:
        """The views that failed (exception, timeout, compile error)."""
        return [r for r in self.renders if r.failure]


async def run_phase(base: str, pid: int, sessions: int, n_services: int, seconds: float, think: float, *,
                    rounds: int | None = None) -> Phase:
    """Run ``sessions`` sessions at once and measure the server meanwhile.

    Parameters
    ----------
    base : str
        The dashboard's base URL.
    pid : int
        The Streamlit process.
    sessions : int
        Concurrent sessions.
    n_services : int
        Services configured.
    seconds : float
        How long each session browses.
    think : float
        Mean pause per page.
    rounds : int, optional
        Rounds per session instead of a time (the warm-up).

    Returns
    -------
    Phase
        The measurements.
    """
    rss = [memory_mb(pid, "VmRSS")]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            rss.append(memory_mb(pid, "VmRSS"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    sampler = asyncio.create_task(sample())
    cpu0, wall0, machine0 = cpu_seconds(pid), time.perf_counter(), machine_cpu()
    results = await asyncio.gather(*(browse(base, i, n_services, seconds, think, rounds=rounds)
                                     for i in range(sessions)))
    cpu, wall, machine = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0, machine_cpu()
    stop.set()
    await sampler
    busy = (machine[0] - machine0[0]) / max(machine[1] - machine0[1], 1e-9)
    return Phase(sessions, wall, [r for renders, _ in results for r in renders],
                 [f for _, runs in results for f in runs], cpu, busy, rss[0], max(rss), memory_mb(pid, "VmHWM"))


# -- the run ---------------------------------------------------------------------------------------------


def measure(args) -> tuple[Phase, Phase, Phase, float]:
    """Set everything up, run the warm-up, one session alone, then ``args.sessions`` at once.

    Parameters
    ----------
    args : argparse.Namespace
        The sizes.

    Returns
    -------
    tuple of (Phase, Phase, Phase, float)
        Warm-up, one session, all sessions, and the collector's CPU seconds per wall second.
    """
    with tempfile.TemporaryDirectory(prefix="vantage-load-") as tmp:
        folder = Path(tmp)
        store_path, model = store_copy(args.rows, folder)
        demo = folder / "var" / "demo"
        demo.mkdir(parents=True)
        for name in ("model.joblib", "model.json", "reference.parquet"):
            shutil.copy2(model.artifact_path.parent / name, demo / name)
        ports = [free_port() for _ in range(args.services)]
        config = folder / "load.toml"
        config.write_text(config_text(store_path, model, ports))
        env = {k: v for k, v in os.environ.items() if k not in ("VANTAGE_PASSWORD", "VANTAGE_NOW")}
        env.update(PYTHONPATH=str(ROOT), VANTAGE_CONFIG=str(config), VANTAGE_DEMO_FAULTS="0")
        serve = (f"from benchmarks.load import serve_services; "
                 f"serve_services({str(folder / 'var')!r}, {ports!r})")
        try:
            with process([sys.executable, "-c", serve], folder / "services.log", env=env):
                for port in ports:
                    wait_http(f"http://127.0.0.1:{port}/health", 120)
                with process([sys.executable, "-m", "monitoring.collector", "--config", str(config)],
                             folder / "collector.log", env=env) as collector:
                    wait_for_polls(f"sqlite:///{store_path}", [f"svc-{i}" for i in range(args.services)], 60)
                    port = free_port()
                    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                               "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port",
                               str(port), "--browser.gatherUsageStats", "false",
                               # as in production: files edited meanwhile (the tree is shared) are not reloaded
                               "--server.fileWatcherType", "none"]
                    with process(command, folder / "streamlit.log", env=env) as dashboard:
                        base = f"http://127.0.0.1:{port}"
                        try:
                            wait_http(f"{base}/_stcore/health", 90)
                        except RuntimeError:
                            raise RuntimeError("the dashboard did not start: "
                                               + (folder / "streamlit.log").read_text()[-2000:]) from None
                        collector_cpu0, collector_wall0 = cpu_seconds(collector.pid), time.perf_counter()
                        warm = asyncio.run(run_phase(base, dashboard.pid, 1, args.services, 0, 0, rounds=1))
                        for index in range(1, args.services):  # every service's pages seen once too
                            asyncio.run(browse(base, index, args.services, 0, 0, rounds=1))
                        if warm.failures:
                            raise RuntimeError(f"the warm-up failed: {warm.failures}; "
                                               + (folder / "streamlit.log").read_text()[-2000:])
                        single = asyncio.run(run_phase(base, dashboard.pid, 1, args.services, args.seconds,
                                                       args.think))
                        many = asyncio.run(run_phase(base, dashboard.pid, args.sessions, args.services,
                                                     args.seconds, args.think))
                        collector_share = ((cpu_seconds(collector.pid) - collector_cpu0)
                                           / (time.perf_counter() - collector_wall0))
        finally:
            LOGS.mkdir(parents=True, exist_ok=True)
            for log in folder.glob("*.log"):  # kept for a look at any failure (git-ignored)
                shutil.copy2(log, LOGS / log.name)
    return warm, single, many, collector_share


def quantile_ms(values: np.ndarray, q: float) -> str:
    """The ``q`` quantile of ``values`` (seconds) in milliseconds, or a dash when empty."""
    return f"{np.quantile(values, q) * 1000:,.0f} ms" if len(values) else "–"


def ratio(many: np.ndarray, single: np.ndarray, q: float) -> str:
    """The ``q`` quantile of ``many`` over that of ``single``."""
    if not len(many) or not len(single):
        return "–"
    return f"{np.quantile(many, q) / np.quantile(single, q):.1f}×"


def main() -> None:
    """Run the benchmark, print the table and write the ``load`` section."""
    args = parse_args(__doc__, {
        "sessions": Size(20, 3, "concurrent sessions"),
        "services": Size(10, 2, "services polled by the collector"),
        "seconds": Size(60.0, 6.0, "seconds each phase browses"),
        "think": Size(2.0, 0.5, "mean pause on each page, seconds"),
        "rows": Size(100_000, 20_000, "logged predictions in the store"),
    })
    warm, single, many, collector_share = measure(args)
    rows = []
    for page in PAGES:
        one, all_ = single.times(page), many.times(page)
        rows.append((page, f"{warm.times(page)[0] * 1000:,.0f} ms" if len(warm.times(page)) else "–",
                     len(one), quantile_ms(one, 0.5), quantile_ms(one, 0.95),
                     len(all_), quantile_ms(all_, 0.5), quantile_ms(all_, 0.95),
                     ratio(all_, one, 0.5), ratio(all_, one, 0.95),
                     f"{many.kilobytes(page):,.0f} kB" if len(all_) else "–"))
    header = ("page", "first view", "views (1)", "p50 (1)", "p95 (1)", f"views ({args.sessions})",
              f"p50 ({args.sessions})", f"p95 ({args.sessions})", "p50 ratio", "p95 ratio", "sent per view")
    print_table(rows, header)
    server = [
        ("sessions", 1, args.sessions),
        ("page views (failed)", f"{len(single.renders)} ({len(single.failures)})",
         f"{len(many.renders)} ({len(many.failures)})"),
        ("fragment auto-reruns, p50", f"{len(single.fragment_runs)}, {quantile_ms(np.array(single.fragment_runs), .5)}",
         f"{len(many.fragment_runs)}, {quantile_ms(np.array(many.fragment_runs), .5)}"),
        ("server CPU, CPU s per s (1.0 = one core)", f"{single.cpu_s / single.wall_s:.2f}",
         f"{many.cpu_s / many.wall_s:.2f}"),
        ("server CPU per page view (fragment reruns included)",
         f"{single.cpu_s / max(len(single.renders), 1):.2f} s", f"{many.cpu_s / max(len(many.renders), 1):.2f} s"),
        (f"whole machine busy ({os.cpu_count()} cores, everybody's work)", f"{single.machine_busy * 100:.0f} %",
         f"{many.machine_busy * 100:.0f} %"),
        ("server resident memory at start → peak (sampled)",
         f"{single.rss_start_mb:,.0f} → {single.rss_peak_mb:,.0f} MB",
         f"{many.rss_start_mb:,.0f} → {many.rss_peak_mb:,.0f} MB"),
        ("server peak resident memory since start (VmHWM)", f"{single.hwm_mb:,.0f} MB", f"{many.hwm_mb:,.0f} MB"),
    ]
    server_header = ("server", "1 session", f"{args.sessions} sessions")
    print_table(server, server_header)
    failures = single.failures + many.failures
    for render in failures[:10]:
        print(f"failed: {render.page} after {render.seconds:.1f} s: {render.failure}")
    cores = os.cpu_count()
    write_section("load", f"Load: {args.sessions} concurrent sessions at the websocket level", "\n".join([
        f"{args.services} copies of the template service (demo model, one helper process) polled every "
        f"{POLL_INTERVAL:g} s by `python -m monitoring.collector` ({collector_share * 100:.1f} % of a core during "
        f"the run); a store with {args.rows:,} logged predictions (labels for half) that every service's data pages "
        f"read; `streamlit run dashboard/app.py` without sign-in on 127.0.0.1. Each session is one websocket on "
        "`/_stcore/stream` speaking Streamlit's protocol (`BackMsg` `rerun_script` with the page and "
        "`?service=svc-k`, timed to the run's `script_finished`), not a browser; it opens Overview, Service "
        f"health and Drift in turn, pausing {args.think:g} s on average on each (rerunning the page's "
        f"`run_every` fragments meanwhile, as the browser does, when a pause outlasts their interval), for "
        f"{args.seconds:g} s. First every page is opened once for every service, one session after the other "
        "(first view: the first of them; caches filled; the file watcher is off, as in production); then one "
        "session alone, then "
        f"{args.sessions} at once, in the same server. The machine has {cores} cores shared with other work, so "
        "the ratio between the two phases, measured in the same run, is the figure to compare; 'whole machine "
        "busy' is the share of all cores in use during a phase, everybody's work included (near 100 %, the "
        "server was waiting for a core).", "",
        markdown_table(rows, header), "",
        markdown_table(server, server_header), "",
        (f"Failed page views: {len(failures)}." if failures else "No page view failed (no exception element, "
         "no timeout)."),
    ]), args=args)


if __name__ == "__main__":
    main()
