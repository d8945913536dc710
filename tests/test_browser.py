"""The dashboard in headless Chromium, as a user opens it."""

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, dashboard_url  # noqa: F401  (dashboard_url is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_health_page_shows_status_and_latency_chart(dashboard_url):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
        browser.close()
