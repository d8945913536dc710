"""Every page of the dashboard on the embedded demo, in headless Chromium: no exception, real content."""

import pytest

from tests.browser import chromium_page, dashboard_url, visit_every_page  # noqa: F401  (dashboard_url is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_every_page_opens_without_an_exception(dashboard_url):  # noqa: F811
    with chromium_page() as page:
        texts = visit_every_page(page, dashboard_url)
    assert {"Overview", "Service health", "Drift", "Performance", "Explain", "Services"} <= set(texts)
    assert "canary prediction" in texts["Service health"] and "drift" in texts["Drift"].lower()
