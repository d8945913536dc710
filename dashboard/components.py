"""Small pieces of screen shared by several views."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import streamlit as st

from monitoring.config import ConfigError
from monitoring.health import STATE_STYLES, format_duration

BADGE_COLORS = {"up": "green", "degraded": "orange", "down": "red", "unknown": "gray"}
BADGE_ICONS = {"up": ":material/check_circle:", "degraded": ":material/warning:",
               "down": ":material/cancel:", "unknown": ":material/help:"}


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>!|~$#])")
_AUTOLINKS = re.compile(r"(?i)(://|www\.)")


def plain(text: object) -> str:
    """Text from a monitored service, escaped so that ``st.markdown`` and the alert boxes show it as it is.

    A service's error body is not ours: ``[x](http://evil) ![t](http://evil/t.png)`` must not
    become a live link or an image the browser fetches. The characters of links, images,
    emphasis, code and HTML are backslash-escaped, and ``://`` and ``www.`` are broken by an
    invisible word joiner (U+2060) so that no bare address becomes a link either: the browser's
    GFM autolinking runs on the text after backslash escapes are undone, so escapes cannot stop
    it. The text reads the same.
    """
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))
    return _AUTOLINKS.sub(lambda m: ":\u2060//" if m.group(1) == "://" else m.group(1)[:3] + "\u2060.", escaped)


_LEVELS = {"error": st.error, "warning": st.warning, "info": st.info, "success": st.success, "caption": st.caption}


def show_message(level: str, text: str, *, icon: str | None = None) -> None:
    """Show ``text`` in the box of ``level`` (``error``, ``warning``, ``info``, ``success``) or as a ``caption``:
    the levels the functions of ``monitoring`` and ``explain`` give their sentences."""
    if icon is None or level == "caption":
        _LEVELS[level](text)
    else:
        _LEVELS[level](text, icon=icon)


def service_problem(runtime, text: object, *, box=None, **kwargs) -> None:
    """Show a problem that may quote a monitored service's answer: secrets redacted, personal values masked, as
    plain text.

    ``box`` is the alert (``st.error`` by default); ``kwargs`` go to it (e.g. ``icon``).
    """
    (box or st.error)(plain(runtime.privacy.text(runtime.redact(text))), **kwargs)


def personal(runtime, service: str):
    """The :class:`monitoring.privacy.PersonalMask` of ``service``: what every table, chart and download of its
    data goes through before it is shown (a mask that changes nothing when the service has no personal column)."""
    return runtime.privacy.for_service(service)


def download_button(mask, label: str, data, **kwargs):
    """``st.download_button`` whose data (text, bytes, or a callable making them on click) has the personal values
    of ``mask`` masked: no download carries one in clear."""
    return st.download_button(label, mask.export(data), **kwargs)


def go_ahead(service, what: str, model_rows: int) -> bool:
    """Whether a black-box computation may start: at once when it is small, else after the user's go-ahead,
    with its estimate; above ``max_rows_per_computation`` it runs only to say why it is refused."""
    from explain._budget import needs_confirmation, rows_estimate

    if model_rows <= 0 or model_rows > service.explain.max_rows_per_computation:
        return True
    if not needs_confirmation(service, model_rows) or st.session_state.get(f"explain_go_{what}_{model_rows}"):
        return True
    st.info(f"{what.capitalize()} through the service needs {rows_estimate(service, model_rows)} "
            "(`[services.explain]` budget); other users of the service share it.", icon=":material/speed:")
    if st.button(f"Go ahead: {what}", key=f"explain_go_button_{what}"):
        st.session_state[f"explain_go_{what}_{model_rows}"] = True
        st.rerun()
    return False


def when(ts: float | None, *, now: float | None = None) -> str:
    """A timestamp as local-free UTC text plus how long before ``now`` (the runtime's clock), e.g.
    ``14:02:10 UTC (3 min ago)``."""
    if ts is None:
        return "never"
    moment = datetime.fromtimestamp(ts, tz=UTC)
    age = max((time.time() if now is None else now) - ts, 0.0)
    stamp = moment.strftime("%H:%M:%S UTC") if age < 86400 else moment.strftime("%d %b %H:%M UTC")
    return f"{stamp} ({format_duration(age)} ago)"


def demo_backfill(runtime) -> bool:
    """While the embedded demo back-fills its history, show how far it got and return True.

    Data pages call it before any verdict: judging a half-written history would give
    provisional sentences ("no predictions in the last 7 days", "labels matched no
    prediction") that change by the minute. The bar refreshes itself and the page reloads when
    the back-fill is done.
    """
    replayer = getattr(runtime.demo, "replayer", None) if runtime.demo is not None else None
    if replayer is None or replayer.backfill_done.is_set():
        return False
    _backfill_progress(replayer)
    return True


@st.fragment(run_every="2s")
def _backfill_progress(replayer) -> None:
    if replayer.backfill_done.is_set():
        st.rerun()
    done, total = replayer.backfilled_rows, replayer.backfill_total
    if total:
        text = (f"The demo is writing its four weeks of history: {done:,} of {total:,} predictions sent, "
                f"{total - done:,} left. Verdicts appear here once it is done.")
    else:
        text = "The demo is preparing its four weeks of history. Verdicts appear here once it is written."
    st.progress(done / total if total else 0.0, text=text)


def status_badge(state: str) -> None:
    """A coloured badge for a service state (up / degraded / down / unknown)."""
    st.badge(STATE_STYLES[state].label if state in STATE_STYLES else state,
             icon=BADGE_ICONS.get(state), color=BADGE_COLORS.get(state, "gray"))


def service_picker(runtime, *, key: str):
    """A service select box kept in the URL (``?service=``), so links keep the chosen service.

    Returns
    -------
    ServiceConfig
        The chosen service.
    """
    names = [s.name for s in runtime.config.services]
    chosen = st.query_params.get("service", names[0])
    name = st.selectbox("Service", names, index=names.index(chosen) if chosen in names else 0, key=key)
    st.query_params["service"] = name
    return runtime.config.service(name)


FILTER_OPERATORS = ("==", "!=", "<", "<=", ">", ">=")


def feature_condition(features: list[str], kinds: dict[str, str], *, key: str) -> tuple:
    """Inputs for one condition on a feature, for finding logged predictions.

    Returns
    -------
    tuple
        ``((feature, (operator, value)),)`` for :meth:`monitoring.store.Store.find_predictions`,
        or ``()`` until a value is typed. Numbers typed for a numeric feature compare as numbers.
    """
    columns = st.columns([2, 1, 2])
    feature = columns[0].selectbox("Feature", features, key=f"{key}_feature")
    operator = columns[1].selectbox("Condition", FILTER_OPERATORS, key=f"{key}_op")
    text = columns[2].text_input("Value", key=f"{key}_value").strip()
    if not text:
        return ()
    value: object = text
    if kinds.get(feature) == "numeric":
        try:
            value = float(text)
        except ValueError:
            st.warning(f"{feature} is numeric: type a number (got {text!r}).")
            return ()
    return ((feature, (operator, value)),)


def show_config_error(error: ConfigError) -> None:
    """Explain an unusable configuration file: which keys are wrong and what is accepted."""
    st.title("The configuration file cannot be used")
    st.error(f"**{error.source}** has {len(error.problems)} problem(s):\n\n"
             + "\n".join(f"- `{p.split(':', 1)[0]}`:{p.split(':', 1)[1]}" if ":" in p else f"- {p}"
                         for p in error.problems))
    st.markdown(
        "Fix the file and reload this page. The configuration reference in `README.md` lists every key, "
        "its default and what it accepts. Run `streamlit run dashboard/app.py` without `--config` to see "
        "the embedded demo and the configuration it uses (`var/demo/vantage.toml`)."
    )


def sidebar_status(current, runtime) -> None:
    """What this dashboard is watching, shown at the bottom of the sidebar."""
    with st.sidebar:
        services = runtime.config.services
        mode = "Embedded demo" if current.is_demo else f"Config: `{current.path}`"
        st.caption(f"{mode}  \nWatching {len(services)} service(s)  \n"
                   f"Collector {'running' if runtime.collector.running else 'stopped'} "
                   f"since {when(runtime.started_at)}")
