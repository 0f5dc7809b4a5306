"""Path routing for the servers that take a ``{path template: handler}`` mapping.

Templates use Starlette's syntax (``/rooms/{name}``, ``/files/{path:path}``,
``/items/{id:int}``); path parameters are passed to the handler's parameters
of the same name. Every route is checked when the server is made: a handler
that is not decorated, or that needs a parameter its path does not give, is
a ``TypeError`` at start-up, not at the first connection.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.convertors import Convertor
from starlette.routing import compile_path

from ..handler import HandlerSpec, spec_of

__all__ = ["Route", "Routes"]


@dataclass(frozen=True, slots=True)
class Route:
    """One path template and the handler behind it."""

    template: str
    spec: HandlerSpec
    matcher: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    defaults: tuple[tuple[str, Any], ...]
    """Handler parameters the path does not give, with their defaults."""


class Routes:
    """A server's routes, matched in the order given."""

    __slots__ = ("_routes",)

    def __init__(
        self,
        routes: Mapping[str, Callable[..., Awaitable[None]]],
        server: str,
        supplied: Mapping[Any, str] | None = None,
    ) -> None:
        """Check and compile ``routes`` for ``server`` (its name, for messages).

        ``supplied`` maps a request type the server passes to handlers to what
        it is called (see :meth:`HandlerSpec.path_arguments`).

        Raises:
            TypeError: a handler is not decorated, or needs a parameter that
                neither its path nor the server gives.
        """
        compiled = []
        for template, handler in routes.items():
            spec = spec_of(handler)
            matcher, _, convertors = compile_path(template)
            defaults = spec.path_arguments(convertors, f"{template!r} on {server}", supplied)
            compiled.append(Route(template, spec, matcher, convertors, tuple(defaults.items())))
        self._routes = tuple(compiled)

    def __iter__(self) -> Any:
        return iter(self._routes)

    def match(self, target: str) -> tuple[Route, dict[str, Any]] | None:
        """The route for a request target (path and query) and the handler's arguments."""
        path = unquote(target.split("?", 1)[0])
        for route in self._routes:
            found = route.matcher.match(path)
            if found is None:
                continue
            arguments = dict(route.defaults)
            convertors = route.convertors
            for name, value in found.groupdict().items():
                arguments[name] = convertors[name].convert(value)
            return route, arguments
        return None
