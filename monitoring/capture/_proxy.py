"""The capturing reverse proxy: an ASGI app that forwards everything and tees predictions.

Every request is forwarded to the upstream unchanged (method, path, query, headers but the
hop-by-hop ones and ``Host``, body) and its answer comes back unchanged (status, headers,
body), both streamed: a body that arrives in one piece is sent on in one piece, a longer one
chunk by chunk as it comes. Prediction calls (``POST`` to the protocol's predict path, without
the collector's ``X-Vantage-Probe`` header) are also copied, up to ``max_capture_bytes`` per
body, and handed to a :class:`~monitoring.capture._writer.CaptureWriter` once the answer has
been sent; nothing on the request path waits for the store or parses a large body.

An upstream that does not answer is a ``502`` (cannot connect) or ``504`` (no answer within
the timeout) with a plain-text reason; both are counted as ``upstream_down``.
``GET /capture/stats`` answers the proxy's own counts as JSON (never forwarded).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from monitoring.capture._writer import CaptureWriter, Exchange, ServiceCapture

log = logging.getLogger(__name__)

ID_HEADER = "x-vantage-prediction-id"
"""Header naming the prediction id: sent by a caller to choose it, answered by the proxy with the one it used."""
PROBE_HEADER = b"x-vantage-probe"
STATS_PATH = "/capture/stats"
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"host"})
SMALL_BODY_BYTES = 64 * 1024
"""A v2 request up to this size is read for its own ``id`` before it is forwarded (tens of microseconds)."""
_ID = re.compile(r"[!-~]{1,64}")


def prediction_path(protocol: str, *, model: str | None = None, rest_predict: str = "/predict") -> re.Pattern:
    """Regular expression of the paths whose POSTs are predictions for ``protocol``."""
    if protocol == "v2":
        name = re.escape(model) if model else "[^/]+"
        return re.compile(rf"/v2/models/{name}(/versions/[^/]+)?/infer")
    if protocol == "mlflow":
        return re.compile(r"/invocations")
    return re.compile(re.escape(rest_predict.rstrip("/") or "/"))


class CaptureProxy:
    """ASGI application forwarding to ``upstream`` and capturing one service's predictions.

    Parameters
    ----------
    upstream : str
        Base URL of the server, ``http(s)://host:port``.
    capture : ServiceCapture
        The service the traffic belongs to.
    writer : CaptureWriter
        Receives the captured exchanges (started and closed with the app's lifespan).
    predict_path : re.Pattern
        Paths whose POSTs are captured (:func:`prediction_path`).
    clock : object with ``now()``
        Time stamped on captured predictions.
    max_capture_bytes : int, default=8 MiB
        Largest body copied for the log; a larger exchange is forwarded whole but not logged
        (counted as ``oversized``).
    timeout : float, default=60
        Seconds to connect to the upstream and between two reads of its answer.
    max_connections : int, default=256
        Connections kept open to the upstream.
    """

    def __init__(self, upstream: str, capture: ServiceCapture, writer: CaptureWriter, *, predict_path: re.Pattern,
                 clock, max_capture_bytes: int = 8 * 1024 * 1024, timeout: float = 60.0,
                 max_connections: int = 256):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream must be an http:// or https:// URL with a host; got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self.capture = capture
        self.writer = writer
        self.predict_path = predict_path
        self.clock = clock
        self.max_capture_bytes = int(max_capture_bytes)
        self.timeout = float(timeout)
        self.max_connections = int(max_connections)
        self._client: httpx.AsyncClient | None = None

    # -- lifespan ------------------------------------------------------------------------------

    def _open(self) -> httpx.AsyncClient:
        if self._client is None:
            client = httpx.AsyncClient(
                base_url=self.upstream, timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.max_connections,
                                    max_keepalive_connections=self.max_connections),
                follow_redirects=False, trust_env=False)
            client.headers = httpx.Headers()  # forward the caller's headers only, none of httpx's defaults
            self._client = client
            self.writer.start()
        return self._client

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- requests ------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets are not forwarded
            return
        if scope["path"] == STATS_PATH and scope["method"] == "GET":
            await _answer(send, 200, json.dumps(self.writer.stats().as_dict()).encode(), "application/json")
            return
        await self._forward(scope, receive, send)

    async def _forward(self, scope, receive, send) -> None:
        client = self._open()
        service = self.capture.service
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        capturing = (scope["method"] == "POST" and self.predict_path.fullmatch(scope["path"]) is not None
                     and not any(k == PROBE_HEADER for k, _ in headers))
        ts = self.clock.now() if capturing else 0.0
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        head = first.get("body", b"")
        whole = not first.get("more_body", False)
        captured = bytearray(head) if capturing else None
        oversized = capturing and len(head) > self.max_capture_bytes

        async def rest_of_body() -> AsyncIterator[bytes]:
            nonlocal oversized
            yield head
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if captured is not None and not oversized:
                    if len(captured) + len(chunk) > self.max_capture_bytes:
                        oversized = True
                        captured.clear()
                    else:
                        captured.extend(chunk)
                yield chunk
                if not message.get("more_body", False):
                    return

        exchange_id = None
        if capturing:
            given = next((v.decode("latin-1") for k, v in headers if k == ID_HEADER.encode()), None)
            if given is not None and _ID.fullmatch(given):
                exchange_id = given
            elif self.capture.context.protocol == "v2" and whole and len(head) <= SMALL_BODY_BYTES:
                exchange_id = _v2_request_id(head)
            exchange_id = exchange_id or uuid.uuid4().hex
        path = self._base_path + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        request = client.build_request(scope["method"], path, headers=headers,
                                       content=head if whole else rest_of_body())
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            self.writer.count(service, "upstream_down", problem=f"the upstream {self.upstream} did not answer "
                                                                f"within {self.timeout:g} s ({type(exc).__name__})")
            await _answer(send, 504, f"Vantage capture proxy: the upstream {self.upstream} did not answer within "
                                     f"{self.timeout:g} s ({type(exc).__name__}).\n".encode())
            return
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.writer.count(service, "upstream_down", problem=f"the upstream {self.upstream} cannot be reached "
                                                                f"({reason})")
            await _answer(send, 502, f"Vantage capture proxy: the upstream {self.upstream} cannot be reached "
                                     f"({reason}).\n".encode())
            return
        answer = bytearray() if capturing else None
        answer_oversized = False
        try:
            out_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            if capturing:
                out_headers.append((ID_HEADER.encode(), exchange_id.encode("latin-1")))
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            async for chunk in response.aiter_raw():
                if answer is not None and not answer_oversized:
                    if len(answer) + len(chunk) > self.max_capture_bytes:
                        answer_oversized = True
                        answer.clear()
                    else:
                        answer.extend(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:  # the upstream broke off mid-answer; the caller sees a cut answer
            self.writer.count(service, "upstream_down", problem=f"the upstream {self.upstream} broke off its answer "
                                                                f"({type(exc).__name__})")
            return
        finally:
            await response.aclose()
        if not capturing:
            return
        if oversized or answer_oversized:
            what = "request" if oversized else "answer"
            self.writer.count(service, "oversized", problem=f"a {what} body over the capture cap of "
                                                            f"{self.max_capture_bytes / 1048576:g} MB was forwarded "
                                                            "but not logged")
            return
        if not 200 <= response.status_code < 300:
            self.writer.count(service, "error_answers",
                              problem=f"the upstream answered HTTP {response.status_code}; not logged")
            return
        request_headers = dict(headers)
        self.writer.submit(Exchange(
            service=service, ts=ts, exchange_id=exchange_id, id_given=True,  # the id the caller was told
            request=bytes(head) if whole else bytes(captured), response=bytes(answer),
            request_encoding=_encoding(request_headers.get(b"content-encoding")),
            response_encoding=_encoding(response.headers.get("content-encoding"))))


def _encoding(value) -> str | None:
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.strip().lower() or None


def _v2_request_id(body: bytes) -> str | None:
    if b'"id"' not in body:
        return None
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


async def _answer(send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
