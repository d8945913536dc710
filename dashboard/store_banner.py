"""The store's health above the Service-health page: nothing when all is well, else what is wrong.

A store that is locked, full, read-only or unreachable does not stop polling: the collector
keeps what it polls in memory and writes it once the store is back
(:class:`monitoring.store.StoreHealth`). The banner says so, with the cause and how many rows
wait in memory or were dropped.
"""

from __future__ import annotations

import logging
import time

import streamlit as st

from dashboard.components import plain, when
from monitoring.store import StoreHealth

log = logging.getLogger(__name__)

TITLES = {
    "locked": "The store is locked",
    "full": "The store's disk is full",
    "read_only": "The store is read-only",
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


def store_banner(runtime) -> None:
    """Show the store's health for ``runtime`` (a :class:`dashboard.state.Runtime`); nothing when it is fine."""
    try:
        health = runtime.collector.store_health()
    except Exception:  # the banner must never take the page down with it
        log.exception("could not read the store's health")
        return
    message = store_message(health, now=time.time())
    if message is None:
        return
    level, text = message
    if level == "error":
        st.error(text, icon=":material/database:")
    else:
        st.warning(text, icon=":material/database:")
