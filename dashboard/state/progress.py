"""A long computation run in a worker thread while the page draws its progress bar."""

from __future__ import annotations

import threading

import streamlit as st


def run_with_progress(label: str, function, *args, **kwargs):
    """Call ``function(*args, _progress=..., **kwargs)`` showing a progress bar if it takes over half a second.

    The call runs in a worker thread (with this session's script context) while this thread
    draws the bar from the progress the function reports; its result or exception is passed on.

    Parameters
    ----------
    label : str
        What the bar says is being done.
    function : callable
        A function taking ``_progress(fraction, text)`` as a keyword.
    *args, **kwargs
        Passed on to ``function``.

    Returns
    -------
    object
        What ``function`` returns; what it raises is raised here.
    """
    from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

    state_ = {"fraction": 0.0, "text": "starting", "done": False, "result": None, "error": None}

    def report(fraction: float, text: str) -> None:
        state_["fraction"], state_["text"] = fraction, text

    def work() -> None:
        try:
            state_["result"] = function(*args, _progress=report, **kwargs)
        except BaseException as exc:  # handed to the page thread below
            state_["error"] = exc
        finally:
            state_["done"] = True

    worker = threading.Thread(target=work, daemon=True, name="vantage-explain-work")
    add_script_run_ctx(worker, get_script_run_ctx(suppress_warning=True))
    worker.start()
    worker.join(0.5)
    if not state_["done"]:
        bar = st.progress(0.0, text=f"{label}…")
        while not state_["done"]:
            worker.join(0.2)
            bar.progress(min(max(float(state_["fraction"]), 0.0), 1.0), text=f"{label}: {state_['text']}")
        bar.empty()
    if state_["error"] is not None:
        raise state_["error"]
    return state_["result"]
