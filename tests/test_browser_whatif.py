"""The What-if page in headless Chromium: edit a value, see the new prediction."""

import urllib.parse

import pytest

from explain.scenarios import Scenario, encode_scenario

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_editing_a_value_shows_the_new_prediction(dashboard_url, open_page, tmp_path):
    from playwright.sync_api import expect

    start = urllib.parse.quote(encode_scenario(Scenario("", "reference", "0", {})))
    page = open_page(height=1400)
    page.goto(f"{dashboard_url}/whatif?service=credit-risk&scenario={start}", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="What-if")).to_be_visible(timeout=120_000)
    values = page.locator('[data-testid="stMetricValue"]')
    expect(values.nth(1)).to_be_visible(timeout=60_000)
    before = values.nth(1).inner_text()
    assert values.nth(0).inner_text() == before

    field = page.get_by_label("credit_utilization", exact=True)
    field.fill("0.99")
    field.press("Enter")
    expect(values.nth(1)).not_to_have_text(before, timeout=60_000)
    assert float(values.nth(1).inner_text()) > float(before)
    expect(page.get_by_text("changed", exact=False).first).to_be_visible()
    assert "credit_utilization" in urllib.parse.unquote(page.url)
    page.screenshot(path=str(tmp_path / "whatif.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
