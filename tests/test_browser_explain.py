"""The Explain page in headless Chromium, as a user opens it (the session's demo dashboard)."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_explain_page_opens_with_charts_and_no_exception(dashboard_url, open_page, tmp_path):
    from playwright.sync_api import expect

    page = open_page(height=1100)
    page.goto(f"{dashboard_url}/explain?service=credit-risk-rest", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Explain")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("predicts what the service predicts").first).to_be_visible(timeout=60_000)
    expect(page.locator(".js-plotly-plot", has_text="Feature importance").first).to_be_visible(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.get_by_role("tab", name="One prediction").click()
    expect(page.locator(".js-plotly-plot", has_text="Why").first).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Partial dependence").click()
    expect(page.locator(".js-plotly-plot", has_text="Partial dependence of").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
