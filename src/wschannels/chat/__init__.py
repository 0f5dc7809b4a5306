"""A chat in rooms, built on wschannels: the package's demo and its end-to-end test bed.

Run it with ``wschannels-chat`` (or ``python -m wschannels.chat``) and open
http://127.0.0.1:8000. With ``--redis redis://host:port/0`` several processes
or hosts serve one chat. It needs the ``chat`` extra:
``pip install 'wschannels[chat]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Message", "create_app"]


def __getattr__(name: str) -> Any:
    """The app, imported on first use: the command line can then say what is missing."""
    if name in __all__:
        from wschannels.chat import app

        return getattr(app, name)
    raise AttributeError(f"module 'wschannels.chat' has no attribute {name!r}")
