"""The four bindings, named after the Go original's middlewares.

``@json(Model)``, ``@messages()``, ``@bytes_messages()`` and ``@raw()`` analyse
the handler once (see :mod:`wschannels.handler`) and return it as a
Starlette/FastAPI WebSocket endpoint; every other server (``asgi()``,
``serve_picows``, ...) serves the same decorated handler from its spec.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

from .codecs import BytesCodec, Codec, JsonCodec, RawCodec, TextCodec
from .handler import Handler, analyse
from .options import Options
from .servers.asgi import starlette_endpoint

__all__ = ["bytes_messages", "json", "messages", "raw"]

H = TypeVar("H", bound=Handler)


def _bind(codec: Codec, options: Options | None, binding: str) -> Callable[[H], H]:
    if options is not None and not isinstance(options, Options):
        raise TypeError(f"{binding}() takes a wschannels.Options, got {options!r}")
    resolved = options if options is not None else Options()

    def decorate(handler: H) -> H:
        return typing.cast(H, starlette_endpoint(analyse(handler, codec, resolved, binding)))

    return decorate


def json(model: Any, options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to JSON messages decoded into ``model`` (Go's ``sockets.JSON``).

    ``model`` may be a dataclass, a ``msgspec.Struct``, a ``TypedDict``, a
    pydantic model, or ``dict`` / ``list`` / ``Any``.

    Raises:
        TypeError: ``model`` cannot be decoded into, or a handler's
            ``Receiver[...]``/``Sender[...]`` names another type.
    """
    return _bind(JsonCodec(model), options, "json")


def messages(options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to text messages as ``str`` (Go's ``sockets.Messages``)."""
    return _bind(TextCodec(), options, "messages")


def bytes_messages(options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to binary messages as ``bytes`` (Go's ``sockets.ByteSliceMessages``)."""
    return _bind(BytesCodec(), options, "bytes_messages")


def raw(options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to ``str`` for text frames and ``bytes`` for binary ones, both ways."""
    return _bind(RawCodec(), options, "raw")
