"""Raw picows echo server: the ceiling a frame-level Python server reaches on this machine.

`/json` decodes each text message as JSON and encodes it again; every other path echoes.
"""

from __future__ import annotations

import argparse
import json

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.harness import raise_open_files_limit


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())


class EchoJson(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT:
            data = json.loads(frame.get_payload_as_bytes())
            transport.send(WSMsgType.TEXT, json.dumps(data, separators=(",", ":")).encode())


def listener(request: WSUpgradeRequest) -> WSListener:
    return EchoJson() if request.path == b"/json" else Echo()


async def main(port: int) -> None:
    server = await ws_create_server(listener, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default=None, help="ignored (uniform command line)")
    raise_open_files_limit()
    uvloop.run(main(parser.parse_args().port))
