"""``wschannels-chat``: serve the chat app, on the in-process hub, on Redis or on NATS."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from wschannels.extras import MissingExtra, require

# What the demo needs beyond the binding: pip install 'wschannels[chat]'.
CHAT_EXTRA = ("uvicorn", "jinja2", "redis")

REDIS_URL_VARIABLE = "WSCHANNELS_REDIS_URL"
NATS_URL_VARIABLE = "WSCHANNELS_NATS_URL"
HEARTBEAT_VARIABLE = "WSCHANNELS_HUB_HEARTBEAT"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wschannels-chat",
        description="A chat in rooms over WebSockets, built on wschannels.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    brokers = parser.add_mutually_exclusive_group()
    brokers.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get(REDIS_URL_VARIABLE) or None,
        help=(
            "share rooms with other chat servers through Redis, e.g. redis://127.0.0.1:6379/0 "
            "(or a cluster: redis+cluster://host:port) "
            f"(default: ${REDIS_URL_VARIABLE}, else one process on an in-memory hub)"
        ),
    )
    brokers.add_argument(
        "--nats",
        metavar="URL",
        default=os.environ.get(NATS_URL_VARIABLE) or None,
        help=(
            "share rooms with other chat servers through NATS with JetStream "
            f"(nats-server -js), e.g. nats://127.0.0.1:4222 (default: ${NATS_URL_VARIABLE})"
        ),
    )
    args = parser.parse_args(argv)
    if args.redis and args.nats:
        parser.error("give --redis or --nats, not both")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Start the chat server; print the address to open once it listens."""
    args = parse_args(argv)
    try:
        for module in CHAT_EXTRA:
            require(module, "chat", "wschannels-chat")
        if args.nats:
            require("nats", "nats", "wschannels-chat --nats")
    except MissingExtra as error:
        sys.exit(f"wschannels-chat: {error}")
    from wschannels.chat.server import serve_chat

    serve_chat(args)


if __name__ == "__main__":
    main()
