"""A server process for the drain tests: ``python drain_app.py SERVER PORT``.

SERVER is ``picows`` (run_picows), ``websockets`` (run_websockets),
``aiohttp`` (``web.run_app`` with ``aiohttp_setup``) or ``uvicorn``
(``wschannels.run`` of a Starlette app). Each client at
``/flood/{client_id}`` is sent numbered messages until the server shuts
down; when its handler sees ``done`` it prints ``client_id count``: how
many sends the handler completed, which the client must receive, no more and
no fewer, before the 1001.
"""

from __future__ import annotations

import sys

import wschannels
from wschannels import ChannelClosed, Done, Options, Sender

OPTIONS = Options(send_channel_buffer=20, skip_logging=True)


@wschannels.messages(OPTIONS)
async def flood(client_id: str, sender: Sender[str], done: Done) -> None:
    sent = 0
    try:
        while True:
            await sender.send(f"{sent:08d}" + "x" * 16384)
            sent += 1
    except ChannelClosed:
        pass
    await done.recv()
    print(f"{client_id} {sent}", flush=True)


def main() -> None:
    server, port = sys.argv[1], int(sys.argv[2])
    routes = {"/flood/{client_id}": flood}
    if server == "picows":
        wschannels.run_picows(routes, port=port, shutdown_timeout=5.0)
    elif server == "websockets":
        wschannels.run_websockets(routes, port=port, shutdown_timeout=5.0)
    elif server == "uvicorn":
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute

        app = Starlette(routes=[WebSocketRoute("/flood/{client_id}", flood)])
        wschannels.run(app, port=port, shutdown_timeout=5.0, log_level="warning")
    else:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/flood/{client_id}", wschannels.aiohttp_route(flood))
        wschannels.aiohttp_setup(app, shutdown_timeout=5.0)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
