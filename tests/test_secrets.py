"""A planted token that a real service echoes in its error bodies never reaches the store, the pages or the logs,
and the Markdown in its answers is shown as text."""

import logging
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from streamlit.testing.v1 import AppTest

from demo.runtime import free_port

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

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
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

    state._start_runtime.clear()
