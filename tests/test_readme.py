"""The README's examples run as written."""

import asyncio
import re
import types
from pathlib import Path

import msgspec
from websockets.asyncio.client import connect

from tests.conftest import serve

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


async def test_the_opening_example_echoes_through_fastapi() -> None:
    module = types.ModuleType("readme_example")
    exec(compile(python_blocks()[0], "README.md", "exec"), module.__dict__)
    async with serve(module.app) as server, connect(
        server.ws + "/echo/bob", origin=server.origin, compression=None
    ) as ws:
        await ws.send('{"text": "not json')
        await ws.send(msgspec.json.encode({"text": "hi"}).decode())
        reply = await asyncio.wait_for(ws.recv(), 10)
    assert msgspec.json.decode(reply) == {"text": "bob: hi"}
