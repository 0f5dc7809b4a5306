"""Server adapters: each carries the session pipeline over one server's API.

``asgi`` (Starlette, FastAPI and any ASGI server), ``uvicorn`` (the default
runner), ``picows`` (frames from C, the fastest), ``websockets`` (the
websockets library's asyncio server), ``aiohttp`` (aiohttp request
handlers), ``memory`` (no socket: for tests and ``wschannels.testing``).
Shared by them: ``routing`` (the path routing of the ``serve_*``
servers), ``drain`` (their open sessions and graceful shutdown) and
``stepping`` (a server's coroutines run without a task while they do not wait);
``refusals`` keeps uvicorn from logging a refusal we sent on purpose as an error.
"""
