"""The one cache-key rule of the dashboard, as the two decorators every cached function uses.

The rule
--------
A cached function takes the :class:`~dashboard.state.lifecycle.Runtime` first and everything
else by keyword (``cached_drift(runtime, *, service=..., window=...)``). Its key is

* the runtime, hashed as :meth:`Runtime.cache_key` — the configuration's fingerprint, the
  runtime's start time and every service's schema digest — so a new configuration, a
  restarted demo or a schema learnt from a server's metadata refreshes every cache at once;
* every keyword argument as given (widget values go in as arguments), except those named
  with a leading underscore (``_progress``, a callback);
* ``tick=`` (:func:`~dashboard.state.lifecycle.tick`) where a result must follow time passing,
  ``rows_seen=`` where it must follow new production rows: the caller passes them.

Keyword arguments are put in name order before they are hashed, so two callers that name them
in different orders share one entry.

There are no public wrappers around private cached functions: the function a page calls is
the cached one. ``@cache_data`` pickles results (a copy per call); ``@cache_resource`` shares
one object between sessions (read it, never change it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from dashboard.state.lifecycle import Runtime

F = TypeVar("F", bound=Callable)

HASH_FUNCS = {Runtime: Runtime.cache_key}
"""How a runtime enters a cache key (the rule above)."""


def _keyword_ordered(cached):
    """``cached`` called with its keyword arguments in name order (one key however a caller orders them)."""
    @functools.wraps(cached)
    def call(runtime: Runtime, /, **kwargs):
        return cached(runtime, **dict(sorted(kwargs.items())))

    call.clear = cached.clear
    return call


def _under_the_rule(streamlit_cache, **options) -> Callable[[F], F]:
    """Streamlit's ``streamlit_cache(**options)`` with the runtime hashed by its cache key, keywords in name order."""
    def decorate(function: F) -> F:
        return _keyword_ordered(streamlit_cache(**options, hash_funcs=HASH_FUNCS)(function))

    return decorate


def cache_data(*, ttl: float, max_entries: int, show_spinner: bool | str = False) -> Callable[[F], F]:
    """``st.cache_data`` under the dashboard's key rule (the runtime hashed by its cache key).

    Parameters
    ----------
    ttl : float
        Seconds a result is kept.
    max_entries : int
        Results kept per function.
    show_spinner : bool or str, default=False
        Streamlit's spinner while the function runs.

    Returns
    -------
    callable
        The decorator.
    """
    return _under_the_rule(st.cache_data, ttl=ttl, max_entries=max_entries, show_spinner=show_spinner)


def cache_resource(*, max_entries: int, ttl: float | None = None,
                   show_spinner: bool | str = False) -> Callable[[F], F]:
    """``st.cache_resource`` under the dashboard's key rule: one shared object per key.

    Parameters
    ----------
    max_entries : int
        Objects kept per function.
    ttl : float or None, default=None
        Seconds an object is kept (None: until evicted or the runtime changes).
    show_spinner : bool or str, default=False
        Streamlit's spinner while the function runs.

    Returns
    -------
    callable
        The decorator.
    """
    return _under_the_rule(st.cache_resource, ttl=ttl, max_entries=max_entries, show_spinner=show_spinner)
