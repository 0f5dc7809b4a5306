"""The chat's HTTP side: the command, the start page, the room page, its assets."""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from wschannels.chat.app import HERE

from .members import Member
from .servers import ChatServer, chat_command, free_port


def fetch(url: str) -> tuple[int, str, str]:
    """GET ``url`` (following redirects): status, final URL, body."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, url, error.read().decode()


def test_the_command_prints_the_address_to_open(chat_server: ChatServer) -> None:
    assert f"open http://127.0.0.1:{chat_server.port}" in chat_server.log()


def test_the_command_says_in_one_line_when_redis_cannot_be_reached() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    command = [*chat_command(), "--port", str(free_port()), "--redis", nowhere]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert finished.stderr.count("\n") == 1
    assert f"cannot connect to Redis at {nowhere}" in finished.stderr
    assert "Is Redis running" in finished.stderr


def test_the_start_page_offers_a_room_and_lists_the_rooms_in_use(chat_server: ChatServer) -> None:
    status, _, page = fetch(chat_server.url)
    assert status == 200
    assert 'action="/rooms"' in page
    with Member(chat_server.url, "garden", "ada") as ada:
        ada.next()
        _, _, page = fetch(chat_server.url)
        assert re.search(r'href="[^"]*/rooms/garden"', page)
        assert "1 online" in page


def test_picking_a_room_leads_to_its_page(chat_server: ChatServer) -> None:
    status, url, page = fetch(f"{chat_server.url}/rooms?name=kitchen")
    assert status == 200
    assert url == f"{chat_server.url}/rooms/kitchen"
    assert 'data-room="kitchen"' in page
    assert 'data-socket-path="/sockets/rooms/kitchen/"' in page


@pytest.mark.parametrize("path", ["/rooms?name=two+words", "/rooms/two%20words"])
def test_an_invalid_room_name_is_explained_on_the_start_page(
    chat_server: ChatServer, path: str
) -> None:
    status, _, page = fetch(chat_server.url + path)
    assert status == 400
    assert "A room name is 1 to 40 letters" in page
    assert 'value="two words"' in page  # what was typed stays in the box


def test_room_names_and_typed_text_are_escaped_in_pages(chat_server: ChatServer) -> None:
    status, _, page = fetch(f"{chat_server.url}/rooms?name=%3Cscript%3Ealert(1)%3C/script%3E")
    assert status == 400
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page


def test_the_page_script_and_styles_are_served(chat_server: ChatServer) -> None:
    status, _, script = fetch(f"{chat_server.url}/static/chat.js")
    assert status == 200
    assert "new WebSocket(" in script
    status, _, styles = fetch(f"{chat_server.url}/static/chat.css")
    assert status == 200
    assert "@media" in styles


def test_the_page_script_never_turns_text_into_html() -> None:
    script = Path(HERE, "static", "chat.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
