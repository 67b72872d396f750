"""Serves the Chalice app over HTTP with Chalice's own local server (the API Lambda locally)."""

from __future__ import annotations

import argparse
import gzip
import importlib
import signal
import sys
from types import FrameType
from typing import Any

from chalice import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
)

from dev.stage import ROOT, chalice_config


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


class CompressingHandler(ChaliceRequestHandler):
    """Chalice's local handler, compressing as API Gateway does for a stage with
    `minimum_compression_size`: gzip when the client accepts it and the body is at
    least that long. Lambda answers stay text; the gateway in front compresses."""

    minimum_size: int | None = None

    def _send_http_response_with_body(self, code: int, headers: Any, body: Any) -> None:
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        accepted = "gzip" in (self.headers.get("Accept-Encoding") or "").lower()
        if self.minimum_size is not None and accepted and len(data) >= self.minimum_size:
            data = gzip.compress(data, mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        super()._send_http_response_with_body(code, headers, data)


def local_server(app: Chalice, config: Config, host: str, port: int) -> LocalDevServer:
    """chalice.local.create_local_server with the compressing handler."""
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice

    class Handler(CompressingHandler):
        minimum_size = config.minimum_compression_size

    return LocalDevServer(app, config, host, port, handler_cls=Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop)
    # Not `chalice local`: it copies the stage's environment_variables over os.environ,
    # which would undo the overrides (LONGTASK_LEASE_SECONDS=10 make run) and the stack's
    # resource names that dev.local.stack has already put into this process's environment.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    app = importlib.import_module("app").app
    if not isinstance(app, Chalice):
        raise SystemExit(f"app.app is a {type(app).__name__}, not a Chalice app")
    config = chalice_config("api_handler", args.stage)
    server = local_server(app, config, args.host, args.port)
    try:
        server.server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
