"""Services: what this dashboard watches, what each server says about its model, and how."""

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.access import sign_in_method
from dashboard.components import plain, when
from dashboard.state import health
from monitoring.health import short_reason
from monitoring.privacy import unknown_columns
from monitoring.service_lines import (
    connection_lines,
    metadata_lines,
    metrics_caption,
    poll_lines,
    poller_text,
    sign_in_caption,
    unknown_personal_warning,
)

current = state.settings()
runtime = state.runtime(current)

st.title("Services")
if current.is_demo:
    st.info("This is the **embedded demo**: a credit-risk model served by the reference FastAPI service "
            f"(`demo/service.py`) on {runtime.demo.url}, over Open Inference Protocol v2 and plain REST, "
            "with synthetic traffic replayed through it. To watch your own services, write a TOML file "
            "like the one below and run `streamlit run dashboard/app.py -- --config my.toml`.")
else:
    st.caption(f"Configuration: `{current.path}` · store: `{runtime.config.store.url.split('@')[-1]}`")

method = sign_in_method(st.secrets)
access = runtime.config.access
if method == "none":
    st.info(f"**No sign-in is configured**, so the dashboard listens on {st.get_option('server.address')} only "
            "(this machine) and everyone who opens it is an admin. To let others in, set up sign-in — OpenID "
            "Connect in `.streamlit/secrets.toml` `[auth]`, or passwords in `[vantage.passwords]` — and the roles "
            "in `[access]` (README, \"Operations and security\").", icon=":material/lock_open:")
else:
    st.caption(sign_in_caption(method, access))

for service in runtime.config.services:
    poller = runtime.collector.pollers[service.name]
    with st.container(border=True):
        st.subheader(service.name)
        meta = health.cached_metadata(runtime, service=service.name, tick=state.tick(60))
        left, right = st.columns(2)
        with left:
            st.markdown(connection_lines(service))
            holder = runtime.store.lease_holder(runtime.collector.lease_name(service.name))
            poll = runtime.collector.last_outcomes.get(service.name)
            st.markdown(poll_lines(
                poller=poller_text(holder, mine=holder == runtime.collector.holder),
                last_poll=when(poll.ts, now=runtime.now()) if poll else None, state=poll.state if poll else None,
                reason=plain(runtime.privacy.text(short_reason(poll.reason))) if poll else ""))
        with right:
            if "error" in meta:
                st.warning(f"Model metadata unavailable: {plain(short_reason(meta['error']))}")
            else:
                st.markdown(metadata_lines(meta))
        if poller.canary_problem:
            st.warning(poller.canary_problem)
        else:
            st.caption(f"Canary: {service.canary_rows} row(s) of `{service.reference}` sent at every poll.")
        schema = runtime.schema(service.name)
        st.markdown(f"**Columns** {plain(schema.describe())}")
        for problem in schema.problems:
            st.warning(plain(problem), icon=":material/table_rows:")
        if service.personal:
            try:
                logged = list(runtime.mirror(service.name).columns())
            except Exception:  # no log yet: the features and the target are what can be checked
                logged = []
            unknown = unknown_columns(service.personal, [*schema.features, schema.target or "", *logged])
            st.caption("Personal data (masked on every page, report, download and log line): "
                       + ", ".join(f"`{c}`" for c in service.personal))
            if runtime.privacy.key_problem:
                st.warning(plain(runtime.privacy.key_problem), icon=":material/key:")
            if unknown:
                st.warning(unknown_personal_warning(unknown, features=schema.features), icon=":material/lock:")
        if schema.features:
            with st.expander(f"Features in model order ({len(schema.features)})"):
                st.dataframe(pd.DataFrame({"feature": schema.features,
                                           "kind": [kind for _, kind in schema.kinds]}),
                             hide_index=True, width="stretch")
        if service.metrics:
            st.caption(metrics_caption(service.metrics))

st.subheader("Configuration in use")
st.caption("Secrets never appear here: an auth header names the environment variable its value comes from.")
st.code(Path(runtime.config.source).read_text(encoding="utf-8"), language="toml")
