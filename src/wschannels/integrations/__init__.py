"""Ways to serve a decorated handler: a bare ASGI app, and the default uvicorn runner."""
