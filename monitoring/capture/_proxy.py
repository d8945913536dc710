"""The capturing reverse proxy: forwards everything, tees the prediction calls.

Every request is forwarded to the upstream unchanged (method, path and query as sent, headers
but the hop-by-hop ones and ``Host``, body) and its answer comes back unchanged (status,
headers, body), both streamed: a body of known length up to :data:`WHOLE_BODY_BYTES` is sent
on in one piece, a longer one chunk by chunk as it arrives. Prediction calls (``POST`` to the
protocol's predict path, without the collector's ``X-Vantage-Probe`` header) are also copied,
up to ``max_capture_bytes`` per body, and handed to a
:class:`~monitoring.capture._writer.CaptureWriter` once the answer has been sent; nothing on the
request path waits for the store or parses a large body.

An upstream that cannot be reached is a ``502``, one that does not answer within the timeout a
``504``, each with a plain-text reason and counted as ``upstream_down``. ``GET
/capture/stats`` answers the proxy's own counts as JSON (it is not forwarded).

Built on aiohttp (its server and its client, both with C-accelerated HTTP parsers): measured
against uvicorn with an httpx client, the client alone costs 0.11 ms of CPU per call against
0.59 ms (``benchmarks/capture.py`` has the whole proxy's figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import signal
import sys
import uuid
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from monitoring.capture._writer import CaptureWriter, Exchange, ServiceCapture, WriterProcess
from monitoring.clients import PROBE_HEADER

log = logging.getLogger(__name__)

ID_HEADER = "X-Vantage-Prediction-Id"
"""Header naming the prediction id: sent by a caller to choose it, answered by the proxy with the one it used."""
STATS_PATH = "/capture/stats"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "host"})
WHOLE_BODY_BYTES = 1024 * 1024
"""A request body of known length up to this size is read whole and forwarded in one write."""
SMALL_BODY_BYTES = 64 * 1024
"""A v2 request up to this size is read for its own ``id`` before it is forwarded (tens of microseconds)."""
SWITCH_INTERVAL_S = 0.0005
"""How long the writer thread may hold the interpreter before the event loop gets it back
(Python's default, 5 ms, would show in the proxy's p99)."""
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
    """Forwards to ``upstream`` and captures one service's predictions.

    Parameters
    ----------
    upstream : str
        Base URL of the server, ``http(s)://host:port`` (a path prefix is kept).
    capture : ServiceCapture
        The service the traffic belongs to.
    writer : WriterProcess or CaptureWriter
        Receives the captured exchanges (started and closed by :meth:`serve`); the command line
        gives it a :class:`~monitoring.capture._writer.WriterProcess`, so that parsing and store
        writes never hold this process's interpreter.
    predict_path : re.Pattern
        Paths whose POSTs are captured (:func:`prediction_path`).
    clock : object with ``now()``
        Time stamped on captured predictions.
    max_capture_bytes : int, default=8 MiB
        Largest body copied for the log; a larger exchange is forwarded whole but not logged
        (counted as ``oversized``).
    timeout : float, default=60
        Seconds to connect to the upstream, and between two reads of its answer.
    max_connections : int, default=256
        Connections kept open to the upstream.
    """

    def __init__(self, upstream: str, capture: ServiceCapture, writer: WriterProcess | CaptureWriter, *,
                 predict_path: re.Pattern, clock, max_capture_bytes: int = 8 * 1024 * 1024, timeout: float = 60.0,
                 max_connections: int = 256):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream must be an http:// or https:// URL with a host; got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.capture = capture
        self.writer = writer
        self.predict_path = predict_path
        self.clock = clock
        self.max_capture_bytes = int(max_capture_bytes)
        self.timeout = float(timeout)
        self.max_connections = int(max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.ServerRunner | None = None

    # -- serving -------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port) and start the writer; return the port."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout),
            auto_decompress=False, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))
        self.writer.start()
        self._runner = web.ServerRunner(web.Server(self.handle, access_log=None), handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, backlog=1024).start()
        return self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening, close the upstream connections, write what the writer holds."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        await asyncio.get_running_loop().run_in_executor(None, self.writer.close)

    async def serve(self, host: str, port: int) -> None:
        """Serve until SIGINT or SIGTERM."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        gc.freeze()  # what importing left is never garbage: keep it out of every later collection
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        await self.start(host, port)
        try:
            await stopped.wait()
        finally:
            await self.close()

    # -- requests ------------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Forward one request; capture it when it is a prediction call."""
        if request.path == STATS_PATH and request.method == "GET":
            return web.Response(body=json.dumps(self.writer.stats().as_dict()).encode(),
                                content_type="application/json")
        service = self.capture.service
        headers = CIMultiDict()
        for key, value in request.raw_headers:
            name = key.decode("latin-1")
            if name.lower() not in HOP_BY_HOP:
                headers.add(name, value.decode("latin-1"))
        capturing = (request.method == "POST" and self.predict_path.fullmatch(request.path) is not None
                     and PROBE_HEADER not in headers)
        ts = self.clock.now() if capturing else 0.0
        length = request.content_length
        body: bytes | None = None
        captured = bytearray() if capturing else None
        oversized = False
        if not request.body_exists:
            body = b""
        elif length is not None and length <= WHOLE_BODY_BYTES:
            body = await request.content.read()

        async def stream_body():
            nonlocal oversized
            async for chunk in request.content.iter_any():
                if captured is not None and not oversized:
                    if len(captured) + len(chunk) > self.max_capture_bytes:
                        oversized = True
                        captured.clear()
                    else:
                        captured.extend(chunk)
                yield chunk

        exchange_id = None
        if capturing:
            given = headers.get(ID_HEADER)
            if given is not None and _ID.fullmatch(given):
                exchange_id = given
            elif self.capture.context.protocol == "v2" and body is not None and len(body) <= SMALL_BODY_BYTES:
                exchange_id = _v2_request_id(body)
            exchange_id = exchange_id or uuid.uuid4().hex
            if body is not None and len(body) > self.max_capture_bytes:
                oversized = True
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            upstream = await self._session.request(request.method, url, headers=headers,
                                                   data=body if body is not None else stream_body(),
                                                   allow_redirects=False, auto_decompress=False)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            problem = f"the upstream {self.upstream} did not answer within {self.timeout:g} s ({type(exc).__name__})"
            self.writer.count(service, "upstream_down", problem=problem)
            return _text(504, f"Vantage capture proxy: {problem}.\n")
        except aiohttp.ClientError as exc:
            problem = f"the upstream {self.upstream} cannot be reached ({type(exc).__name__}: {exc})"
            self.writer.count(service, "upstream_down", problem=problem)
            return _text(502, f"Vantage capture proxy: {problem}.\n")
        answer = bytearray() if capturing else None
        answer_oversized = False
        length = upstream.content_length
        whole = (length is not None and length <= WHOLE_BODY_BYTES and request.method != "HEAD"
                 and upstream.status not in (204, 304))
        try:
            response = web.Response(status=upstream.status, reason=upstream.reason) if whole else \
                web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.raw_headers:
                name = key.decode("latin-1")
                if name.lower() not in HOP_BY_HOP and not (whole and name.lower() == "content-length"):
                    response.headers.add(name, value.decode("latin-1"))
            if capturing:
                response.headers[ID_HEADER] = exchange_id
            if whole:  # a short answer of known length goes back in one write, headers and body together
                response.body = await upstream.read()
                if answer is not None:
                    answer_oversized = len(response.body) > self.max_capture_bytes
                    answer = b"" if answer_oversized else response.body
            else:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    if answer is not None and not answer_oversized:
                        if len(answer) + len(chunk) > self.max_capture_bytes:
                            answer_oversized = True
                            answer.clear()
                        else:
                            answer.extend(chunk)
                    await response.write(chunk)
                await response.write_eof()
        except ConnectionResetError:  # the caller went away
            return response
        except (aiohttp.ClientError, TimeoutError) as exc:  # the upstream broke off: the caller gets a cut answer
            self.writer.count(service, "upstream_down",
                              problem=f"the upstream {self.upstream} broke off its answer ({type(exc).__name__})")
            with contextlib.suppress(Exception):
                request.transport.close()
            return response
        finally:
            upstream.release()
        if capturing:
            self._hand_over(exchange_id, ts, body if body is not None else bytes(captured), answer,
                            oversized or answer_oversized, upstream.status, headers, upstream)
        return response

    def _hand_over(self, exchange_id: str, ts: float, request_body: bytes, answer: bytearray, oversized: bool,
                   status: int, request_headers, upstream) -> None:
        service = self.capture.service
        if oversized:
            self.writer.count(service, "oversized", problem=f"a body over the capture cap of "
                                                            f"{self.max_capture_bytes / 1048576:g} MB was forwarded "
                                                            "but not logged")
            return
        if not 200 <= status < 300:
            self.writer.count(service, "error_answers", problem=f"the upstream answered HTTP {status}; not logged")
            return
        self.writer.submit(Exchange(
            service=service, ts=ts, exchange_id=exchange_id, id_given=True,  # the id the caller was told
            request=request_body, response=bytes(answer) if isinstance(answer, bytearray) else answer,
            request_encoding=_encoding(request_headers.get("Content-Encoding")),
            response_encoding=_encoding(upstream.headers.get("Content-Encoding"))))


def _encoding(value: str | None) -> str | None:
    return value.strip().lower() or None if value else None


def _v2_request_id(body: bytes) -> str | None:
    if b'"id"' not in body:
        return None
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")
