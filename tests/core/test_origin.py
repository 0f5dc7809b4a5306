"""Specification of the Origin check: a full match, with the request's Host escaped."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

import wschannels
from tests.conftest import Server
from tests.servers import Serving
from wschannels import Options, Sender
from wschannels.origin import origin_allowed

DEFAULT = Options().allowed_origin
WAIT = 10.0


# -- origin_allowed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://example.com", "https://example.com"], ids=["http", "https"]
)
def test_the_default_admits_the_pages_own_host_over_http_and_https(origin: str) -> None:
    assert origin_allowed(DEFAULT, origin, "example.com")


@pytest.mark.parametrize(
    "origin",
    [
        "http://example.com.evil.org",  # the seed's pattern ends with $, but check the end anyway
        "http://example.com/",
        "http://evil.org/http://example.com",  # not anchored at the start in the seed
        "xhttp://example.com",
        "ws://example.com",
        "http://sub.example.com",
        "http://exampleXcom",  # a dot in the host is a dot, not any character
        "",
    ],
)
def test_the_default_rejects_any_other_origin(origin: str) -> None:
    assert not origin_allowed(DEFAULT, origin, "example.com")


def test_the_pattern_must_match_the_whole_origin_even_without_anchors() -> None:
    pattern = r"https?://allowed\.com"

    assert origin_allowed(pattern, "http://allowed.com", "ignored")
    assert not origin_allowed(pattern, "http://allowed.com.evil.org", "ignored")
    assert not origin_allowed(pattern, "evil+http://allowed.com", "ignored")


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        (".*", "http://evil.org"),
        ("evil.com|", "http://anything.org"),
        ("(evil)?", "http://"),
        ("a.b", "http://aXb"),
        ("a+", "http://aaa"),
    ],
)
def test_the_host_is_escaped_so_it_cannot_widen_the_pattern(host: str, origin: str) -> None:
    assert not origin_allowed(DEFAULT, origin, host)
    assert origin_allowed(DEFAULT, f"http://{host}", host)  # yet matches itself literally


def test_a_host_that_is_not_a_valid_pattern_does_not_raise() -> None:
    assert not origin_allowed(DEFAULT, "http://evil.org", "([")


def test_a_missing_origin_is_admitted_by_default_whatever_the_pattern() -> None:
    assert origin_allowed(DEFAULT, None, "example.com")
    assert origin_allowed(r"https://app\.example\.com", None, "example.com")


def test_a_missing_origin_is_refused_when_origin_is_required() -> None:
    assert not origin_allowed(DEFAULT, None, "example.com", require_origin=True)
    assert not origin_allowed(".*", None, "example.com", require_origin=True)
    assert origin_allowed(DEFAULT, "http://example.com", "example.com", require_origin=True)


def test_an_empty_origin_header_is_present_and_must_match() -> None:
    assert not origin_allowed(DEFAULT, "", "example.com")
    assert origin_allowed(".*", "", "example.com")


def test_the_null_origin_of_sandboxed_pages_is_refused_by_default() -> None:
    assert not origin_allowed(DEFAULT, "null", "example.com")


def test_the_port_is_part_of_the_host_and_must_match() -> None:
    host = "127.0.0.1:8000"

    assert origin_allowed(DEFAULT, "http://127.0.0.1:8000", host)
    assert not origin_allowed(DEFAULT, "http://127.0.0.1:8001", host)
    assert not origin_allowed(DEFAULT, "http://127.0.0.1", host)
    assert not origin_allowed(DEFAULT, "http://127.0.0.1:80000", host)


def test_a_missing_host_leaves_only_an_empty_host_for_the_default() -> None:
    assert not origin_allowed(DEFAULT, "http://example.com", None)


def test_a_list_of_origins_can_be_allowed_with_an_alternation() -> None:
    pattern = r"https://(app\.example\.com|admin\.example\.com)"

    assert origin_allowed(pattern, "https://admin.example.com", "api.example.com")
    assert not origin_allowed(pattern, "https://evil.example.com", "api.example.com")


# -- end to end -------------------------------------------------------------------------


def greeter(options: Options | None = None) -> Any:
    @wschannels.messages(options)
    async def greet(sender: Sender[str]) -> None:
        await sender.send("welcome")

    return greet


def handshake_headers(origin: str | None) -> dict[str, str]:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def greeting(server: Server, origin: str | None) -> str | bytes:
    async with connect(
        server.ws + "/",
        origin=Origin(origin) if origin is not None else None,
        compression=None,
        open_timeout=WAIT,
    ) as ws:
        return await asyncio.wait_for(ws.recv(), WAIT)


async def test_a_handshake_from_another_origin_gets_403_origin_not_allowed(
    serving: Serving,
) -> None:
    async with serving(greeter()) as server, httpx.AsyncClient(timeout=WAIT) as http:
        response = await http.get(server.http + "/", headers=handshake_headers("http://evil.org"))

    assert response.status_code == 403
    assert response.text == "Origin not allowed"
    assert response.headers["content-type"].startswith("text/plain")


async def test_the_websockets_client_sees_the_403_and_its_body(serving: Serving) -> None:
    async with serving(greeter()) as server:
        with pytest.raises(InvalidStatus) as refused:
            await greeting(server, "http://evil.org")

    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"Origin not allowed"


async def test_the_pages_own_origin_is_admitted(serving: Serving) -> None:
    async with serving(greeter()) as server:
        assert await greeting(server, server.origin) == "welcome"


async def test_a_client_sending_no_origin_is_admitted_by_default(serving: Serving) -> None:
    """Scripts, servers and test clients send no Origin; browsers always do."""
    async with serving(greeter()) as server:
        assert await greeting(server, None) == "welcome"


async def test_a_client_sending_no_origin_is_refused_when_origin_is_required(
    serving: Serving,
) -> None:
    options = Options(require_origin=True)

    async with serving(greeter(options), options) as server:
        with pytest.raises(InvalidStatus) as refused:
            await greeting(server, None)
        assert await greeting(server, server.origin) == "welcome"

    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"Origin not allowed"


async def test_a_missing_origin_is_admitted_even_under_a_narrow_pattern(serving: Serving) -> None:
    options = Options(allowed_origin=r"https://app\.example\.com")

    async with serving(greeter(options), options) as server:
        assert await greeting(server, None) == "welcome"


async def test_a_custom_pattern_admits_the_origins_it_names_and_no_others(serving: Serving) -> None:
    options = Options(allowed_origin=r"https://app\.example\.com")

    async with serving(greeter(options), options) as server:
        assert await greeting(server, "https://app.example.com") == "welcome"
        with pytest.raises(InvalidStatus) as refused:
            await greeting(server, server.origin)

    assert refused.value.response.status_code == 403


async def test_without_the_http_response_extension_a_refusal_is_a_close_before_accept() -> None:
    """An ASGI server that cannot send an HTTP response gets ``websocket.close`` instead."""
    app = wschannels.asgi(greeter())
    scope = {
        "type": "websocket",
        "path": "/",
        "headers": [(b"host", b"example.com"), (b"origin", b"http://evil.org")],
        "extensions": {},
        "client": ("127.0.0.1", 5000),
    }
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events.put_nowait({"type": "websocket.connect"})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, events.get, send), WAIT)

    assert sent == [{"type": "websocket.close", "code": 1008}]
