"""The sign-in screens and the gate every page goes through (see :mod:`dashboard.access` for the rules)."""

from __future__ import annotations

import time

import streamlit as st

from dashboard.access import (
    PAGE_ROLES,
    FailedAttempts,
    Visitor,
    failure_delay,
    is_loopback,
    password_hashes,
    sign_in_method,
    verify,
)
from monitoring.config import AccessConfig

SESSION_KEY = "access_visitor"


@st.cache_resource(show_spinner=False)
def _failed_attempts() -> FailedAttempts:
    return FailedAttempts()


def _access(settings) -> AccessConfig:
    return settings.config.access if settings.config is not None else AccessConfig()


def current_visitor(settings) -> Visitor | None:
    """Who is using this session, or None until they sign in. A signed-in identity without a role gets
    ``role=""`` (shown the "no access" screen)."""
    method = sign_in_method(st.secrets)
    if method == "none":
        return Visitor("local", "admin", "none")
    if method == "oidc":
        if not st.user.is_logged_in:
            return None
        identity = str(st.user.get("email") or st.user.get("sub") or "")
        return Visitor(identity, _access(settings).role_of(identity) or "", "oidc")
    return st.session_state.get(SESSION_KEY)


def unsafe_address() -> str | None:
    """The server's address when it is reachable from other machines while no sign-in is configured."""
    address = st.get_option("server.address")
    if sign_in_method(st.secrets) == "none" and not is_loopback(address):
        return address or "every interface"
    return None


def refuse_to_serve(address: str) -> None:
    """The only page served when the dashboard listens beyond this machine without sign-in."""
    st.title("Vantage is not served on this address")
    st.error(f"The dashboard listens on {address} but no sign-in is configured: anyone who reaches it would see "
             "production data and could send requests to the models. Set up sign-in (README, \"Operations and "
             "security\"), or run it on this machine only: `streamlit run dashboard/app.py --server.address "
             "127.0.0.1`.")


def sign_in_page(settings) -> None:
    """Sign in with the OpenID Connect provider, or with a user name and password."""
    st.title("Sign in to Vantage")
    method = sign_in_method(st.secrets)
    if method == "oidc":
        st.write("Vantage shows production data and can send requests to the models it watches, so it needs to "
                 "know who you are.")
        if st.button("Sign in with your organisation's account", type="primary", key="access_sign_in"):
            st.login()
        return
    with st.form("access_password"):
        name = st.text_input("User name", key="access_name")
        password = st.text_input("Password", type="password", key="access_password_text")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    attempts = _failed_attempts()
    time.sleep(failure_delay(attempts.count(name)))  # every failure doubles the wait for this name
    if not verify(name, password, password_hashes(st.secrets)):
        attempts.failed(name)
        st.error("The user name or the password is wrong.")
        return
    attempts.succeeded(name)
    identity = name.strip().lower()
    st.session_state[SESSION_KEY] = Visitor(identity, _access(settings).role_of(identity) or "", "password")
    st.rerun()


def sign_out(visitor: Visitor) -> None:
    """End the session's sign-in."""
    st.session_state.pop(SESSION_KEY, None)
    if visitor.method == "oidc":
        st.logout()
    st.rerun()


def no_role_page(visitor: Visitor) -> None:
    """A signed-in identity that ``[access]`` gives no role."""
    st.title("No access yet")
    st.warning(f"You are signed in as {visitor.name}, who has no role in this dashboard's `[access]` settings. "
               "Ask one of its admins to add you.")
    if st.button("Sign out", key="access_sign_out_no_role"):
        sign_out(visitor)


def refusal(title: str, needed: str, visitor: Visitor):
    """A page that refuses ``visitor``: served at the page's own URL, hidden from the navigation."""

    def page() -> None:
        st.title(title)
        st.error(f"This page needs the {needed} role; {visitor.name} is signed in as {visitor.role}.")

    return page


def needed_role(url_path: str) -> str:
    """The least role of a page."""
    return PAGE_ROLES.get(url_path, "admin")
