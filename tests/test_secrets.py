"""A planted token that a real service echoes in its error bodies never reaches the store, the pages, the logs,
the websocket traffic of a real browser session, any download or the HTML report, and the Markdown in its answers
is shown as text."""

import base64
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from streamlit.testing.v1 import AppTest

from demo.runtime import free_port
from tests.helpers import wait_for

TOKEN = "tok-planted-7f3e9c1b-secret"
MARKDOWN_ATTACK = "[x](http://evil.example) ![t](http://evil.example/t.png) <img src=x>"
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def echoing_service():
    """A REST service that answers every call with an error that quotes the request's Authorization header."""
    app = FastAPI()

    @app.get("/health")
    def health(request: Request) -> JSONResponse:
        return JSONResponse({"detail": f"internal error for {request.headers.get('authorization')} "
                                       f"{MARKDOWN_ATTACK}"}, 500)

    @app.get("/ready")
    def ready(request: Request) -> JSONResponse:
        return JSONResponse({"detail": f"not ready: {request.headers.get('authorization')} "
                                       f"{MARKDOWN_ATTACK}"}, 503)

    @app.post("/predict")
    def predict(request: Request) -> JSONResponse:
        return JSONResponse({"detail": f"401 for header {request.headers.get('authorization')}"}, 401)

    @app.get("/model")
    def metadata(request: Request) -> JSONResponse:
        return JSONResponse({"detail": f"no metadata for {request.headers.get('authorization')}"}, 500)

    @app.get("/metrics")
    def metrics(request: Request) -> JSONResponse:
        return JSONResponse({"detail": f"metrics refused to {request.headers.get('authorization')}"}, 403)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="the echoing service to start", every=0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


MARKDOWN_ELEMENTS = ("markdown", "error", "warning", "info", "success", "caption")


def rendered_as_markdown(at) -> list[str]:
    """The values of the elements the browser renders as Markdown (text elements show text as it is)."""
    values, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        if getattr(node, "type", None) in MARKDOWN_ELEMENTS and hasattr(node, "value"):
            values.append(str(node.value))
        stack.extend(getattr(node, "children", {}).values())
    return values


def sent_to_browser(at) -> str:
    """Every element's protobuf message on the page, as text: what the websocket carries to the browser."""
    parts, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        stack.extend(getattr(node, "children", {}).values())
    return "\n".join(parts)


def test_the_token_is_in_no_store_row_page_or_log_line(echoing_service, tmp_path, monkeypatch, demo_model, caplog):
    from monitoring.collector import ServicePoller
    from monitoring.config import load_config
    from monitoring.store import Store

    monkeypatch.setenv("CREDIT_TOKEN", TOKEN)
    store_path = tmp_path / "store.db"
    config_path = tmp_path / "vantage.toml"
    config_path.write_text(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "echo"
url = "{echoing_service}"
protocol = "rest"
poll_interval = 3600
reference = "{demo_model.reference_path}"
target = "default"

[services.rest]
health = "/health"
ready = "/ready"

[services.auth]
env = "CREDIT_TOKEN"
prefix = "Bearer "
""")
    config = load_config(config_path)
    store = Store(f"sqlite:///{store_path}")
    caplog.set_level(logging.DEBUG)
    poller = ServicePoller(config.services[0], store)
    outcomes = [poller.poll() for _ in range(2)]
    assert all(o.state == "down" for o in outcomes)
    assert "[redacted]" in outcomes[0].reason  # the service did echo it
    store.dispose()
    dump = "\n".join(sqlite3.connect(store_path).iterdump())
    assert "echo" in dump and TOKEN not in dump

    monkeypatch.setenv("VANTAGE_CONFIG", str(config_path))
    at = AppTest.from_file(APP, default_timeout=90).run()
    seen, markdown = [], []
    for page in ("views/overview.py", "views/health.py", "views/services.py"):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        seen.append(sent_to_browser(at))
        markdown += rendered_as_markdown(at)
    assert all(TOKEN not in text for text in seen)
    assert "[redacted]" in seen[1]  # the health page does show the service's answer, redacted
    # the service's Markdown is shown as text: no live link, no image the browser would fetch
    assert any("evil" in value for value in markdown)
    live = re.compile(r"(?<!\\)\]\(|(?<!\\)!\[|(?<!\\)<img|https?://evil")  # unescaped link, image, tag, address
    unsafe = [v for v in markdown if live.search(v)]
    assert not unsafe, unsafe
    assert TOKEN not in caplog.text
    from dashboard import state

    state.stop_runtime()


def token_forms() -> list[bytes]:
    """The planted token as bytes, and the part of its base64 encoding that is the same wherever it starts."""
    forms = [TOKEN.encode()]
    for offset in range(3):  # base64 of text holding the token, at each alignment, minus the edge characters
        encoded = base64.b64encode(b"x" * offset + TOKEN.encode())
        forms.append(encoded[4:-4])
    return forms


def leaks(data: bytes | str) -> bool:
    """Whether ``data`` (a websocket frame, a downloaded file) holds the token in any form, read leniently."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    text = raw.decode("utf-8", "replace")
    return (any(form in raw for form in token_forms()) or TOKEN in text or TOKEN in raw.decode("latin-1")
            or TOKEN in text.replace("\\u002d", "-").replace("\\", ""))


@pytest.fixture
def echo_dashboard(echoing_service, tmp_path, demo_model, monkeypatch):
    """The dashboard (``streamlit run``, its own collector polling every 2 s) watching the echoing service, whose
    prediction log holds four weeks of demo traffic with labels, so every page and download has content."""
    import pandas as pd

    from demo.data import FEATURES
    from demo.replayer import scored_history
    from monitoring.collector import ServicePoller
    from monitoring.config import load_config
    from monitoring.store import Store
    from tests.browser import wait_http

    store_path = tmp_path / "store.db"
    store = Store(f"sqlite:///{store_path}")
    store.prediction_table("echo", dict(FEATURES))
    now = time.time()
    rows = scored_history(demo_model, 4_000, history_start=now - 28 * 86400, random_state=5)
    rows = rows[rows["ts"] < now]
    store.log_predictions("echo", rows)
    store.write_labels("echo", pd.DataFrame({"prediction_id": rows["id"], "ts": rows["ts"] + 60,
                                             "label": rows["default"].astype(float)}))
    features = ", ".join(f'"{f}"' for f in FEATURES)
    config_path = tmp_path / "vantage.toml"
    config_path.write_text(f"""
[store]
url = "sqlite:///{store_path}"

[[services]]
name = "echo"
url = "{echoing_service}"
protocol = "rest"
poll_interval = 2
reference = "{demo_model.reference_path}"
target = "default"
features = [{features}]

[services.rest]
health = "/health"
ready = "/ready"
predict = "/predict"
metadata = "/model"

[services.metrics]
url = "{echoing_service}/metrics"

[services.auth]
env = "CREDIT_TOKEN"
prefix = "Bearer "
""")
    monkeypatch.setenv("CREDIT_TOKEN", TOKEN)
    poller = ServicePoller(load_config(config_path).services[0], store)
    assert all(poller.poll().state == "down" for _ in range(2))  # history: down, with the echoed reasons
    store.dispose()
    env = dict(os.environ, VANTAGE_CONFIG=str(config_path))
    env.pop("VANTAGE_NOW", None)
    env.pop("VANTAGE_PASSWORD", None)
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            if not wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60):
                pytest.fail("the dashboard did not start: " + log_path.read_text()[-2000:])
            yield f"http://127.0.0.1:{port}", log_path
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)


class Frames:
    """Every websocket frame the browser receives, and how many whole script runs the server said it finished."""

    def __init__(self) -> None:
        self.received: list[bytes | str] = []
        self.runs_finished = 0
        self.download_buttons: dict[str, object] = {}  # id → DownloadButton proto, as the server sent them

    def add(self, payload: bytes | str) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.received.append(payload)
        if isinstance(payload, bytes):
            msg = ForwardMsg()
            msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                self.runs_finished += 1
            elif (msg.WhichOneof("type") == "delta" and msg.delta.WhichOneof("type") == "new_element"
                  and msg.delta.new_element.WhichOneof("type") == "download_button"):
                button = msg.delta.new_element.download_button
                self.download_buttons[button.id] = button

    def wait_for_run(self, page, after: int, seconds: float = 120) -> None:
        """Wait until a page run that started after ``after`` finished runs has finished too, and is drawn."""
        deadline = time.monotonic() + seconds
        while self.runs_finished <= after:
            if time.monotonic() > deadline:
                pytest.fail(f"the page's script did not finish within {seconds:g} s")
            page.wait_for_timeout(200)
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=30_000)  # drawn


@pytest.mark.browser
def test_the_token_is_in_no_websocket_frame_download_or_report(echo_dashboard, open_page):
    from playwright.sync_api import expect

    url, log_path = echo_dashboard
    frames = Frames()
    downloads: dict[str, bytes] = {}
    live_elements: list[str] = []  # links and images made of the service's Markdown and HTML
    page = open_page(accept_downloads=True)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.add(payload)))
    page.goto(url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=90_000)
    frames.wait_for_run(page, 0)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    titles = [links.nth(i).inner_text().strip().split("\n")[-1] for i in range(links.count())]
    assert {"Overview", "Service health", "Drift", "Performance", "Explain", "Services"} <= set(titles)
    for title in titles:
        runs = frames.runs_finished
        frames.download_buttons.clear()
        page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
        expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=60_000)
        frames.wait_for_run(page, runs)
        live = page.locator('a[href*="evil"], img[src*="evil"], img[src="x"]')
        live_elements += [f"{title}: {live.nth(i).evaluate('e => e.outerHTML')}" for i in range(live.count())]
        for button in list(frames.download_buttons.values()):  # in expanders and tabs too
            if button.url:  # the data is a file the server holds for the page: what a click fetches
                with urllib.request.urlopen(url + button.url, timeout=30) as answer:
                    downloads[f"{title}: {button.label}"] = answer.read()
            else:  # made on click (on_click="ignore" with a callable): click it
                with page.expect_download(timeout=120_000) as download:
                    page.get_by_role("button", name=button.label).click()
                downloads[f"{title}: {button.label}"] = Path(download.value.path()).read_bytes()
    received = frames.received
    assert len(received) > 50 and frames.runs_finished >= 8
    assert any(b"[redacted]" in (f if isinstance(f, bytes) else f.encode()) for f in received)  # the echo got there
    leaking = [i for i, frame in enumerate(received) if leaks(frame)]
    assert not leaking, f"{len(leaking)} of {len(received)} websocket frames hold the token"
    pages_with_downloads = {name.split(":")[0] for name in downloads}
    assert {"Overview", "Drift", "Performance", "Segments"} <= pages_with_downloads, sorted(downloads)
    report = next(data for name, data in downloads.items() if name.startswith("Overview"))
    assert b"<html" in report.lower() and b"echo" in report  # the HTML report of monitoring/report.py
    assert all(len(data) > 100 for data in downloads.values()), {k: len(v) for k, v in downloads.items()}
    leaking = [name for name, data in downloads.items() if leaks(data)]
    assert not leaking, leaking
    assert not leaks(log_path.read_bytes())
    assert not live_elements, live_elements
