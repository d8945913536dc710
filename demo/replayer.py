"""Traffic replayer: sends the demo's synthetic traffic through the demo service.

It first back-fills history (from the demo's history start, or from the newest logged
prediction after a restart, up to now) in large batches whose rows carry their own
timestamps, then keeps sending a trickle of live requests. Ground-truth labels are written
to the store with the time they *arrive* (prediction time plus a delay of days), so the
labels of recent predictions exist but have not arrived yet: every reader filters on
``labels.ts <= now``, and labels appear on the pages as time passes, as in production.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd

from demo.data import FEATURES, TARGET, generate
from demo.model import DemoModel
from monitoring.clients import V2Client
from monitoring.clock import Clock, SystemClock
from monitoring.store import Store

log = logging.getLogger(__name__)

DAY = 86400.0


class TrafficReplayer:
    """Back-fills and then replays synthetic traffic through a v2 service.

    Parameters
    ----------
    client : V2Client
        Client of the demo service.
    store : Store
        Store the service logs to (read to resume, and written for labels).
    service : str
        Service name in the store.
    history_start : float
        Unix time of day 0 of the demo's history.
    rows_per_day : int, default=1500
        Back-filled predictions per day.
    live_interval : float, default=2.0
        Seconds between live requests.
    batch_rows : int, default=1000
        Rows per back-fill request.
    random_state : int, default=0
        Seed.
    clock : Clock, optional
        Where "now" comes from (:mod:`monitoring.clock`); the system clock by default. On a
        frozen clock the back-fill ends at the frozen time and live rows carry it.
    """

    def __init__(self, client: V2Client, store: Store, service: str, *, history_start: float,
                 rows_per_day: int = 1500, live_interval: float = 2.0, batch_rows: int = 1000,
                 random_state: int = 0, clock: Clock | None = None):
        self.client = client
        self.store = store
        self.service = service
        self.history_start = history_start
        self.rows_per_day = rows_per_day
        self.live_interval = live_interval
        self.batch_rows = batch_rows
        self._rng = np.random.default_rng(random_state)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.clock = clock if clock is not None else SystemClock()
        self.backfilled_rows = 0
        self.backfill_total = 0
        self.live_rows = 0
        self.backfill_done = threading.Event()
        self.last_error: str | None = None

    def _day(self, ts: float) -> float:
        return (ts - self.history_start) / DAY

    def _send(self, rows: pd.DataFrame) -> None:
        """Send rows with their ids and timestamps, then write their labels (arriving later)."""
        ids = [uuid.uuid4().hex for _ in range(len(rows))]
        body = self.client.build_request(rows[list(FEATURES)])
        body.setdefault("parameters", {}).update(
            vantage_ids=ids, vantage_timestamps=rows["ts"].astype(float).tolist())
        response = self.client.session.post(
            f"{self.client.base_url}/v2/models/{self.client.config.model}/infer", json=body,
            timeout=self.client.config.predict_timeout)
        response.raise_for_status()
        self.store.write_labels(self.service, pd.DataFrame({
            "prediction_id": ids,
            "ts": rows["ts"].to_numpy() + rows["label_delay_days"].to_numpy() * DAY,
            "label": rows[TARGET].to_numpy(),
        }))

    def backfill(self, *, now: float | None = None, progress: Callable[[float], None] | None = None) -> int:
        """Send the history missing from the store up to ``now`` (the clock's); return the rows sent."""
        now = self.clock.now() if now is None else now
        newest = self.store.newest_prediction_ts(self.service)
        start = max(self.history_start, newest) if newest is not None else self.history_start
        days = self._day(now) - self._day(start)
        n_rows = int(days * self.rows_per_day)
        if n_rows <= 0:
            return 0
        history = generate(n_rows, start_day=self._day(start), end_day=self._day(now),
                           history_start=self.history_start, random_state=int(self._rng.integers(2**31)))
        self.backfill_total = len(history)
        for begin in range(0, len(history), self.batch_rows):
            if self._stop.is_set():
                break
            self._send(history.iloc[begin:begin + self.batch_rows])
            self.backfilled_rows += min(self.batch_rows, len(history) - begin)
            if progress is not None:
                progress(self.backfilled_rows / len(history))
        log.info("back-filled %d predictions over %.1f days", self.backfilled_rows, days)
        return self.backfilled_rows

    def send_live(self, *, now: float | None = None) -> int:
        """Send one small live request at ``now`` (the clock's); return the rows sent."""
        now = self.clock.now() if now is None else now
        n_rows = int(self._rng.integers(1, 6))
        day = self._day(now)
        rows = generate(n_rows, start_day=day, end_day=day, history_start=self.history_start,
                        random_state=int(self._rng.integers(2**31)))
        rows["ts"] = now
        self._send(rows)
        self.live_rows += n_rows
        return n_rows

    def _run(self) -> None:
        try:
            self.backfill()
        except Exception as exc:
            self.last_error = f"back-fill failed: {exc}"
            log.exception("back-fill failed")
        finally:
            self.backfill_done.set()
        while not self._stop.wait(self.live_interval):
            try:
                self.send_live()
                self.last_error = None
            except Exception as exc:  # the service may be down on purpose; keep trying
                self.last_error = f"live request failed: {exc}"
                log.debug("live request failed", exc_info=True)

    def start(self) -> TrafficReplayer:
        """Back-fill and then replay live traffic in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="vantage-demo-replayer")
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def scored_history(model: DemoModel, n_rows: int, *, history_start: float, random_state: int,
                   id_prefix: str = "r", model_version: str | None = None) -> pd.DataFrame:
    """Demo traffic over the 28-day history with the model's outputs, ready for ``Store.log_predictions``.

    For tests and benchmarks that need a logged history without running the service.

    Parameters
    ----------
    model : DemoModel
    n_rows : int
    history_start : float
        Unix time of day 0.
    random_state : int
    id_prefix : str, default="r"
        Prediction ids are ``<prefix><row number>``.
    model_version : str, optional
        Logged version; the model's own by default.

    Returns
    -------
    DataFrame
        :func:`demo.data.generate` output (with ``default`` and ``label_delay_days``) plus
        ``id``, ``score``, ``prediction`` and ``model_version``.
    """
    frame = generate(n_rows, start_day=0, end_day=28, history_start=history_start, random_state=random_state)
    proba = model.pipeline.predict_proba(frame[list(FEATURES)])[:, 1]
    return frame.assign(id=[f"{id_prefix}{i}" for i in range(n_rows)], score=proba,
                        prediction=(proba > model.threshold).astype(float),
                        model_version=model_version or model.version)
