"""Vantage: the entry point and router.

Run ``streamlit run dashboard/app.py`` for the embedded demo, or
``streamlit run dashboard/app.py -- --config my.toml`` for your own services.
"""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` puts only dashboard/ on the path

from dashboard import state
from dashboard.components import show_config_error, sidebar_status

st.set_page_config(page_title="Vantage", page_icon=":material/monitor_heart:", layout="wide")

current = state.settings()
if current.error is not None:
    page = st.navigation([st.Page(lambda: show_config_error(current.error), title="Configuration problem",
                                  icon=":material/error:")])
else:
    page = st.navigation({
        "Business": [
            st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        ],
        "Operations": [
            st.Page("views/health.py", title="Service health", icon=":material/monitor_heart:"),
        ],
        "Data science": [
            st.Page("views/drift.py", title="Drift", icon=":material/compare_arrows:"),
            st.Page("views/performance.py", title="Performance", icon=":material/target:"),
            st.Page("views/explain.py", title="Explain", icon=":material/psychology:"),
            st.Page("views/segments.py", title="Segments", icon=":material/groups:"),
            st.Page("views/whatif.py", title="What-if", icon=":material/tune:"),
        ],
        "Setup": [
            st.Page("views/services.py", title="Services", icon=":material/settings:"),
        ],
    })
    runtime = state.runtime(current)
    sidebar_status(current, runtime)
page.run()
