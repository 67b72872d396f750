"""Serves the Chalice app over HTTP with Chalice's own local server (the API Lambda locally)."""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import logging
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
    LocalGatewayException,
    RouteMatcher,
    ThreadedHTTPServer,
)

from dev.stage import ROOT, chalice_config

# Answers the standard library gives before the app sees a request, in the app's words.
_OWN_ERRORS = {
    404: ("not_found", "there is no such page"),
    405: ("method_not_allowed", "this method is not allowed here"),
    400: ("bad_request", "the request could not be read"),
    414: ("too_large", "the request line is too long"),
    431: ("too_large", "the request headers are too large"),
}


class _Server(ThreadedHTTPServer):
    """Chalice's threaded server with room for a burst of connections.

    socketserver listens with a backlog of 5: the sixth of fifty clicks arriving at
    once is refused by the kernel before any thread could take it.
    """

    request_queue_size = 128


class _Handler(ChaliceRequestHandler):
    """Chalice's handler; what http.server answers by itself (an unknown method such as
    FOO, a malformed request) comes in the app's JSON error format, not as its HTML.

    It compresses as API Gateway does for a stage with `minimum_compression_size`: gzip
    when the client accepts it and the body is at least that long. Lambda answers stay
    text; the gateway in front compresses."""

    minimum_size: int | None = None

    def _send_http_response_with_body(self, code: int, headers: Any, body: Any) -> None:
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        accepted = "gzip" in (self.headers.get("Accept-Encoding") or "").lower()
        if self.minimum_size is not None and accepted and len(data) >= self.minimum_size:
            data = gzip.compress(data, mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        super()._send_http_response_with_body(code, headers, data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        headers = {}
        if code == 501:
            # A method no route serves (TRACE, FOO): 405 with what the path does allow,
            # as the app itself answers a PUT; 404 where no route matches at all.
            allowed = self._allowed_methods()
            code, message = (405, None) if allowed else (404, None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        error_code, text = _OWN_ERRORS.get(code, ("bad_request", message or "bad request"))
        body = json.dumps({"error": {"code": error_code, "message": text, "fields": {}}}).encode()
        self.send_response(code, message)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)

    def _allowed_methods(self) -> list[str]:
        """The methods the app serves at this path: the Allow header of its 405 to an
        OPTIONS (none of longtask's routes serves OPTIONS); [] where no route matches."""
        try:
            RouteMatcher(list(self.local_gateway._app_object.routes)).match_route(self.path)
            response = self.local_gateway.handle_request(
                method="OPTIONS", path=self.path, headers={}, body=None
            )
        except (ValueError, LocalGatewayException):
            return []
        allow = str(response["headers"].get("Allow") or "GET, HEAD")
        return [m.strip() for m in allow.split(",") if m.strip()]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def local_server(app: Chalice, config: Config, host: str, port: int) -> LocalDevServer:
    """What chalice.local.create_local_server makes, with the handler and server above."""
    # As create_local_server does: the app's request becomes thread-local, so that
    # concurrent requests on the threaded server never see each other's.
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice

    class Handler(_Handler):
        minimum_size = config.minimum_compression_size

    return LocalDevServer(app, config, host, port, handler_cls=Handler, server_cls=_Server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop)
    # Lambda's runtime gives the root logger a handler: the app's log lines show, here too.
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="[api] %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
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
