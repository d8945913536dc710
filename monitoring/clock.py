"""The one clock Vantage reads "now" from: the system's, or a frozen one that tests and demos set.

Computations never read the time themselves; they take ``now`` as an argument. The callers
at the edge (the dashboard's state layer, the demo's replayer, the report) ask one
:class:`Clock` for it, so a whole dashboard can be run at a chosen moment::

    VANTAGE_NOW=2026-11-20T08:03:00Z streamlit run dashboard/app.py

``VANTAGE_NOW`` takes Unix seconds or an ISO 8601 time (UTC unless it names a zone).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

NOW_VARIABLE = "VANTAGE_NOW"
"""Environment variable that freezes the clock."""


class Clock(Protocol):
    """Anything with a ``now()`` giving Unix seconds."""

    def now(self) -> float:
        """The current time, Unix seconds."""


@dataclass(frozen=True)
class SystemClock:
    """The machine's clock."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()

    @property
    def frozen(self) -> bool:
        """False: this clock moves."""
        return False


@dataclass(frozen=True)
class FrozenClock:
    """A clock stopped at ``at`` (Unix seconds)."""

    at: float

    def __post_init__(self) -> None:
        if isinstance(self.at, bool) or not isinstance(self.at, int | float) or not math.isfinite(self.at):
            raise ValueError(f"a frozen clock needs a finite Unix time in seconds; got {self.at!r}")

    def now(self) -> float:
        """Always ``at``."""
        return float(self.at)

    @property
    def frozen(self) -> bool:
        """True: this clock does not move."""
        return True


def parse_time(text: str) -> float:
    """Unix seconds from ``"1763625780"`` or ``"2026-11-20T08:03:00Z"`` (naive times are UTC).

    Raises
    ------
    ValueError
        Naming the accepted forms and the text received.
    """
    value = str(text).strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{NOW_VARIABLE} must be Unix seconds or an ISO 8601 time such as "
                             f"2026-11-20T08:03:00Z; got {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{NOW_VARIABLE} must be a finite number of Unix seconds; got {text!r}")
    return seconds


def clock_from_environment(environ: Mapping[str, str] | None = None) -> SystemClock | FrozenClock:
    """A :class:`FrozenClock` when ``VANTAGE_NOW`` is set (and not empty), else the :class:`SystemClock`.

    Raises
    ------
    ValueError
        When ``VANTAGE_NOW`` holds something that is not a time.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(NOW_VARIABLE, "").strip()
    return FrozenClock(parse_time(text)) if text else SystemClock()
