"""Server adapters: each carries the session pipeline over one server's API.

``asgi`` (Starlette, FastAPI and any ASGI server), ``uvicorn`` (the default
runner), ``picows`` (frames from C, the fastest), ``memory`` (no socket: for
tests); ``routing`` is the path routing of the ``serve_*`` servers.
"""
