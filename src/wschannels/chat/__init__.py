"""A chat in rooms, built on wschannels: the package's demo and its end-to-end test bed.

Run it with ``wschannels-chat`` (or ``python -m wschannels.chat``) and open
http://127.0.0.1:8000. With ``--redis redis://host:port/0`` several processes
or hosts serve one chat.
"""

from wschannels.chat.app import Message, create_app

__all__ = ["Message", "create_app"]
