"""Optional dependencies, imported when first used, with an error that names the extra.

``pip install wschannels`` brings only the binding (msgspec, starlette); the
servers, the Redis backend and the demo are extras. A feature that needs one
imports it through :func:`require`, so a missing package is one clear line
saying what to install instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ModuleNotFoundError):
    """A feature was used whose optional dependency is not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtra` naming ``extra``.

    Only the absence of ``module`` itself is translated: an error raised while
    importing an installed package propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.partition(".")[0]
        if error.name not in (module, top):
            raise
        raise MissingExtra(
            f"{feature} needs the {top!r} package, which is not installed: "
            f"pip install 'wschannels[{extra}]'",
            name=error.name,
        ) from error
