"""Vantage: the entry point and router.

Run ``streamlit run dashboard/app.py`` for the embedded demo, or
``streamlit run dashboard/app.py -- --config my.toml`` for your own services.
"""

import sys
from pathlib import Path

import sqlalchemy as sa
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` puts only dashboard/ on the path

from dashboard import sign_in, state
from dashboard.components import show_config_error, sidebar_status
from dashboard.store_banner import show_store_read_failure

st.set_page_config(page_title="Vantage", page_icon=":material/monitor_heart:", layout="wide")

PAGES = {  # section → (file, title, icon); each page's URL path is its file name, its least role in access.py
    "Business": [("views/overview.py", "Overview", ":material/dashboard:")],
    "Operations": [("views/health.py", "Service health", ":material/monitor_heart:")],
    "Data science": [
        ("views/drift.py", "Drift", ":material/compare_arrows:"),
        ("views/performance.py", "Performance", ":material/target:"),
        ("views/explain.py", "Explain", ":material/psychology:"),
        ("views/segments.py", "Segments", ":material/groups:"),
        ("views/whatif.py", "What-if", ":material/tune:"),
    ],
    "Setup": [("views/services.py", "Services", ":material/settings:")],
}


def pages_for(visitor) -> dict:
    """The navigation of ``visitor``: pages of its role; the others answer their URL with a refusal, unlisted."""
    sections: dict[str, list] = {}
    for section, pages in PAGES.items():
        for path, title, icon in pages:
            url_path = Path(path).stem
            default = url_path == "overview"
            if visitor.may_open(url_path):
                page = st.Page(path, title=title, icon=icon, default=default)
            else:
                page = st.Page(sign_in.refusal(title, sign_in.needed_role(url_path), visitor), title=title,
                               icon=icon, url_path=url_path, visibility="hidden")
            sections.setdefault(section, []).append(page)
    return sections


current = state.settings()
runtime = None
address = sign_in.unsafe_address()
visitor = None if address is not None else sign_in.current_visitor(current)
if address is not None:
    page = st.navigation([st.Page(lambda: sign_in.refuse_to_serve(address), title="Not served here",
                                  icon=":material/lock:")])
elif visitor is None:
    page = st.navigation([st.Page(lambda: sign_in.sign_in_page(current), title="Sign in", icon=":material/login:")])
elif not visitor.role:
    page = st.navigation([st.Page(lambda: sign_in.no_role_page(visitor), title="No access", icon=":material/lock:")])
elif current.error is not None:
    page = st.navigation([st.Page(lambda: show_config_error(current.error), title="Configuration problem",
                                  icon=":material/error:")])
else:
    page = st.navigation(pages_for(visitor))
    runtime = state.runtime(current)
    sidebar_status(current, runtime)
    if visitor.method != "none":
        st.sidebar.caption(f"Signed in as {visitor.name} ({visitor.role})")
        if st.sidebar.button("Sign out", key="access_sign_out"):
            sign_in.sign_out(visitor)
try:
    page.run()
except sa.exc.OperationalError as exc:  # the store went away under the page: a state to show, not a traceback
    if runtime is None:
        raise
    show_store_read_failure(runtime, exc)
finally:  # the page is drawn (or stopped): the explanation libraries load while it is read
    if runtime is not None:
        state.preload_explain()
