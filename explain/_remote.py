"""The remote model: the service as a black box, called through its monitoring client within its row budget.

:class:`RemoteModel` calls the service in requests of up to ``max_rows`` rows, flagged with the
``X-Vantage-Probe`` header so the service leaves them out of its prediction log, paced by the
service's :class:`~explain._budget.RowBudget`, and counts the requests and rows it sends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from explain._budget import BudgetExceededError, RowBudget, rows_estimate, service_budget
from explain._errors import RemoteExplainError
from explain._source import ModelSource
from monitoring.clients import PROBE_HEADER, ServiceClient, ServiceError, make_client
from monitoring.config import ServiceConfig

DEFAULT_MAX_ROWS = 50_000
"""Largest request of a black-box explanation: a body of about 10 MB for a dozen features, under the
template service's limit of 100,000 rows per request. ``[services.explain] max_rows_per_request``
(500 by default) decides the size actually sent; it may not exceed this."""


class RemoteModel(ModelSource):
    """The service itself, called through its monitoring client, paced by the service's budget.

    Parameters
    ----------
    service : ServiceConfig
        The service; ``service.explain`` gives the budget (rows per second, per request and per
        computation).
    features : sequence of str
        Raw input columns (the service's features).
    feature_kinds : dict, optional
    X_sample : DataFrame, optional
        A few rows to ask the service once, to learn whether it gives probabilities and how
        many classes; without it the task is learnt on the first prediction.
    max_rows : int, optional
        Rows per request; default ``[services.explain] max_rows_per_request``, and never more
        than :data:`DEFAULT_MAX_ROWS`.
    timeout : float, default=120
        Seconds before one request is abandoned.
    client : ServiceClient, optional
        Client to use instead of making one (tests).
    budget : RowBudget, optional
        Pace of the requests; default the service's shared one (:func:`service_budget`).

    Attributes
    ----------
    requests, rows_sent : int
        Requests and model rows sent so far.
    waited_s : float
        Seconds spent waiting for the budget so far.
    max_rows_total : int
        Model rows one call of :meth:`predict_batches` may send (``max_rows_per_computation``).
    """

    kind = "remote"

    def __init__(self, service: ServiceConfig, *, features: Sequence[str], feature_kinds: dict[str, str] | None = None,
                 X_sample: pd.DataFrame | None = None, max_rows: int | None = None, timeout: float = 120.0,
                 client: ServiceClient | None = None, budget: RowBudget | None = None):
        if max_rows is None:
            max_rows = service.explain.max_rows_per_request
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1; got {max_rows}")
        max_rows = min(int(max_rows), DEFAULT_MAX_ROWS)
        outputs = service.v2_outputs
        if "predict_proba" in outputs:
            outputs = ("predict_proba",)
        config = service.model_copy(update={"max_batch_rows": max_rows, "v2_outputs": outputs,
                                            "predict_timeout": max(service.predict_timeout, timeout)})
        self.service = service
        self.client = client or make_client(config)
        self.client.session.headers[PROBE_HEADER] = "explain"
        self.max_rows = max_rows
        self.max_rows_total = service.explain.max_rows_per_computation
        self.budget = budget or service_budget(service)
        self._lock = threading.Lock()
        self.requests = 0
        self.rows_sent = 0
        self.waited_s = 0.0
        try:
            version = self.client.metadata().version
        except ServiceError:
            version = service.model_version
        super().__init__(features=features, feature_kinds=feature_kinds, task="regression", classes=None,
                         version=version, description=f"service {service.name} ({service.protocol}, {service.url})")
        self._task_known = False
        if X_sample is not None and len(X_sample):
            if client is None and service.protocol == "v2" and not service.v2_outputs:
                self._ask_for_probabilities(config, X_sample.iloc[:5])
            self.predict(X_sample.iloc[:5])

    def _ask_for_probabilities(self, config: ServiceConfig, X: pd.DataFrame) -> None:
        """A v2 server answers with labels by default (MLServer's scikit-learn runtime does): ask it once for
        ``predict_proba``, and keep asking for it when it gives class probabilities, so a classifier is
        explained as one with a config that names no outputs. A server that refuses keeps its default."""
        trial = make_client(config.model_copy(update={"v2_outputs": ("predict_proba",)}))
        trial.session.headers[PROBE_HEADER] = "explain"
        waited = self.budget.acquire(len(X))
        try:
            answer = trial.predict(self.conform(X))
        except ServiceError:
            trial.close()
            return
        with self._lock:
            self.requests += answer.requests
            self.rows_sent += len(X)
            self.waited_s += waited
        if answer.probabilities is not None and np.ndim(answer.probabilities) == 2:
            self.client.close()
            self.client = trial
        else:
            trial.close()

    @property
    def call(self) -> str:
        """The HTTP call a prediction makes, e.g. ``POST /v2/models/m/infer``."""
        return str(getattr(self.client, "_predict_call", "predict"))

    def estimate(self, rows: int) -> str:
        """``"about 60,000 model rows, ~30 s at 2,000 rows/s"`` for a computation of ``rows`` model rows."""
        return rows_estimate(self.service, rows)

    sends_requests = True
    black_box_reason = "the service is a black box"

    def frame_outputs(self, frames, *, space: str, report=None):
        """:meth:`output` of each frame, one request per frame within the budget, refused whole when above it."""
        total = sum(getattr(frames, "row_counts", None) or (len(f) for f in frames))
        self.check_budget(total)  # refused before anything is sent
        if report is not None:
            report(0.0, self.estimate(total))
        for labels, proba in self.iter_predictions(frames, progress=report):
            yield self.outputs_from(labels, proba, space=space)

    def check_budget(self, rows: int) -> None:
        """Refuse a computation of ``rows`` model rows above ``max_rows_per_computation``.

        Raises
        ------
        BudgetExceededError
        """
        if rows > self.max_rows_total:
            raise BudgetExceededError(self.service.name, rows, self.max_rows_total, self.budget.rows_per_second)

    def predict(self, X):
        """One request per ``max_rows`` rows; raises :class:`RemoteExplainError` naming the failed one."""
        return self.predict_batches([X])[0]

    def predict_batches(self, frames: Sequence[pd.DataFrame], *,
                        progress: Callable[[float, str], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Predict several frames (see :meth:`iter_predictions`), all answers at once."""
        return list(self.iter_predictions(frames, progress=progress))

    def iter_predictions(self, frames: Sequence[pd.DataFrame] | Iterable[pd.DataFrame], *,
                         row_counts: Sequence[int] | None = None,
                         progress: Callable[[float, str], None] | None = None
                         ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Predict frames one after the other, yielding each frame's answer as soon as it is complete.

        The frames' rows are sent in requests of ``max_rows`` rows (a request may hold the end of
        one frame and the start of the next), each when the service's budget lets it; a frame is
        read (a lazily built one is built) only when its turn comes, so memory holds about one
        frame and one request at a time.

        Parameters
        ----------
        frames : sequence or iterable of DataFrame
        row_counts : sequence of int, optional
            Rows of each frame, when ``frames`` cannot tell (``frames.row_counts`` or ``len``
            otherwise); used to refuse a computation above the budget before its first request
            and for the progress ("12,000 of 60,000 model rows").
        progress : callable, optional
            Called with (fraction done, text) before every request.

        Yields
        ------
        labels : ndarray of shape (n_rows,)
        probabilities : ndarray of shape (n_rows, n_classes) or None

        Raises
        ------
        BudgetExceededError
            Before any request, when the frames hold more than ``max_rows_total`` rows.
        RemoteExplainError
            On the first failed request, naming it (k of n), the call and the reason.
        """
        counts = row_counts if row_counts is not None else getattr(frames, "row_counts", None)
        if counts is None:
            frames = list(frames)
            counts = [len(f) for f in frames]
        total = int(sum(counts))
        self.check_budget(total)
        n_requests = max(1, -(-total // self.max_rows))
        state = {"k": 0, "sent": 0}
        pieces: list[tuple[int, pd.DataFrame]] = []  # rows waiting for the next request, by frame
        answers: dict[int, list] = {}
        missing: dict[int, int] = {}
        next_out = 0
        for index, frame in enumerate(frames):
            answers[index], missing[index] = [], len(frame)
            start = 0
            while start < len(frame):
                room = self.max_rows - sum(len(piece) for _, piece in pieces)
                pieces.append((index, frame.iloc[start:start + room]))
                start += room
                if sum(len(piece) for _, piece in pieces) >= self.max_rows:
                    self._send(pieces, answers, missing, state, total, n_requests, progress)
                    pieces = []
            while next_out in missing and missing[next_out] == 0 and next_out <= index:
                yield self._joined(answers.pop(next_out))
                del missing[next_out]
                next_out += 1
        if pieces:
            self._send(pieces, answers, missing, state, total, n_requests, progress)
        while next_out in missing:
            yield self._joined(answers.pop(next_out))
            del missing[next_out]
            next_out += 1
        if progress is not None:
            progress(1.0, f"{state['sent']:,} of {total:,} model rows, {state['k']} request(s)")

    def _send(self, pieces, answers, missing, state, total, n_requests, progress) -> None:
        """One request of ``pieces`` (rows of one or more frames), paced; its answer split back by frame."""
        chunk = pieces[0][1] if len(pieces) == 1 else pd.concat([p for _, p in pieces], ignore_index=True)
        state["k"] += 1
        if progress is not None:
            text = f"{state['sent']:,} of {total:,} model rows"
            wait = self.budget.wait_for(len(chunk))
            if wait >= 1:
                text += f", waiting {wait:.0f} s for the service's budget ({self.budget.rows_per_second:,.0f} rows/s)"
            progress(state["sent"] / max(total, 1), text)
        waited = self.budget.acquire(len(chunk))
        try:
            result = self.client.predict(self.conform(chunk))
        except ServiceError as exc:
            raise RemoteExplainError(exc.call, exc.message, request=state["k"], n_requests=n_requests,
                                     rows=len(chunk)) from None
        state["sent"] += len(chunk)
        with self._lock:
            self.requests += result.requests
            self.rows_sent += len(chunk)
            self.waited_s += waited
            if self.version is None and result.model_version:  # metadata named none; the answer does
                self.version = result.model_version
        self._learn_task(result.probabilities, result.predictions)
        labels = np.asarray(result.predictions)
        proba = None if result.probabilities is None else np.asarray(result.probabilities)
        offset = 0
        for index, piece in pieces:
            stop = offset + len(piece)
            answers[index].append((labels[offset:stop], None if proba is None else proba[offset:stop]))
            missing[index] -= len(piece)
            offset = stop

    def _joined(self, parts: list) -> tuple[np.ndarray, np.ndarray | None]:
        if not parts:  # a frame without rows
            width = 0 if self.classes is None else len(self.classes)
            return np.empty(0), (None if self.task == "regression" else np.empty((0, width)))
        labels = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        probas = [p[1] for p in parts]
        if any(p is None for p in probas):
            return labels, None
        return labels, (probas[0] if len(probas) == 1 else np.vstack(probas))

    def learn_task(self, X: pd.DataFrame) -> None:
        """Ask the service about a few rows of ``X`` (one request) unless the task is already known."""
        if not self._task_known and len(X):
            self.predict(X.iloc[:5])

    def _learn_task(self, proba: np.ndarray | None, labels: np.ndarray) -> None:
        if self._task_known:
            return
        if proba is not None and proba.ndim == 2 and proba.shape[1] >= 2:
            self.task = "classification"
            self.classes = tuple(range(proba.shape[1]))
        self._task_known = True
