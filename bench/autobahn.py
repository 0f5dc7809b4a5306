"""Autobahn|Testsuite cases 1-11: a ``raw()`` echo on every server, and each raw server echo.

    python -m bench.autobahn run --wstest /path/to/wstest   # writes docs/autobahn.md

``wstest`` is Autobahn|Testsuite's fuzzing client; it runs only on Python 2.7
(``virtualenv -p python2.7 ab && ab/bin/pip install autobahntestsuite``).
Every server is started in its own process on a free port of 127.0.0.1 with
``python -m bench.autobahn serve NAME PORT``; cases 12 and 13 (compression)
are left out, as none of the wschannels servers negotiates it by default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import wschannels
from wschannels import Options, Receiver, Sender

# Autobahn's 9.x cases send messages of up to 16 MiB; its client sends no Origin of ours.
OPTIONS = Options(max_message_size=16 * 1024 * 1024, allowed_origin=".*", skip_logging=True)
PATH = "/"
SERVERS = {
    # name: (what it is, the raw echo it is compared with)
    "wschannels-uvicorn": ("wschannels.run (uvicorn, websockets-sansio)", "raw-starlette"),
    "wschannels-picows": ("wschannels.serve_picows", "raw-picows"),
    "wschannels-websockets": ("wschannels.serve_websockets", "raw-websockets"),
    "wschannels-aiohttp": ("wschannels.aiohttp_route", "raw-aiohttp"),
}
RAW = {
    "raw-starlette": "Starlette WebSocketRoute echo under uvicorn (websockets-sansio)",
    "raw-picows": "picows WSListener echo",
    "raw-websockets": "websockets.asyncio.server.serve echo",
    "raw-aiohttp": "aiohttp WebSocketResponse echo",
}


@wschannels.raw(OPTIONS)
async def echo(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
    async for message in receiver:
        await sender.send(message)


def serve(name: str, port: int) -> None:
    """Run one echo server until killed."""
    size = OPTIONS.max_message_size
    if name == "wschannels-uvicorn":
        wschannels.run(echo, OPTIONS, port=port, log_level="warning")
    elif name == "wschannels-picows":
        wschannels.run_picows({PATH: echo}, port=port)
    elif name == "wschannels-websockets":
        wschannels.run_websockets({PATH: echo}, port=port)
    elif name == "wschannels-aiohttp":
        from aiohttp import web

        app = web.Application()
        app.router.add_get(PATH, wschannels.aiohttp_route(echo))
        wschannels.aiohttp_setup(app)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    elif name == "raw-starlette":
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocket, WebSocketDisconnect

        async def starlette_echo(ws: WebSocket) -> None:
            await ws.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    message = await ws.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    if message.get("text") is not None:
                        await ws.send_text(message["text"])
                    else:
                        await ws.send_bytes(message["bytes"])

        app = Starlette(routes=[WebSocketRoute(PATH, starlette_echo)])
        uvicorn.run(app, port=port, ws="websockets-sansio", ws_max_size=size, log_level="warning")
    elif name == "raw-picows":
        from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

        class Echo(WSListener):
            def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
                if frame.msg_type == WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                    transport.disconnect()
                elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                    transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)

        async def picows_main() -> None:
            server = await ws_create_server(
                lambda request: Echo(), "127.0.0.1", port, max_frame_size=size
            )
            await server.serve_forever()

        asyncio.run(picows_main())
    elif name == "raw-websockets":
        from websockets.asyncio.server import ServerConnection
        from websockets.asyncio.server import serve as websockets_serve

        async def websockets_echo(ws: ServerConnection) -> None:
            async for message in ws:
                await ws.send(message)

        async def websockets_main() -> None:
            async with websockets_serve(
                websockets_echo, "127.0.0.1", port, max_size=size, compression=None
            ) as server:
                await server.serve_forever()

        asyncio.run(websockets_main())
    elif name == "raw-aiohttp":
        from aiohttp import WSMsgType, web

        async def aiohttp_echo(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(max_msg_size=size, compress=False)
            await ws.prepare(request)
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await ws.send_str(message.data)
                elif message.type is WSMsgType.BINARY:
                    await ws.send_bytes(message.data)
            return ws

        app = web.Application()
        app.router.add_get(PATH, aiohttp_echo)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    else:
        raise SystemExit(f"unknown server {name!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start listening")


def run_one(name: str, wstest: str, outdir: Path) -> dict[str, Any]:
    """One server's results: {case: {"behavior": ..., "behaviorClose": ...}}."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.autobahn", "serve", name, str(port)])
    try:
        wait_listening(port, server)
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": name, "url": f"ws://127.0.0.1:{port}{PATH}"}],
            "cases": [f"{number}.*" for number in range(1, 12)],
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_path = outdir / f"{name}.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_path)],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=outdir,
        )
    finally:
        server.kill()
        server.wait()
    index = json.loads((outdir / "index.json").read_text())
    return dict(index[name])


def _case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Autobahn|Testsuite, cases 1-11",
        "",
        "`python -m bench.autobahn run --wstest PATH` (see bench/autobahn.py) runs Autobahn's",
        "fuzzing client against a `raw()` echo on each server and against each server's own",
        "raw echo (same limits: 16 MiB messages, no compression). A wschannels row is not",
        "worse than its raw row in any case: a case graded FAILED or NON-STRICT there is",
        "listed for both.",
        "",
        "| server | OK | NON-STRICT | INFORMATIONAL | UNIMPLEMENTED | FAILED | not OK |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in [*SERVERS, *RAW]:
        if name not in results:
            continue
        counts = Counter(result["behavior"] for result in results[name].values())
        not_ok = sorted(
            (case for case, result in results[name].items() if result["behavior"] != "OK"),
            key=_case_key,
        )
        shown = ", ".join(
            f"{case} ({results[name][case]['behavior']})"
            for case in not_ok
            if results[name][case]["behavior"] != "INFORMATIONAL"
        )
        described = SERVERS[name][0] if name in SERVERS else RAW[name]
        lines.append(
            f"| {name}: {described} | {counts['OK']} | {counts['NON-STRICT']} | "
            f"{counts['INFORMATIONAL']} | {counts['UNIMPLEMENTED']} | {counts['FAILED']} | "
            f"{shown or '-'} |"
        )
    lines += ["", "Where wschannels grades worse than the same server's raw echo:", ""]
    order = {"OK": 0, "INFORMATIONAL": 0, "UNIMPLEMENTED": 1, "NON-STRICT": 1, "FAILED": 2}
    worse = []
    for name, (_, raw) in SERVERS.items():
        if name not in results or raw not in results:
            continue
        for case, result in results[name].items():
            theirs = results[raw].get(case, {}).get("behavior", "OK")
            if order.get(result["behavior"], 2) > order.get(theirs, 2):
                worse.append(f"- {name} {case}: {result['behavior']} ({raw}: {theirs})")
    lines += sorted(worse) or ["- none"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("name", choices=[*SERVERS, *RAW])
    serving.add_argument("port", type=int)
    running = commands.add_parser("run")
    running.add_argument("--wstest", required=True)
    running.add_argument("--only", nargs="*", default=None)
    running.add_argument("--output", default="docs/autobahn.md")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.name, args.port)
        return
    results: dict[str, dict[str, Any]] = {}
    for name in args.only or [*SERVERS, *RAW]:
        with tempfile.TemporaryDirectory() as outdir:
            results[name] = run_one(name, args.wstest, Path(outdir))
        print(name, Counter(r["behavior"] for r in results[name].values()), flush=True)
    Path(args.output).write_text(report(results))
    Path(args.output).with_suffix(".json").write_text(
        json.dumps(
            {name: {c: r["behavior"] for c, r in cases.items()} for name, cases in results.items()},
            indent=1,
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
