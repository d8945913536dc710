"""``python -m monitoring.capture``: the capturing reverse proxy in front of one service.

    python -m monitoring.capture --config my.toml --service credit-risk \\
        --upstream http://127.0.0.1:8080 --listen 127.0.0.1:8081

Clients call the proxy instead of the server; every call is forwarded unchanged and the
prediction calls are written to the service's prediction log in the configured store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from monitoring.capture import CaptureSetupError, service_capture
from monitoring.capture._proxy import CaptureProxy, prediction_path
from monitoring.capture._writer import WriterProcess
from monitoring.clock import clock_from_environment
from monitoring.config import ConfigError, check_http_url, load_config, parse_command_line
from monitoring.store import Store


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen must be HOST:PORT such as 127.0.0.1:8081; got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_proxy(config_path: str, service_name: str | None, upstream: str | None, *, max_capture_mb: float = 8.0,
                timeout: float = 60.0, source: str = "proxy") -> CaptureProxy:
    """The proxy app for ``service_name`` of the configuration at ``config_path``.

    Raises
    ------
    ConfigError, CaptureSetupError, ValueError
        With a message naming what is wrong.
    """
    config = load_config(config_path)
    if service_name is None:
        if len(config.services) != 1:
            raise ValueError(f"--service is needed: the configuration has {len(config.services)} services "
                             f"({', '.join(s.name for s in config.services)})")
        service_name = config.services[0].name
    try:
        service = config.service(service_name)
    except KeyError:
        raise ValueError(f"--service {service_name!r} is not in the configuration; it has "
                         f"{', '.join(s.name for s in config.services)}") from None
    upstream = check_http_url(upstream) if upstream else service.url
    store = Store.from_config(config)
    capture = service_capture(service, store)
    clock = clock_from_environment()
    store.dispose()  # the writer process opens its own connections
    writer = WriterProcess(config.store.url, {service.name: capture}, source=source, clock=clock,
                           log_url=config.store.log)
    pattern = prediction_path(service.protocol, model=service.model, rest_predict=service.rest.predict)
    return CaptureProxy(upstream, capture, writer, predict_path=pattern, clock=clock,
                        max_capture_bytes=int(max_capture_mb * 1024 * 1024), timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve the proxy until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.capture", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="TOML configuration (default: $VANTAGE_CONFIG)")
    parser.add_argument("--service", help="the service the traffic belongs to (default: the only one)")
    parser.add_argument("--upstream", help="base URL of the server (default: the service's url)")
    parser.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 8081), help="HOST:PORT to listen on")
    parser.add_argument("--max-capture-mb", type=float, default=8.0,
                        help="largest body logged; larger ones are forwarded, not logged (default 8)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to connect to the upstream and between two reads of its answer (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args, path = parse_command_line(parser, argv)
    host, port = args.listen
    try:
        app = build_proxy(path, args.service, args.upstream, max_capture_mb=args.max_capture_mb,
                          timeout=args.timeout, source=f"proxy {host}:{port}")
    except ConfigError as exc:
        print(f"invalid configuration {exc.source}:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    except (CaptureSetupError, ValueError) as exc:
        print(f"cannot start the capture proxy: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info("capture proxy on %s:%d → %s (service %s)", host, port, app.upstream,
                                     app.capture.service)
    try:
        asyncio.run(app.serve(host, port))
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
