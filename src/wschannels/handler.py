"""What a decorated handler is: its signature, analysed once, into a :class:`HandlerSpec`.

A binding (``@json(Model)``, ``@messages()``, ...) reads the handler's
annotations when it decorates it: which views the handler takes, which item
type its receiver and sender carry, and which parameters the framework or the
path must supply. Every mistake found there is a ``TypeError`` at decoration,
naming the parameter, not a surprise at the first connection. Every server
adapter serves a handler from its spec alone.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .codecs import Codec
from .engine import Connection, Done
from .options import Options
from .views import Disconnect, Errors, Receiver, Sender

__all__ = ["Handler", "HandlerSpec", "analyse", "spec_of"]

Handler = Callable[..., Awaitable[None]]

_VIEWS: dict[Any, str] = {
    Receiver: "receiver",
    Sender: "sender",
    Done: "done",
    Disconnect: "disconnect",
    Errors: "errors",
}


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler with its binding: the views to wire and what others must supply."""

    handler: Handler
    binding: str
    """The binding's name: ``"json"``, ``"messages"``, ``"bytes_messages"`` or ``"raw"``."""
    codec: Codec
    options: Options
    views: tuple[tuple[str, str], ...]
    """(parameter, view kind) for each view the handler takes."""
    parameters: tuple[inspect.Parameter, ...]
    """The other parameters (annotated): the framework, the path or a default supplies them."""

    @property
    def name(self) -> str:
        """The handler's qualified name, for messages."""
        return self.handler.__qualname__

    @property
    def wants_receiver(self) -> bool:
        """Whether the handler takes a ``Receiver`` (otherwise messages are discarded)."""
        return any(kind == "receiver" for _, kind in self.views)

    def parameter_annotated(self, annotation: Any) -> str | None:
        """The name of the parameter annotated with ``annotation`` (a server's request type)."""
        for parameter in self.parameters:
            if parameter.annotation is annotation:
                return parameter.name
        return None

    def path_arguments(
        self,
        path_parameters: Mapping[str, Any],
        where: str,
        supplied: Mapping[Any, str] | None = None,
    ) -> dict[str, Any]:
        """Defaults for the parameters a path does not give; checked when a route is made.

        ``supplied`` maps a server's request type to what it is called there
        (``{aiohttp.web.Request: "the request"}``): parameters with that
        annotation are passed by the server.

        Raises:
            TypeError: a parameter is neither given by the path, nor supplied
                by the server, nor has a default; the message names it.
        """
        defaults: dict[str, Any] = {}
        supplied = supplied or {}
        for parameter in self.parameters:
            if parameter.name in path_parameters or parameter.annotation in supplied:
                continue
            if parameter.default is inspect.Parameter.empty:
                raise TypeError(
                    f"{self.name} at {where}: parameter {parameter.name!r} is not a view and "
                    f"the path does not give it; add {{{parameter.name}}} to the path or give "
                    "it a default"
                )
            defaults[parameter.name] = parameter.default
        return defaults

    def view_arguments(self, connection: Connection) -> dict[str, Any]:
        """The handler's views on ``connection``, by parameter name."""
        arguments: dict[str, Any] = {}
        for name, kind in self.views:
            if kind == "receiver":
                arguments[name] = Receiver(connection.receiver_channel, connection)
            elif kind == "sender":
                arguments[name] = Sender(connection)
            elif kind == "done":
                arguments[name] = connection.done
            elif kind == "disconnect":
                arguments[name] = Disconnect(connection)
            else:
                arguments[name] = Errors(connection.errors_channel, connection)
        return arguments


def spec_of(endpoint: Any) -> HandlerSpec:
    """The :class:`HandlerSpec` behind a decorated handler (or an app made from one).

    Raises:
        TypeError: ``endpoint`` was not decorated by a wschannels binding.
    """
    spec = getattr(endpoint, "__wschannels_spec__", None)
    if not isinstance(spec, HandlerSpec):
        raise TypeError(
            f"{endpoint!r} is not a wschannels handler: decorate it with "
            "@wschannels.json(Model), @wschannels.messages(), "
            "@wschannels.bytes_messages() or @wschannels.raw()"
        )
    return spec


def analyse(handler: Handler, codec: Codec, options: Options, binding: str) -> HandlerSpec:
    """Read a handler's signature once.

    Raises:
        TypeError: it is not an ``async def``; a parameter has no annotation;
            a view has no item type (a bare ``Receiver``) or one the binding
            does not carry.
    """
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{binding}() decorates an async def handler, got {handler!r}")
    name = handler.__qualname__
    try:
        hints = typing.get_type_hints(handler, include_extras=True)
    except Exception as error:
        raise TypeError(f"cannot resolve the annotations of {name}: {error}") from None
    views: list[tuple[str, str]] = []
    others: list[inspect.Parameter] = []
    for parameter in inspect.signature(handler).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{name}: *{parameter.name} parameters cannot be supplied")
        hint = hints.get(parameter.name, parameter.annotation)
        if hint is inspect.Parameter.empty:
            raise TypeError(
                f"{name}: parameter {parameter.name!r} has no annotation; annotate it with a "
                "view (Receiver[T], Sender[T], Done, Disconnect, Errors) or the type the "
                "framework supplies (e.g. str for a path parameter)"
            )
        origin = typing.get_origin(hint) or hint
        if origin is typing.Annotated:  # framework metadata (Depends, Query): not a view
            origin = None
        kind = _VIEWS.get(origin)
        if kind is None:
            others.append(parameter.replace(annotation=hint))
            continue
        if kind in ("receiver", "sender"):
            _check_item_type(name, parameter.name, hint, codec, binding)
        views.append((parameter.name, kind))
    return HandlerSpec(handler, binding, codec, options, tuple(views), tuple(others))


def _check_item_type(handler: str, parameter: str, hint: Any, codec: Codec, binding: str) -> None:
    arguments = typing.get_args(hint)
    if not arguments:
        view = getattr(hint, "__name__", repr(hint))
        raise TypeError(
            f"{handler}: parameter {parameter!r} is a bare {view}; say what it carries, "
            f"e.g. {view}[{_name(codec.item_type)}]"
        )
    item = arguments[0] if len(arguments) == 1 else typing.Union[arguments]  # noqa: UP007
    if not codec.accepts(item):
        raise TypeError(
            f"{handler}: parameter {parameter!r} is {_name(hint)}, but the binding "
            f"{binding}() carries {_name(codec.item_type)} items"
        )


def _name(annotation: Any) -> str:
    arguments = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(map(_name, arguments))
    if arguments and origin is not None:
        return f"{_name(origin)}[{', '.join(map(_name, arguments))}]"
    return getattr(annotation, "__name__", None) or repr(annotation)
