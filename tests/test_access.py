"""Sign-in and roles: password checks, the pages each role sees, refusals at a page's own URL."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access import (
    PAGE_ROLES,
    FailedAttempts,
    check_password,
    failure_delay,
    hash_password,
    is_loopback,
    may_open,
    password_hashes,
    sign_in_method,
    verify,
)
from monitoring.config import AccessConfig

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
ALICE = hash_password("correct horse", iterations=1000)
BOB = hash_password("battery staple", iterations=1000)


def test_roles_open_their_pages_and_no_others():
    assert [p for p in PAGE_ROLES if may_open("viewer", p)] == ["overview", "health"]
    assert [p for p in PAGE_ROLES if may_open("analyst", p)] == [p for p in PAGE_ROLES if p != "services"]
    assert all(may_open("admin", p) for p in PAGE_ROLES)
    assert not may_open("", "overview") and not may_open("viewer", "no-such-page")
    access = AccessConfig(admins=("Alice@Example.com",), analysts=("bob",))
    assert access.role_of("alice@example.com") == "admin"
    assert access.role_of("bob") == "analyst"
    assert access.role_of("carol") == "viewer"  # viewers default to "*": anyone signed in
    assert AccessConfig(viewers=()).role_of("carol") is None
    assert access.role_of(None) is None


def test_passwords_are_hashed_checked_in_constant_time_and_failures_slow_down():
    assert check_password("correct horse", ALICE) and not check_password("wrong", ALICE)
    assert not check_password("x", "not a hash") and not check_password("x", "md5$1$aa$bb")
    hashes = {"alice": ALICE, "bob": BOB}
    assert verify("Alice", "correct horse", hashes)
    assert not verify("alice", "battery staple", hashes)
    assert not verify("mallory", "correct horse", hashes)  # unknown names cost a hash too
    assert [failure_delay(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    attempts = FailedAttempts()
    attempts.failed("Alice")
    attempts.failed("alice")
    assert attempts.count("ALICE") == 2
    attempts.succeeded("alice")
    assert attempts.count("alice") == 0


def test_the_sign_in_method_comes_from_secrets_and_the_environment():
    assert sign_in_method({}, {}) == "none"
    assert sign_in_method({"auth": {"client_id": "x"}}, {}) == "oidc"
    assert sign_in_method({"vantage": {"passwords": {"alice": ALICE}}}, {}) == "password"
    assert sign_in_method({}, {"VANTAGE_PASSWORD": "s3cret"}) == "password"
    assert verify("admin", "s3cret", password_hashes({}, {"VANTAGE_PASSWORD": "s3cret"}))
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback(None) and not is_loopback("")


@pytest.fixture
def signed_app(tmp_path, monkeypatch, demo_model):
    """The dashboard on an offline config whose [access] makes bob a viewer and alice an admin."""
    from demo.runtime import offline_config_text

    config = tmp_path / "vantage.toml"
    config.write_text(offline_config_text(store_path=tmp_path / "store.db", model=demo_model)
                      + '\n[access]\nadmins = ["alice"]\nviewers = ["bob"]\n')
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=90)
    at.secrets["vantage"] = {"passwords": {"alice": ALICE, "bob": BOB}}
    yield at
    from dashboard import state

    state.stop_runtime()


def sign_in(at, name: str, password: str):
    at.text_input(key="access_name").input(name)
    at.text_input(key="access_password_text").input(password)
    return at.button[0].click().run()


def test_password_sign_in_then_a_viewer_sees_its_pages_and_is_refused_the_others(signed_app):
    at = signed_app.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Sign in to Vantage"
    at = sign_in(at, "bob", "wrong")
    assert "The user name or the password is wrong." in [e.value for e in at.error]
    started = time.monotonic()
    at = sign_in(at, "bob", "wrong again")
    assert time.monotonic() - started >= 0.5  # the second failure waits
    at = sign_in(at, "bob", "battery staple")
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert "Signed in as bob (viewer)" in [c.value for c in at.sidebar.caption]
    at.switch_page("views/health.py").run()
    assert at.title[0].value == "Service health"
    # /drift: not in the navigation, its URL answers a refusal (AppTest cannot switch to a callable page by name)
    at._page_hash = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == "drift")
    at.run()
    assert not at.exception, at.exception
    assert "This page needs the analyst role; bob is signed in as viewer." in [e.value for e in at.error]
    assert not list(at.dataframe)  # nothing of the page itself


def test_an_admin_opens_the_services_page(signed_app):
    at = sign_in(signed_app.run(), "alice", "correct horse")
    at.switch_page("views/services.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Services"
    assert any("Sign-in: user name and password" in c.value for c in at.caption)


def test_without_sign_in_the_dashboard_serves_this_machine_only(monkeypatch, demo_model, tmp_path):
    from streamlit import config as streamlit_config

    from demo.runtime import offline_config_text

    config = tmp_path / "vantage.toml"
    config.write_text(offline_config_text(store_path=tmp_path / "store.db", model=demo_model))
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    monkeypatch.delenv("VANTAGE_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page("views/services.py").run()
    assert any("No sign-in is configured" in i.value for i in at.info)
    previous = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(APP, default_timeout=90).run()
        assert at.title[0].value == "Vantage is not served on this address"
        assert "no sign-in is configured" in at.error[0].value
    finally:
        streamlit_config.set_option("server.address", previous)
        from dashboard import state

        state.stop_runtime()


def test_the_explanation_libraries_load_after_the_first_page_not_beside_it(tmp_path, monkeypatch, demo_model):
    """A first Drift view over a large log took 2.4-3.4 s beside the import, 1.6 s after it."""
    from dashboard import state
    from dashboard.state import lifecycle
    from demo.runtime import offline_config_text

    config = tmp_path / "vantage.toml"
    config.write_text(offline_config_text(store_path=tmp_path / "store.db", model=demo_model))
    monkeypatch.setenv("VANTAGE_CONFIG", str(config))
    seen: list[str] = []
    monkeypatch.setattr(lifecycle, "preload_explain", lambda: seen.append("lifecycle"))  # what runtime start calls
    monkeypatch.setattr(state, "preload_explain", lambda: seen.append("after the page"))
    at = AppTest.from_file(APP, default_timeout=90).switch_page("views/health.py")
    try:
        at.run()
        assert not at.exception, at.exception
        assert at.title[0].value == "Service health"
        assert seen == ["after the page"]  # once the page was drawn (app.py), and not by the runtime's start
    finally:
        state.stop_runtime()
