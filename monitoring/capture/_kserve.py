"""The ingestion endpoint for KServe's payload logger: CloudEvents in, prediction-log rows out.

An InferenceService with a ``logger`` (``mode: all``) posts two CloudEvents per prediction, in
binary mode: the request body with ``ce-type: org.kubeflow.serving.inference.request`` and,
when the model answered 200, the response body with ``ce-type:
org.kubeflow.serving.inference.response``. Both carry the same ``ce-id`` (the request's own
``Ce-Id`` header or a UUID KServe made up) and the extension attributes
``ce-inferenceservicename``, ``ce-namespace``, ``ce-component`` and ``ce-endpoint``; the body
is the one the model server saw or sent (V1 ``instances`` / ``predictions`` or Open Inference
Protocol v2). KServe sends them from a pool of workers, so either may arrive first; structured
mode (``Content-Type: application/cloudevents+json``) is read too.

The two halves are joined by ``(service, ce-id)``. A half whose other half does not come
within ``pair_timeout`` seconds is counted (``responses_without_request`` /
``requests_without_response``: KServe logs no response for an error answer) and forgotten; at
most ``max_unpaired`` halves wait at once. The service is the one named in the path
(``/services/<name>``), else the configured service whose name (or v2 model name) is the
event's ``inferenceservicename``.

Answers: 200 when the event was taken; 400 for an event without ``ce-id``, of another type, or
whose body is not JSON; 404 for a service not in the configuration; 413 for a body over
``max_body_bytes``. Each is counted for the Service-health page; ``GET /capture/stats`` gives
the counts as JSON.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import time
from collections.abc import Mapping

from monitoring.capture._writer import CaptureWriter, Exchange, ServiceCapture
from monitoring.clock import parse_time

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
STATS_PATH = "/capture/stats"
UNKNOWN_SERVICE = "(unknown service)"
"""Counts of events that name no configured service go under this name."""
PLAUSIBLE_TIMES = (946_684_800.0, 4_102_444_800.0)  # 2000-01-01 .. 2100-01-01


class KServeLoggerEndpoint:
    """ASGI application taking KServe payload-logger CloudEvents for the configured services.

    Parameters
    ----------
    services : mapping of str to ServiceCapture
        By configuration name.
    writer : CaptureWriter
        Receives the joined exchanges (started and closed with the app's lifespan).
    clock : object with ``now()``
        Time of a prediction whose event has no ``ce-time``.
    aliases : mapping of str to str, optional
        Other names (v2 model names) an event's ``inferenceservicename`` may use for a service.
    max_body_bytes : int, default=8 MiB
    pair_timeout : float, default=60
        Seconds a request waits for its response (and the other way round).
    max_unpaired : int, default=10,000
    """

    def __init__(self, services: Mapping[str, ServiceCapture], writer: CaptureWriter, *, clock,
                 aliases: Mapping[str, str] | None = None, max_body_bytes: int = 8 * 1024 * 1024,
                 pair_timeout: float = 60.0, max_unpaired: int = 10_000):
        self.services = dict(services)
        self.aliases = {**(aliases or {}), **{name: name for name in self.services}}
        self.writer = writer
        self.clock = clock
        self.max_body_bytes = int(max_body_bytes)
        self.pair_timeout = float(pair_timeout)
        self.max_unpaired = int(max_unpaired)
        # (service, id) -> (ce type, parsed body, event time, monotonic arrival)
        self._unpaired: collections.OrderedDict[tuple[str, str], tuple[str, object, float, float]] = \
            collections.OrderedDict()
        self._sweeper: asyncio.Task | None = None

    # -- lifespan ------------------------------------------------------------------------------

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.writer.start()
                self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._sweeper is not None:
                    self._sweeper.cancel()
                self.expire(everything=True)
                self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.pair_timeout / 4))
            self.expire()

    def expire(self, *, everything: bool = False) -> int:
        """Count and forget halves that waited longer than ``pair_timeout`` (all with ``everything``)."""
        cutoff = time.monotonic() - self.pair_timeout
        expired = 0
        while self._unpaired:
            key, (kind, _body, _ts, arrived) = next(iter(self._unpaired.items()))
            if not everything and arrived > cutoff:
                break
            del self._unpaired[key]
            self._count_orphan(key, kind)
            expired += 1
        return expired

    def _count_orphan(self, key: tuple[str, str], kind: str) -> None:
        service, event_id = key
        if kind == REQUEST_TYPE:
            self.writer.count(service, "requests_without_response",
                              problem=f"request event {event_id} got no response event within "
                                      f"{self.pair_timeout:g} s (KServe logs no response for an error answer)")
        else:
            self.writer.count(service, "responses_without_request",
                              problem=f"response event {event_id} came without its request event within "
                                      f"{self.pair_timeout:g} s")

    # -- requests ------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == STATS_PATH:
            stats = self.writer.stats().as_dict() | {"unpaired": len(self._unpaired)}
            await _answer(send, 200, json.dumps(stats), "application/json")
            return
        if method == "GET" and path in ("/", "/health"):
            await _answer(send, 200, '{"status": "ok"}', "application/json")
            return
        if method != "POST":
            await _answer(send, 405, "the KServe logger endpoint takes POSTs of CloudEvents (and GET /capture/stats)")
            return
        status, text = await self._take(scope, receive)
        await _answer(send, status, text)

    async def _take(self, scope, receive) -> tuple[int, str]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        in_path = self._named_in_path(scope["path"])
        named = self.aliases.get(in_path) if in_path else None
        if in_path and named is None:
            self.writer.count(UNKNOWN_SERVICE, "unparsed", problem=f"an event posted for {in_path[:64]!r}, which is "
                                                                  "no configured service")
            return 404, f"no configured service is named {in_path[:64]!r}; configured: {sorted(self.services)}"
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            service = named or self._service_of(headers.get("ce-inferenceservicename")) or UNKNOWN_SERVICE
            return self._refuse_oversized(service, int(length))
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 400, "the sender went away before the body was read"
            body.extend(message.get("body", b""))
            if len(body) > self.max_body_bytes:
                service = named or self._service_of(headers.get("ce-inferenceservicename")) or UNKNOWN_SERVICE
                return self._refuse_oversized(service, len(body))
            if not message.get("more_body", False):
                break
        structured = headers.get("content-type", "").split(";")[0].strip() == "application/cloudevents+json"
        if structured:
            try:
                envelope = json.loads(body)
                if not isinstance(envelope, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                service = named or UNKNOWN_SERVICE
                self.writer.count(service, "not_json", problem=f"a structured CloudEvent that is not a JSON object "
                                                               f"({exc})")
                return 400, f"a structured CloudEvent must be a JSON object: {exc}"
            attributes = {f"ce-{k}": str(v) for k, v in envelope.items() if k not in ("data", "data_base64")}
            data = envelope.get("data")
            if "data_base64" in envelope:
                try:
                    data = base64.b64decode(envelope["data_base64"])
                except (ValueError, TypeError):
                    data = b""
        else:
            attributes, data = headers, bytes(body)
        service = named or self._service_of(attributes.get("ce-inferenceservicename"))
        if service is None:
            given = attributes.get("ce-inferenceservicename")
            self.writer.count(UNKNOWN_SERVICE, "unparsed",
                              problem=f"an event for {given!r}, which is no configured service")
            return 404, (f"no configured service is named {given!r} (ce-inferenceservicename); configured: "
                         f"{sorted(self.services)}; or post to /services/<name>")
        event_id = attributes.get("ce-id", "").strip()
        if not event_id:
            self.writer.count(service, "without_id", problem="a CloudEvent without an id (ce-id) was refused")
            return 400, "a CloudEvent needs an id: the ce-id header (binary mode) or 'id' (structured mode)"
        kind = attributes.get("ce-type", "")
        if kind not in (REQUEST_TYPE, RESPONSE_TYPE):
            self.writer.count(service, "unparsed", problem=f"a CloudEvent of type {kind[:80]!r} was refused")
            return 400, f"ce-type must be {REQUEST_TYPE} or {RESPONSE_TYPE}; got {kind[:80]!r}"
        if isinstance(data, bytes | bytearray):
            try:
                data = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                what = "request" if kind == REQUEST_TYPE else "response"
                self.writer.count(service, "not_json", problem=f"the {what} body of event {event_id[:64]} is not JSON")
                return 400, f"the event's body must be the JSON the model server took or gave: {exc}"
        self._pair(service, event_id, kind, data, self._event_time(attributes.get("ce-time")))
        return 200, "taken"

    def _refuse_oversized(self, service: str, size: int) -> tuple[int, str]:
        cap = self.max_body_bytes / 1048576
        self.writer.count(service, "oversized", problem=f"an event of {size / 1048576:.1f} MB was refused (413); "
                                                        f"the cap is {cap:g} MB")
        return 413, f"an event body may hold at most {cap:g} MB; this one has more"

    def _named_in_path(self, path: str) -> str | None:
        """The name after ``/services/`` in ``path``, if the path has that form."""
        parts = [p for p in path.split("/") if p]
        return parts[1] if len(parts) == 2 and parts[0] == "services" else None

    def _service_of(self, name: str | None) -> str | None:
        return self.aliases.get(name) if name else None

    def _event_time(self, text: str | None) -> float:
        if text:
            try:
                ts = parse_time(text)
            except ValueError:
                ts = None
            if ts is not None and PLAUSIBLE_TIMES[0] <= ts < PLAUSIBLE_TIMES[1]:
                return ts
        return self.clock.now()

    def _pair(self, service: str, event_id: str, kind: str, data: object, ts: float) -> None:
        key = (service, event_id)
        other = self._unpaired.get(key)
        if other is not None and other[0] != kind:
            del self._unpaired[key]
            request, response = (data, other[1]) if kind == REQUEST_TYPE else (other[1], data)
            request_ts = ts if kind == REQUEST_TYPE else other[2]
            self.writer.submit(Exchange(service=service, ts=request_ts, exchange_id=event_id, request=request,
                                        response=response, protocol=_protocol_of(request)))
            return
        self._unpaired[key] = (kind, data, ts, time.monotonic())
        self._unpaired.move_to_end(key)
        while len(self._unpaired) > self.max_unpaired:
            old_key, (old_kind, *_rest) = self._unpaired.popitem(last=False)
            self._count_orphan(old_key, old_kind)


def _protocol_of(request: object) -> str:
    """``v2`` for an Open Inference Protocol body (``inputs`` as tensors), else KServe's ``v1``."""
    if isinstance(request, dict):
        inputs = request.get("inputs")
        if isinstance(inputs, list) and inputs and all(isinstance(t, dict) and "data" in t for t in inputs):
            return "v2"
    return "v1"


async def _answer(send, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
