"""Every page of the dashboard on the embedded demo, in headless Chromium: no exception, real content."""

import time

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, dashboard_url  # noqa: F401  (dashboard_url is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_every_page_opens_without_an_exception(dashboard_url):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(dashboard_url, wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=90_000)
        links = page.locator('[data-testid="stSidebarNavLink"]')
        titles = [links.nth(i).inner_text().strip().split("\n")[-1] for i in range(links.count())]
        assert {"Overview", "Service health", "Drift", "Performance", "Explain", "Services"} <= set(titles)
        for title in titles:
            page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
            expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=60_000)
            # the page fills in as its data arrives (the demo back-fills its history at start)
            main = page.locator('[data-testid="stMain"]')
            deadline = time.monotonic() + 60
            while len(main.inner_text()) < 400 and time.monotonic() < deadline:
                page.wait_for_timeout(500)
            assert page.locator('[data-testid="stException"]').count() == 0, f"{title} shows an exception"
            assert len(main.inner_text()) >= 400, f"{title} is nearly empty: {main.inner_text()!r}"
        browser.close()
