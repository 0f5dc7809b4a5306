"""The routes the reliability benchmarks serve, on any server of `bench.servers.registry`:

    python -m bench.servers.registry picows --port 8001 \\
        --routes bench.servers.reliability_app:ROUTES

`/echo` echoes text; `/room` joins a `Hub` room, echoes each message to its sender and
publishes it to the others; `/stats` answers every message with the server's own counts (tasks,
handlers running, hub members, gc objects, RSS), which is how the soak looks for leaks from
outside the process.
"""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import wschannels
from wschannels import Done, Receiver, Sender, select

OPTIONS = wschannels.Options(allowed_origin=".*", skip_logging=True)
ROOM = "soak"
hub = wschannels.Hub()
_hub_ready: asyncio.Future[None] | None = None
running = {"handlers": 0}


async def _start_hub() -> None:
    """Start the embedded hub on first use (the registry's servers run no lifespan)."""
    global _hub_ready
    if _hub_ready is None:
        _hub_ready = asyncio.get_running_loop().create_future()
        await hub.start()
        _hub_ready.set_result(None)
    await _hub_ready


@wschannels.messages(OPTIONS)
async def echo(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    running["handlers"] += 1
    try:
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(value)
    finally:
        running["handlers"] -= 1


@wschannels.messages(OPTIONS)
async def room(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    running["handlers"] += 1
    try:
        await _start_hub()
        await hub.join(ROOM, sender)
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(value)
            await hub.publish(ROOM, "room: " + value, exclude=sender)
    finally:
        running["handlers"] -= 1


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@wschannels.messages(OPTIONS)
async def stats(receiver: Receiver[str], sender: Sender[str]) -> None:
    async for _ in receiver:
        gc.collect()
        counts = {
            "tasks": len(asyncio.all_tasks()),
            "handlers": running["handlers"],
            "hub_members": hub.local_count(ROOM) if _hub_ready is not None else 0,
            "gc_objects": len(gc.get_objects()),
            "rss_bytes": rss_bytes(),
        }
        await sender.send(json.dumps(counts))


ROUTES = {"/echo": echo, "/room": room, "/stats": stats}
