"""Every page of the dashboard on the embedded demo, in headless Chromium: no exception, real content."""

import pytest

from tests.browser import visit_every_page

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_every_page_opens_without_an_exception(dashboard_url, open_page):
    texts = visit_every_page(open_page(), dashboard_url)
    assert {"Overview", "Service health", "Drift", "Performance", "Explain", "Services"} <= set(texts)
    assert "canary prediction" in texts["Service health"] and "drift" in texts["Drift"].lower()
