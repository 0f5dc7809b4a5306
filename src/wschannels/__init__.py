"""wschannels: a WebSocket bound to Go-style channels, for asyncio.

A handler declares a receiver of typed messages, a sender, a ``done``
channel, a ``disconnect`` channel that takes a close code and an ``errors``
channel, and runs its whole connection from one :func:`select` loop::

    @wschannels.json(Message)
    async def echo(receiver: Receiver[Message], sender: Sender[Message], done: Done) -> None:
        while True:
            chosen, message, ok = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(message)
"""

# First: _native decides, before anything imports them, which build of the hot path loads.
from . import _native
from . import engine as _engine
from .bindings import bytes_messages, json, messages, raw
from .channels import (
    Channel,
    ChannelClosed,
    ChannelStatistics,
    DeferredSend,
    SelectResult,
    Send,
    Ticker,
    after,
    select,
    ticker,
    try_select,
)
from .close_codes import CloseCode
from .engine import ConnectionStatistics, State
from .errors import (
    InvalidMessage,
    KeepaliveTimeout,
    MessageTooBig,
    RateLimited,
    ReceiverStalled,
    WouldBlock,
    WriteFailed,
    WriteTimeout,
    WschannelsError,
)
from .extras import MissingExtra, require
from .hub import (
    BackendUnavailable,
    CannotRecover,
    Hub,
    HubStatistics,
    Position,
    PresenceEvent,
    SlowConsumer,
    SlowConsumerPolicy,
)
from .metrics import Stats, aiohttp_metrics, metrics_endpoint, stats
from .options import LogLevel, Options
from .servers.asgi import asgi
from .servers.uvicorn import run, uvicorn_config
from .views import Disconnect, Done, Errors, Receiver, Sender

compiled: bool = _native.is_compiled(_engine)
"""Whether the hot path (engine, channels, views, codecs) runs compiled by mypyc."""

# Server adapters, imported on first use; each is named after its server's package, which
# is also the name of the extra that installs it.
_LAZY = {
    "PicowsServer": "picows",
    "run_picows": "picows",
    "serve_picows": "picows",
    "WebsocketsServer": "websockets",
    "run_websockets": "websockets",
    "serve_websockets": "websockets",
    "aiohttp_route": "aiohttp",
    "aiohttp_setup": "aiohttp",
}


def __getattr__(name: str) -> object:
    """A server adapter's name, importing it (and its server) on first use.

    Raises:
        MissingExtra: the server's package is not installed; names the extra.
    """
    server = _LAZY.get(name)
    if server is not None:
        require(server, server, f"wschannels.{name}")
        import importlib

        return getattr(importlib.import_module(f".servers.{server}", __name__), name)
    raise AttributeError(f"module 'wschannels' has no attribute {name!r}")


__all__ = [
    "BackendUnavailable",
    "CannotRecover",
    "Channel",
    "ChannelClosed",
    "ChannelStatistics",
    "CloseCode",
    "ConnectionStatistics",
    "DeferredSend",
    "Disconnect",
    "Done",
    "Errors",
    "Hub",
    "HubStatistics",
    "InvalidMessage",
    "KeepaliveTimeout",
    "LogLevel",
    "MessageTooBig",
    "MissingExtra",
    "Options",
    "PicowsServer",
    "Position",
    "PresenceEvent",
    "RateLimited",
    "Receiver",
    "ReceiverStalled",
    "SelectResult",
    "Send",
    "Sender",
    "SlowConsumer",
    "SlowConsumerPolicy",
    "State",
    "Stats",
    "Ticker",
    "WebsocketsServer",
    "WouldBlock",
    "WriteFailed",
    "WriteTimeout",
    "WschannelsError",
    "after",
    "aiohttp_metrics",
    "aiohttp_route",
    "aiohttp_setup",
    "asgi",
    "bytes_messages",
    "compiled",
    "json",
    "messages",
    "metrics_endpoint",
    "raw",
    "run",
    "run_picows",
    "run_websockets",
    "select",
    "serve_picows",
    "serve_websockets",
    "stats",
    "ticker",
    "try_select",
    "uvicorn_config",
]
