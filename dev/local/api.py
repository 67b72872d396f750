"""Serves the Chalice app over HTTP with Chalice's own local server (the API Lambda locally)."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from types import FrameType

from chalice import Chalice
from chalice.local import create_local_server

from dev.stage import ROOT, chalice_config


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


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
    server = create_local_server(app, config, args.host, args.port)
    try:
        server.server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
