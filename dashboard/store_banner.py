"""The store's health above the Service-health page: nothing when all is well, else what is wrong.

Below it, one line per service whose traffic a capture process (the capturing proxy, the KServe
logger endpoint) logs: rows logged and what could not be (:func:`capture_message`).

A store that is locked, full, read-only or unreachable (a PostgreSQL server that is down: the
cause names its host and port) does not stop polling: the collector
keeps what it polls in memory and writes it once the store is back
(:class:`monitoring.store.StoreHealth`). The banner says so, with the cause and how many rows
wait in memory or were dropped.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time

import streamlit as st

from dashboard.components import plain, show_message, when
from monitoring.capture import capture_summary
from monitoring.store import StoreHealth

log = logging.getLogger(__name__)

TITLES = {
    "locked": "The store is locked",
    "full": "The store's disk is full",
    "read_only": "The store is read-only",
    "unreachable": "The store cannot be reached",
    "unavailable": "The store does not take writes",
    "recreated": "The store file was deleted and created again",
}
"""Headline of the banner per :data:`monitoring.store.STORE_STATES` (``ok`` has none)."""


def store_message(health: StoreHealth, *, now: float) -> tuple[str, str] | None:
    """What the banner says about ``health``: ``(level, markdown)``, or None when there is nothing to say.

    Parameters
    ----------
    health : StoreHealth
    now : float
        Wall-clock Unix seconds (an outage happens in real time, whatever clock the pages use).

    Returns
    -------
    tuple of (str, str) or None
        ``level`` is ``"error"`` while the store refuses writes, ``"warning"`` when it takes
        them again but history was lost (the file was recreated, or rows were dropped).
    """
    if health.state == "ok" and not health.dropped:
        return None  # rows waiting a moment for the writer thread are no news
    since = when(health.since, now=now) if health.since is not None else None
    dropped = f"**{health.dropped:,} rows were dropped** because the buffer in memory was full."
    if health.state in ("ok", "recreated"):  # writes go through again, but history was lost
        parts = [f"**{TITLES.get(health.state, 'Some polls were not recorded')}**" + (f" ({since})" if since else "")
                 + (f": {plain(health.cause)}." if health.cause else ".")]
        if health.dropped:
            parts.append(dropped)
        return "warning", " ".join(parts)
    parts = [f"**{TITLES.get(health.state, TITLES['unavailable'])}**" + (f" since {since}" if since else "")
             + f": {plain(health.cause)}.",
             f"Polling goes on: **{health.buffered:,} rows** wait in memory and are written as soon as the store "
             "takes writes again.",
             dropped if health.dropped else "Nothing has been dropped."]
    return "error", " ".join(parts)


CAPTURE_PROBLEMS = (
    ("not_json", "not JSON"),
    ("unparsed", "not of the protocol's shape"),
    ("oversized", "over the size cap (forwarded, not logged)"),
    ("error_answers", "error answers (forwarded, not logged)"),
    ("upstream_down", "upstream down (answered 502/504)"),
    ("without_id", "CloudEvents without an id"),
    ("responses_without_request", "responses without their request"),
    ("requests_without_response", "requests without a response"),
    ("exchanges_dropped", "dropped: the capture queue was full"),
    ("rows_dropped", "rows dropped: the store refused writes too long"),
)
"""Counters of :data:`monitoring.capture.COUNTERS` that mean something was not logged, and their words."""


def capture_message(service: str, summary: dict) -> tuple[str, str]:
    """What the capture line of ``service`` says: ``(level, markdown)``.

    ``level`` is ``"warning"`` when rows were lost (dropped, or the store refuses them),
    ``"info"`` when some exchanges were not logged for a reason of their own, ``"caption"``
    when everything was logged.
    """
    counts = summary["counts"]
    text = (f"**Capture of {plain(service)}** ({plain(', '.join(summary['sources']))}): "
            f"{counts['exchanges']:,} calls captured, {counts['rows_logged']:,} rows logged")
    if counts.get("rows_pending"):
        text += f", {counts['rows_pending']:,} waiting for the store"
    problems = [f"{counts[key]:,} {words}" for key, words in CAPTURE_PROBLEMS if counts.get(key)]
    if problems:
        text += ". Not logged: " + "; ".join(problems)
    if summary["problems"]:
        text += f". Last: {plain(summary['problems'][0])}"
    if summary["store_problems"]:
        text += f". The store: {plain(summary['store_problems'][0])}"
    lost = counts.get("rows_dropped") or counts.get("exchanges_dropped") or summary["store_problems"]
    return ("warning" if lost else "info" if problems else "caption"), text + "."


def capture_banner(runtime) -> None:
    """One line per service whose traffic is captured; nothing for the others."""
    for service in runtime.config.services:
        summary = capture_summary(runtime.store, service.name)
        if summary is None:
            continue
        show_message(*capture_message(service.name, summary))


def store_read_message(store, exc: BaseException) -> str:
    """What a page says instead of its content when ``store`` could not be read: markdown, no traceback.

    Parameters
    ----------
    store : monitoring.store.Store
        The store whose read failed; :meth:`~monitoring.store.Store.diagnose` names the cause (for
        PostgreSQL, the server's host and port and what failed).
    exc : exception
        What the read raised.

    Returns
    -------
    str
    """
    state, cause = store.diagnose(exc)
    title = TITLES.get(state, "The store cannot be read")
    return (f"**{title}**: {plain(cause)}. This page shows the store's data and cannot be drawn until the store "
            "answers again; the collector keeps polling and holds its rows in memory meanwhile.")


@contextlib.contextmanager
def store_reads(runtime):
    """Inside a fragment (which the router's own handler does not reach): a store that fails a read is a message."""
    import sqlalchemy as sa

    try:
        yield
    except sa.exc.OperationalError as exc:
        show_store_read_failure(runtime, exc)


def store_fragment(runtime, **options):
    """``st.fragment(**options)`` whose body shows a store that fails a read as a message (:func:`store_reads`)."""
    def decorate(function):
        @functools.wraps(function)
        def body(*args, **kwargs):
            with store_reads(runtime):
                return function(*args, **kwargs)
        return st.fragment(body, **options)
    return decorate


def show_store_read_failure(runtime, exc: BaseException) -> None:
    """Show :func:`store_read_message` for ``runtime``'s store (the router calls it when a page's read fails)."""
    st.error(store_read_message(runtime.store, exc), icon=":material/database:")


def store_banner(runtime) -> None:
    """Show the store's health for ``runtime`` (a :class:`dashboard.state.Runtime`); nothing when it is fine."""
    try:
        health = runtime.collector.store_health()
    except Exception:  # the banner must never take the page down with it
        log.exception("could not read the store's health")
        return
    message = store_message(health, now=time.time())
    if message is not None:
        level, text = message
        if level == "error":
            st.error(text, icon=":material/database:")
        else:
            st.warning(text, icon=":material/database:")
    try:
        capture_banner(runtime)
    except Exception:
        log.exception("could not read what capture counted")
