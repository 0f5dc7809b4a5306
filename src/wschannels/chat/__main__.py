"""``wschannels-chat``: serve the chat app, on the in-process hub or on Redis."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import wschannels
from wschannels.chat.app import create_app

REDIS_URL_VARIABLE = "WSCHANNELS_REDIS_URL"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wschannels-chat",
        description="A chat in rooms over WebSockets, built on wschannels.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get(REDIS_URL_VARIABLE) or None,
        help=(
            "share rooms with other chat servers through Redis, e.g. redis://127.0.0.1:6379/0 "
            f"(default: ${REDIS_URL_VARIABLE}, else one process on an in-memory hub)"
        ),
    )
    return parser.parse_args(argv)


def address(host: str, port: int) -> str:
    """The URL to open in a browser for a server listening on ``host:port``."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def main(argv: Sequence[str] | None = None) -> None:
    """Start the chat server and print the address to open."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    app = create_app(args.redis)
    hub = f"Redis at {args.redis}" if args.redis else "the in-memory hub"
    print(f"wschannels chat on {hub}: open {address(args.host, args.port)}", flush=True)
    try:
        wschannels.run(app, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
