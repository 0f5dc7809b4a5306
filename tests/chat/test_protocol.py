"""The chat protocol's history, recovery and presence frames (a contract other tests rely on).

Every chat line carries ``pos``; ``?since=POS`` gets exactly the lines after it
before live ones; a fresh join first gets up to 50 recent lines; a
``{"typ": "members", "members": [...]}`` frame comes on join and on every
change; a name already in the room is refused with an error frame and a close
code in 4000-4999. On one server (in-memory hub), and across two servers over
Redis and over NATS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wschannels.chat.app import CLOSE_CANNOT_RECOVER, CLOSE_NAME_TAKEN
from wschannels.hub import Position

from .members import Member
from .servers import ChatServer

StartChatServer = Callable[..., ChatServer]


def test_every_line_carries_its_position_and_since_gets_exactly_the_lines_after_it(
    chat_server: ChatServer,
) -> None:
    with Member(chat_server.url, "since", "ada") as ada:
        for text in ("one", "two"):
            ada.say(text)
        seen = ada.lines(2)
        positions = [Position.parse(line["pos"]) for line in seen]
        assert positions[1].offset == positions[0].offset + 1
    with Member(chat_server.url, "since", "bob") as bob:
        for number in range(5):
            bob.say(f"while ada was away {number}")
        bob.lines(5)
        with Member(chat_server.url, "since", "ada", since=seen[-1]["pos"]) as back:
            bob.say("live")
            lines = back.lines(6)
            assert [line["text"] for line in lines] == [
                *(f"while ada was away {n}" for n in range(5)),
                "live",
            ]
            offsets = [Position.parse(line["pos"]).offset for line in lines]
            assert offsets == list(range(positions[1].offset + 1, positions[1].offset + 7))


def test_a_fresh_join_first_gets_the_last_50_lines(chat_server: ChatServer) -> None:
    with Member(chat_server.url, "recent", "ada") as ada:
        for number in range(60):
            ada.say(f"line {number}")
        ada.lines(60)
    with Member(chat_server.url, "recent", "bob") as bob:
        assert bob.next() == {"typ": "join", "from": "bob", "text": "joined"}
        assert [line["text"] for line in bob.lines(50)] == [f"line {n}" for n in range(10, 60)]


def test_a_members_frame_comes_on_join_and_whenever_the_room_changes(
    chat_server: ChatServer,
) -> None:
    with Member(chat_server.url, "who", "ada") as ada:
        assert ada.next_of("members") == {"typ": "members", "members": ["ada"]}
        with Member(chat_server.url, "who", "bob") as bob:
            assert bob.next_of("members") == {"typ": "members", "members": ["ada", "bob"]}
            assert ada.next_of("members")["members"] == ["ada", "bob"]
        assert ada.next_of("members")["members"] == ["ada"]


def test_a_name_already_in_the_room_is_refused_with_an_error_and_a_close_code(
    chat_server: ChatServer,
) -> None:
    with Member(chat_server.url, "taken", "Alice", page="one") as alice:
        alice.next_of("members")
        second = Member(chat_server.url, "taken", "Alice", page="two")
        error = second.next()
        assert error["typ"] == "error"
        assert "already in # taken as 'Alice'" in error["text"]
        code = second.close_code()
        assert code == CLOSE_NAME_TAKEN
        assert code is not None and 4000 <= code <= 4999
        # The room never saw the second Alice.
        alice.say("still just me")
        assert alice.next_of("message")["text"] == "still just me"
        assert chat_server.status()["members"] == {"taken": 1}


def test_a_position_that_cannot_be_recovered_gets_a_reset_frame_and_a_close_code(
    chat_server: ChatServer,
) -> None:
    with Member(chat_server.url, "gone", "ada", since="3.notthis1") as ada:
        assert ada.next() == {"typ": "join", "from": "ada", "text": "joined"}
        reset = ada.next()
        assert reset["typ"] == "reset"
        assert "could not be recovered" in reset["text"]
        assert ada.close_code() == CLOSE_CANNOT_RECOVER


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_across_two_servers_lines_presence_and_recovery_work(
    broker: str, request: pytest.FixtureRequest, start_chat_server: StartChatServer
) -> None:
    url = request.getfixturevalue(f"{broker}_url")
    settings: dict[str, Any] = {f"{broker}_url": url}
    one, two = start_chat_server(**settings), start_chat_server(**settings)
    room = f"across-{broker}"
    with Member(one.url, room, "ada") as ada, Member(two.url, room, "grace") as grace:
        while ada.next_of("members")["members"] != ["ada", "grace"]:
            pass
        ada.say("hello from one")
        line = grace.next_of("message")
        assert line["text"] == "hello from one"
        assert line == ada.next_of("message")  # the same position in both processes
        # The name is taken across servers too.
        with Member(two.url, room, "ada") as impostor:
            assert impostor.next()["typ"] == "error"
            assert impostor.close_code() == CLOSE_NAME_TAKEN
        ada.close()
        assert grace.next_of("leave")["from"] == "ada"
        for number in range(3):
            grace.say(f"missed {number}")
        grace.lines(3)
        with Member(two.url, room, "ada", since=line["pos"]) as back:
            assert [entry["text"] for entry in back.lines(3)] == [f"missed {n}" for n in range(3)]
            grace.say("live")
            assert back.next_of("message")["text"] == "live"
