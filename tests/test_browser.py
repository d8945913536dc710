"""The dashboard in headless Chromium, as a user opens it."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_health_page_shows_status_and_latency_chart(dashboard_url, open_page):
    from playwright.sync_api import expect

    page = open_page()
    page.goto(dashboard_url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=90_000)  # the landing page
    page.get_by_role("link", name="Service health").click()
    expect(page.get_by_role("heading", name="Service health")).to_be_visible(timeout=90_000)
    # the demo is polled every 5 s; the live panel refreshes itself until the first poll shows
    expect(page.get_by_text("all checks passed").first).to_be_visible(timeout=60_000)
    expect(page.locator(".stMarkdownBadge", has_text="Up").first).to_be_visible()  # the status badge
    charts = page.locator(".js-plotly-plot")
    expect(charts.first).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot", has_text="Canary prediction latency")).to_be_visible()
    expect(page.locator(".js-plotly-plot", has_text="p95").first).to_be_visible(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.get_by_role("link", name="Services").click()
    expect(page.get_by_role("heading", name="Services")).to_be_visible(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_no_event_loop_is_left_running_between_browser_tests(chromium):
    """Playwright's sync API marks its loop as running between its calls; the shared launcher parks it, so
    a test that runs after a browser test can still use ``asyncio.run``."""
    import asyncio

    with chromium.in_use():
        context = chromium.browser.new_context()
        page = context.new_page()
        page.set_content("<p>shared Chromium</p>")
        assert page.inner_text("p") == "shared Chromium"
        context.close()
    assert asyncio.run(asyncio.sleep(0, result="ran")) == "ran"
