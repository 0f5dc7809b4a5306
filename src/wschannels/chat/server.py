"""The chat server behind ``wschannels-chat``: uvicorn, a hub, and a start-up line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys

import uvicorn

import wschannels
from wschannels.chat.__main__ import HEARTBEAT_VARIABLE
from wschannels.chat.app import create_app
from wschannels.hub import BackendUnavailable, Hub
from wschannels.hub.errors import redact

__all__ = ["address", "serve_chat"]


def address(host: str, port: int) -> str:
    """The URL to open in a browser for a server listening on ``host:port``."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn, printing the address to open once it is listening."""

    def __init__(self, config: uvicorn.Config, hub_name: str) -> None:
        super().__init__(config)
        self._hub_name = hub_name

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            config = self.config
            print(
                f"wschannels chat on {self._hub_name}: open {address(config.host, config.port)}",
                flush=True,
            )


async def _broker_problem(url: str) -> str | None:
    """Why the hub cannot use the broker at ``url``, or None when it can: said once, plainly."""
    hub = Hub(url)
    try:
        await hub.start()
    except BackendUnavailable as error:
        return str(error)
    await hub.stop()
    return None


def serve_chat(args: argparse.Namespace) -> None:
    """Serve the chat with the parsed command line until stopped; exit 1 if it cannot start."""
    url = args.redis or args.nats
    try:
        heartbeat = float(os.environ.get(HEARTBEAT_VARIABLE) or 5.0)
        app = create_app(url, heartbeat_interval=heartbeat)
    except ValueError as error:  # e.g. a URL that is not redis:// or nats://
        sys.exit(f"wschannels-chat: {error}")
    broker = "Redis" if args.redis else "NATS"
    if url:
        # Before logging is set up, so a good check is silent and a bad one is one line.
        problem = asyncio.run(_broker_problem(url))
        if problem is not None:
            problem = problem.rstrip(".")
            sys.exit(f"wschannels-chat: {problem}. Is {broker} running at that address?")
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    hub_name = f"{broker} at {redact(url)}" if url else "the in-memory hub"
    server = _Server(wschannels.uvicorn_config(app, host=args.host, port=args.port), hub_name)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(1)
