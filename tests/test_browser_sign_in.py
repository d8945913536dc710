"""Sign-in with OpenID Connect against a real provider process, in headless Chromium."""

import os
import subprocess
import sys

import pytest

from tests.browser import ROOT, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def oidc_dashboard(tmp_path, demo_model):
    """A provider that signs in bob@example.com, and the dashboard using it, bob an analyst."""
    from demo.runtime import free_port, offline_config_text

    provider_port, dashboard_port = free_port(), free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f"""
[auth]
redirect_uri = "http://127.0.0.1:{dashboard_port}/oauth2callback"
cookie_secret = "a-test-cookie-secret-of-enough-length-0123456789"
client_id = "vantage"
client_secret = "provider-secret"
server_metadata_url = "http://127.0.0.1:{provider_port}/.well-known/openid-configuration"
""")
    config = tmp_path / "vantage.toml"
    config.write_text(offline_config_text(store_path=tmp_path / "store.db", model=demo_model)
                      + '\n[access]\nanalysts = ["bob@example.com"]\nviewers = []\n')
    log = open(tmp_path / "processes.log", "w")  # noqa: SIM115  (closed below)
    provider = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "servers" / "oidc_provider.py"), "--port", str(provider_port),
         "--client-id", "vantage", "--client-secret", "provider-secret", "--email", "bob@example.com"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = dict(os.environ, VANTAGE_CONFIG=str(config))
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port",
         str(dashboard_port), "--server.address", "127.0.0.1", "--secrets.files", str(secrets)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    try:
        assert wait_http(f"http://127.0.0.1:{provider_port}/jwks", 30), (tmp_path / "processes.log").read_text()
        assert wait_http(f"http://127.0.0.1:{dashboard_port}/_stcore/health", 60), (
            (tmp_path / "processes.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        for process in (dashboard, provider):
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
        log.close()


def test_sign_in_with_the_provider_gives_the_analyst_pages_and_refuses_services(oidc_dashboard, open_page):
    from playwright.sync_api import expect

    page = open_page()
    page.goto(oidc_dashboard, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Sign in to Vantage")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("link", name="Drift")).to_have_count(0)  # nothing before signing in
    page.get_by_role("button", name="Sign in with your organisation's account").click()
    expect(page.get_by_text("Signed in as bob@example.com (analyst)")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=60_000)
    navigation = page.get_by_test_id("stSidebarNav")
    expect(navigation.get_by_role("link", name="Drift")).to_be_visible()
    expect(navigation.get_by_role("link", name="Services")).to_have_count(0)
    page.goto(f"{oidc_dashboard}/services", wait_until="domcontentloaded")
    expect(page.get_by_text("This page needs the admin role; bob@example.com is signed in as analyst.")
           ).to_be_visible(timeout=60_000)
