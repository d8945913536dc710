"""The traffic budget of a service: a token bucket of model rows per second that paces every black-box request.

Every request a black-box computation sends (Shapley values, partial dependence, What-if,
counterfactuals, the baseline's scoring of the reference) is paced by the service's
:class:`RowBudget`, a token bucket of model rows per second shared by every thread and session of
one process (:func:`service_budget`), in requests of at most ``max_rows_per_request`` rows, and a
computation that would send more than ``max_rows_per_computation`` rows in all is refused before
its first request (:class:`BudgetExceededError`), with its estimate. The keys are in
``[services.explain]``; the defaults are conservative (2,000 rows/s in requests of 500 rows).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from explain._errors import ExplainError
from monitoring.config import ServiceConfig


class BudgetExceededError(ExplainError):
    """A computation that would send the service more model rows than its budget allows; nothing was sent.

    Parameters
    ----------
    service : str
    rows : int
        Model rows the computation needs.
    limit : int
        ``[services.explain] max_rows_per_computation``.
    rate : float
        ``max_rows_per_second``, for the time the rows would take.
    """

    def __init__(self, service: str, rows: int, limit: int, rate: float):
        self.service = service
        self.rows = rows
        self.limit = limit
        super().__init__(
            f"This needs about {rows:,} model rows from service {service} ({duration_text(rows / rate)} at "
            f"{rate:,.0f} rows/s), more than the {limit:,} one computation may send "
            "([services.explain] max_rows_per_computation). Explain fewer rows, use a smaller background "
            "(background_rows), configure the model artifact to explain it locally, or raise the limit.")


def duration_text(seconds: float) -> str:
    """``"~30 s"``, ``"~4 min"`` or ``"~2.5 h"``."""
    if seconds < 90:
        return f"~{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class BudgetCounters:
    """What a :class:`RowBudget` has let through since it was made.

    Attributes
    ----------
    rows : int
        Model rows sent.
    requests : int
        Requests sent.
    waited_s : float
        Seconds callers spent waiting for the budget, added over callers.
    first_s, last_s : float or None
        Monotonic times of the first and the latest request let through.
    """

    rows: int = 0
    requests: int = 0
    waited_s: float = 0.0
    first_s: float | None = None
    last_s: float | None = None


class RowBudget:
    """A token bucket of model rows per second: the pace of every black-box request to one service.

    The bucket holds at most ``burst`` rows and refills at ``rows_per_second``; a request of ``n``
    rows takes ``n`` tokens and waits while the bucket is in debt, so over any interval of ``T``
    seconds at most ``burst + rows_per_second * T`` rows are let through, however many threads
    share the budget. Callers are served in the order they ask.

    Parameters
    ----------
    rows_per_second : float
    burst : int
        Bucket size; the largest request (``max_rows_per_request``) is the natural choice.
    monotonic, sleep : callable, optional
        The clock and the wait (tests pass a fake clock).
    """

    def __init__(self, rows_per_second: float, *, burst: int, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rows_per_second > 0:
            raise ValueError(f"rows_per_second must be > 0; got {rows_per_second!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1; got {burst!r}")
        self.rows_per_second = float(rows_per_second)
        self.burst = int(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = monotonic()
        self._counters = BudgetCounters()

    def wait_for(self, rows: int) -> float:
        """Seconds a request of ``rows`` rows would wait now (without taking anything)."""
        with self._lock:
            tokens = min(self.burst, self._tokens + (self._monotonic() - self._updated) * self.rows_per_second)
        return max(0.0, (rows - tokens) / self.rows_per_second)

    def acquire(self, rows: int) -> float:
        """Take ``rows`` tokens, waiting as long as the bucket needs to refill; return the seconds waited.

        Parameters
        ----------
        rows : int
            Rows of the request about to be sent (at least 1 counts).
        """
        rows = max(int(rows), 1)
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rows_per_second)
            self._updated = now
            self._tokens -= rows
            wait = max(0.0, -self._tokens / self.rows_per_second)
            counters = self._counters
            sent_at = now + wait
            self._counters = BudgetCounters(
                counters.rows + rows, counters.requests + 1, counters.waited_s + wait,
                sent_at if counters.first_s is None else counters.first_s, sent_at)
        if wait > 0:
            self._sleep(wait)
        return wait

    @property
    def counters(self) -> BudgetCounters:
        """Rows, requests and waiting let through so far."""
        with self._lock:
            return self._counters

    def seconds_for(self, rows: int) -> float:
        """Seconds ``rows`` model rows take at this budget's pace (from a full bucket)."""
        return max(0.0, rows - self.burst) / self.rows_per_second


_BUDGETS: dict[tuple, RowBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def service_budget(service: ServiceConfig) -> RowBudget:
    """The one :class:`RowBudget` of ``service`` in this process (every session and thread shares it).

    Parameters
    ----------
    service : ServiceConfig
        Its ``[services.explain]`` gives ``max_rows_per_second`` and ``max_rows_per_request``; a
        service whose settings change gets a new budget.

    Returns
    -------
    RowBudget
    """
    settings = service.explain
    key = (service.name, service.url, float(settings.max_rows_per_second), int(settings.max_rows_per_request))
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RowBudget(settings.max_rows_per_second, burst=settings.max_rows_per_request)
        return budget


def rows_estimate(service: ServiceConfig, rows: int) -> str:
    """``"about 60,000 model rows, ~30 s at 2,000 rows/s"``: what a computation will cost the service."""
    rate = service.explain.max_rows_per_second
    return f"about {rows:,} model rows, {duration_text(rows / rate)} at {rate:,.0f} rows/s"


def needs_confirmation(service: ServiceConfig, rows: int) -> bool:
    """Whether a computation of ``rows`` model rows should wait for the user's go-ahead
    (``[services.explain] confirm_rows_above``)."""
    return rows > service.explain.confirm_rows_above


def paced_predict(service: ServiceConfig, predict: Callable[[pd.DataFrame], Any]) -> Callable[[pd.DataFrame], Any]:
    """``predict`` behind the service's budget: each call first waits for its rows (the baseline's scoring).

    Parameters
    ----------
    service : ServiceConfig
    predict : callable
        ``predict(X)``, one request per call (keep ``X`` within ``max_rows_per_request`` rows).

    Returns
    -------
    callable
    """
    budget = service_budget(service)

    def paced(X: pd.DataFrame):
        budget.acquire(len(X))
        return predict(X)

    return paced
