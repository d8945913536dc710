"""Service health: is every prediction service up, fast and answering correctly?"""

import streamlit as st

from dashboard import state
from dashboard.components import personal, plain, service_picker, service_problem, status_badge, when
from dashboard.state import health as cache
from dashboard.store_banner import store_banner, store_fragment
from monitoring.config import SloConfig
from monitoring.health_lines import (
    buckets_caption,
    budget_display,
    burn_table,
    fleet_table,
    history_is_short,
    incidents_frame,
    latency_help,
    millis_text,
    percent_text,
    poll_caption,
    slo_caption,
    traffic_origin,
    uptime_help,
)
from monitoring.plots import health as plots
from monitoring.service_health import TIME_WINDOWS

current = state.settings()
runtime = state.runtime(current)
store_banner(runtime)
services = runtime.config.services

st.title("Service health")
st.caption("Liveness, readiness and a small canary prediction are checked at every poll; uptime, "
           "latency and error budgets below are computed from those checks and, where configured, "
           "from the service's own Prometheus metrics (its real traffic).")

if len(services) > 1:
    fastest = min(s.poll_interval for s in services)

    @store_fragment(runtime, run_every=fastest)
    def fleet_panel() -> None:
        rows = cache.cached_fleet(runtime, tick=state.tick(fastest))
        table = fleet_table(rows, reason_text=runtime.privacy.text,  # a reason may quote a personal value
                            poll_text=lambda ts: when(ts, now=runtime.now()))
        st.subheader("Fleet")
        st.dataframe(table, hide_index=True, column_config={
            "Uptime 24 h": st.column_config.NumberColumn(format="%.2f %%"),
            "Canary p95 (1 h)": st.column_config.NumberColumn(format="%.0f ms"),
            "Error rate (1 h)": st.column_config.TextColumn(
                help="5xx answers as a share of requests, from the service's own metrics"),
        })

    fleet_panel()

service = service_picker(runtime, key="health_service")
mask = personal(runtime, service.name)

with st.expander("SLO targets", icon=":material/tune:"):
    st.caption("The objectives come from the configuration (`[services.slo]`). Change them here to see the error "
               "budgets and burn rates under other targets, in this view only; poll verdicts keep using the "
               "configured latency objective.")
    configured = service.slo
    columns = st.columns(4)
    slo = SloConfig(
        availability=columns[0].number_input(
            "Availability target (%)", min_value=50.0, max_value=99.999, value=configured.availability * 100,
            step=0.1, format="%.3f", key=f"health_slo_availability_{service.name}") / 100,
        latency_ms=columns[1].number_input(
            "Latency objective (ms)", min_value=1.0, max_value=600_000.0, value=configured.latency_ms, step=50.0,
            key=f"health_slo_latency_ms_{service.name}"),
        latency_target=columns[2].number_input(
            "Canaries within it (%)", min_value=50.0, max_value=99.999, value=configured.latency_target * 100,
            step=0.1, format="%.3f", key=f"health_slo_latency_target_{service.name}") / 100,
        window_days=columns[3].number_input(
            "SLO period (days)", min_value=1, max_value=90, value=configured.window_days,
            key=f"health_slo_window_{service.name}"),
    )


@store_fragment(runtime, run_every=service.poll_interval)
def live_panel() -> None:
    health = cache.cached_service_health(runtime, service=service.name, slo=slo,
                                         tick=state.tick(service.poll_interval))
    status = health.status
    with st.container(border=True):
        left, right = st.columns([3, 2], vertical_alignment="center")
        with left:
            status_badge(status.state)
            st.text(mask.text(status.reason))  # the service's own words: plain text, never Markdown
            if status.details:
                with st.expander("The service's whole answer"):
                    st.code(mask.text(status.details), language="text", wrap_lines=True)
            st.caption(poll_caption(service, last_poll=when(status.last_poll_ts, now=runtime.now()),
                                    since=when(status.since_ts, now=runtime.now()) if status.since_ts else None))
        with right:
            st.caption(f"Last {len(health.heartbeat)} polls (oldest left; hover for details)")
            st.plotly_chart(mask.figure(plots.heartbeat_figure(health.heartbeat)), config={"displayModeBar": False},
                            key="health_heartbeat")

    if history_is_short(health.history_since, now=runtime.now()):
        st.caption(f"History starts {when(health.history_since, now=runtime.now())}: longer windows cover only "
                   "that span.")
    uptime_columns = st.columns(len(health.uptime) + 1)
    for column, (label, result) in zip(uptime_columns, health.uptime.items(), strict=False):
        column.metric(f"Uptime {label}", percent_text(result.fraction), help=uptime_help(result))
    uptime_columns[-1].metric("Canary p95 (recent)", millis_text(health.recent_latency.get("p95_ms")),
                              help=latency_help(health.recent_latency))

    st.subheader("Service-level objectives")
    st.caption(slo_caption(slo))
    budget_columns = st.columns(2)
    history_note = health.slo_history_note()
    for column, (sli, budget) in zip(budget_columns, health.budgets.items(), strict=True):
        alerts = health.burn[sli]
        with column, st.container(border=True):
            shown = budget_display(budget)
            if history_note is not None:  # a budget verdict on 35 minutes of a 30-day period says nothing
                st.metric(f"{sli.capitalize()} error budget left", "–", help=shown.events)
                st.info(f"Error budget: {history_note}.")
            else:
                st.metric(f"{sli.capitalize()} error budget left", shown.value, delta=shown.delta,
                          delta_color="inverse", delta_arrow="off", help=shown.events)
                if shown.progress is not None:
                    st.progress(shown.progress)
            verdict = {"page": st.error, "ticket": st.warning, "ok": st.success}.get(alerts.verdict, st.info)
            verdict(alerts.reason)
            st.dataframe(burn_table(alerts), hide_index=True)

    st.subheader("Incidents")
    incidents = health.incidents
    if incidents.empty:
        st.success("No incident in the last 30 days: the service has not been degraded or down.")
    else:
        st.dataframe(incidents_frame(incidents, reason_text=mask.text), hide_index=True,
                     column_config={"Started": st.column_config.DatetimeColumn(format="D MMM, HH:mm:ss")})


live_panel()

st.subheader("Over time")
window = st.segmented_control("Time range", list(TIME_WINDOWS), default="1h", key="health_window",
                              required=True)


@store_fragment(runtime, run_every=max(service.poll_interval, 15))
def charts() -> None:
    length, bucket = TIME_WINDOWS[window]
    health_now = cache.cached_service_health(runtime, service=service.name, slo=slo,
                                             tick=state.tick(service.poll_interval))
    series = cache.cached_time_series(runtime, service=service.name, window=window,
                                      tick=state.tick(max(service.poll_interval, bucket / 60)))
    x_range = (series.since, series.until)
    st.plotly_chart(plots.latency_figure(series.probe_latency, slo_ms=slo.latency_ms, x_range=x_range),
                    key="health_probe_latency")
    st.plotly_chart(plots.uptime_strip_figure(series.states, x_range=x_range), key="health_states")
    problem = health_now.metrics_problem or series.traffic_problem
    if problem:  # a configured metric not found, or Prometheus not answering, is said, not an empty chart
        service_problem(runtime, f"Real traffic cannot be charted: {problem}", box=st.warning)
    if series.traffic is None and not problem:
        st.info("Set `[services.metrics]` for this service to chart its real traffic (request rate, error rate "
                "and latency from its own Prometheus histogram): `url` for an endpoint Vantage scrapes, or "
                "`prometheus` and `selector` to read them from your Prometheus.")
    elif series.traffic is not None:
        origin = traffic_origin(series)
        st.plotly_chart(plots.traffic_figure(series.traffic, title=f"Real traffic ({origin})", x_range=x_range),
                        key="health_traffic")
        st.plotly_chart(plots.latency_figure(series.traffic, title=f"Request latency (real traffic, {origin})",
                                             slo_ms=slo.latency_ms, x_range=x_range),
                        key="health_traffic_latency")
    if series.traffic_source:
        st.caption(plain(f"Real traffic {series.traffic_source}."))
    if series.traffic_queries:
        with st.expander("PromQL behind these charts"):
            st.code("\n".join(series.traffic_queries), language="text", wrap_lines=True)
    st.caption(buckets_caption(bucket_seconds=series.bucket_seconds, window_seconds=length))


charts()
