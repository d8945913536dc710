"""The browser tests' shared layer: one headless Chromium per session, and one dashboard on the embedded demo.

* ``chromium``: Debian's Chromium through Playwright, launched once per session (relaunched if it died);
  ``open_page`` opens a page in a **fresh browser context** for the test and closes every context it opened
  when the test ends, so no cookie, storage or Streamlit session (one per websocket) passes from a test to
  the next.
* ``dashboard_url``: ``streamlit run dashboard/app.py`` on the embedded demo, started once per session and
  warmed up before the first test gets it (the demo started and its four weeks of history written), so
  every test sees the same settled demo whatever ran before it; checked alive before
  each test. Tests that need another configuration (sign-in, real servers, secrets) start their own
  server with :func:`tests.browser.running_dashboard` and use the same ``open_page``.

Registered as a pytest plugin in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.browser import BACKFILL_TEXT, CHROMIUM, CHROMIUM_ARGS, copy_demo_model, running_dashboard, settled_text


class Chromium:
    """A Playwright connection and one Chromium, launched on first use and again if it has died.

    Playwright's sync API marks its event loop as the main thread's running loop between its calls, which
    would make ``asyncio.run`` fail in every test that runs after the first browser test. So the loop is
    the running loop only inside :meth:`in_use` (a browser test, the warm-up); between them it is parked.
    """

    def __init__(self) -> None:
        self._playwright = None
        self._browser = None
        self._depth = 0  # of nested in_use blocks

    @property
    def browser(self):
        """The browser, launched (or launched again) if need be; to be used inside :meth:`in_use`."""
        if self._browser is None or not self._browser.is_connected():
            if self._playwright is None:
                from playwright.sync_api import sync_playwright

                self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self._browser

    @contextlib.contextmanager
    def in_use(self) -> Iterator[Chromium]:
        """A block in which Playwright's sync API may be called; the main thread has no running loop after it."""
        if self._depth == 0 and self._playwright is not None and asyncio._get_running_loop() is None:
            asyncio._set_running_loop(self._playwright._loop)  # where Playwright's last call left it
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if (self._depth == 0 and self._playwright is not None
                    and asyncio._get_running_loop() is self._playwright._loop):
                asyncio._set_running_loop(None)

    def close(self) -> None:
        with self.in_use():
            if self._browser is not None and self._browser.is_connected():
                self._browser.close()
            if self._playwright is not None:
                self._playwright.stop()
        self._browser = self._playwright = None


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """Headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright), one for the session."""
    launcher = Chromium()
    yield launcher
    launcher.close()


@pytest.fixture
def open_page(chromium) -> Iterator[Callable[..., object]]:
    """``open_page(width=1400, height=1000, **context_options)``: a page in a new browser context of its own.

    Every context the test opened is closed when it ends (its pages, cookies, downloads and websockets
    with it).
    """
    contexts = []

    def open_(*, width: int = 1400, height: int = 1000, **options):
        context = chromium.browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        return context.new_page()

    with chromium.in_use():
        yield open_
        for context in contexts:
            context.close()


@pytest.fixture(scope="session")
def demo_dashboard(tmp_path_factory, demo_model, chromium):
    """The dashboard on the embedded demo (its own ``var/`` with a copy of the session's demo model), warmed up.

    The demo starts on the first page run and writes four weeks of history in the background; so that no
    test finds it half-way because it happens to run first, the warm-up opens the Overview in a context of
    its own and waits (240 s at most) until the back-fill's progress bar has gone and the page has settled.
    """
    from playwright.sync_api import expect

    folder = tmp_path_factory.mktemp("demo-dashboard")
    var = folder / "var"
    copy_demo_model(demo_model, var / "demo")
    with running_dashboard(folder / "streamlit.log", env={"VANTAGE_VAR": str(var)}, start_seconds=90) as server:
        with chromium.in_use():
            context = chromium.browser.new_context(viewport={"width": 1400, "height": 1000})
            try:
                page = context.new_page()
                page.goto(server.url, wait_until="domcontentloaded")
                expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=90_000)
                text = settled_text(page, seconds=240, unless=(BACKFILL_TEXT,))
                failed = BACKFILL_TEXT in text or page.get_by_test_id("stException").count()
            finally:
                context.close()
        if failed:
            pytest.fail(f"the demo dashboard did not settle within 240 s: {text[:2000]}\n{server.log_tail()}")
        yield server


@pytest.fixture
def dashboard_url(demo_dashboard) -> str:
    """The URL of the session's demo dashboard, checked alive (it fails the test with its log if not)."""
    demo_dashboard.check_alive()
    return demo_dashboard.url
