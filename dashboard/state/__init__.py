"""Streamlit caching and the runtime's lifecycle, and nothing else: one module per purpose.

* :mod:`~dashboard.state.lifecycle` — settings, the background runtime, :func:`tick`.
* :mod:`~dashboard.state.caching` — the one cache-key rule (read it there), as two decorators.
* :mod:`~dashboard.state.progress` — :func:`run_with_progress`, a long computation and its bar.
* One module of caches per page: :mod:`~dashboard.state.health` (Service health, Services),
  :mod:`~dashboard.state.data` (production data, labels, baselines: shared),
  :mod:`~dashboard.state.drift`, :mod:`~dashboard.state.performance`, :mod:`~dashboard.state.overview`,
  :mod:`~dashboard.state.segments`, :mod:`~dashboard.state.explain`, :mod:`~dashboard.state.whatif`.

Each cache calls one computation of ``monitoring`` or ``explain`` (pure functions with unit tests);
what a function here decides is only what it reads and how long it keeps the result.
"""

from dashboard.state.lifecycle import (
    Runtime,
    Settings,
    preload_explain,
    runtime,
    settings,
    stop_runtime,
    tick,
    var_dir,
)
from dashboard.state.progress import run_with_progress

__all__ = ["Runtime", "Settings", "preload_explain", "run_with_progress", "runtime", "settings", "stop_runtime", "tick",
           "var_dir"]
