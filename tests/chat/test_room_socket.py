"""The room socket's protocol, spoken by real ``websockets`` clients to a real chat server."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wschannels import CloseCode
from wschannels.chat.app import MAX_NAME_LENGTH, MAX_TEXT_LENGTH

from .members import TIMEOUT, Member
from .servers import ChatServer

COUNTS = ("connections", "connections_total", "rooms", "messages_in", "messages_out", "errors")


def test_a_member_is_told_it_joined_and_the_others_are_told_too(chat_server: ChatServer) -> None:
    with Member(chat_server.url, "joins", "alice") as alice:
        assert alice.next() == {"typ": "join", "from": "alice", "text": "joined"}
        with Member(chat_server.url, "joins", "bob") as bob:
            assert bob.next() == {"typ": "join", "from": "bob", "text": "joined"}
            assert alice.next_of("join") == {"typ": "join", "from": "bob", "text": "joined"}


def test_a_message_reaches_everyone_in_the_room_and_comes_back_to_its_sender(
    chat_server: ChatServer,
) -> None:
    with (
        Member(chat_server.url, "talk", "alice") as alice,
        Member(chat_server.url, "talk", "bob") as bob,
        Member(chat_server.url, "elsewhere", "carol") as carol,
        Member(chat_server.url, "elsewhere", "dave") as dave,
    ):
        alice.say("hello, bob")
        expected = {"typ": "message", "from": "alice", "text": "hello, bob"}
        mine, theirs = alice.next_of("message"), bob.next_of("message")
        assert mine == theirs
        assert {key: value for key, value in mine.items() if key != "pos"} == expected
        # Carol's next message is Dave's, from her own room: Alice's never came.
        dave.say("only for carol's room")
        assert carol.next_of("message")["text"] == "only for carol's room"


def test_the_sender_name_is_set_by_the_server_so_nobody_can_speak_as_someone_else(
    chat_server: ChatServer,
) -> None:
    with (
        Member(chat_server.url, "spoof", "alice") as alice,
        Member(chat_server.url, "spoof", "mallory") as mallory,
    ):
        mallory.say("I am alice", **{"from": "alice"})
        assert alice.next_of("message")["from"] == "mallory"


def test_leaving_tells_the_others_who_left(chat_server: ChatServer) -> None:
    with Member(chat_server.url, "leaving", "alice") as alice:
        assert alice.next()["from"] == "alice"
        bob = Member(chat_server.url, "leaving", "bob")
        assert alice.next_of("join")["from"] == "bob"
        bob.close()
        assert alice.next_of("leave") == {"typ": "leave", "from": "bob", "text": "left"}


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (f'{{"typ": "message", "text": "{"x" * (MAX_TEXT_LENGTH + 1)}"}}', "at most"),
        ('{"typ": "message", "text": "   "}', "empty"),
        ('{"typ": "message", "text": "bell \\u0007"}', "control characters"),
        ('{"typ": "shout", "text": "hi"}', "Unknown message type"),
        ("this is not JSON", "could not be read"),
        ('{"text": "no typ"}', "could not be read"),
        ('{"typ": "message", "text": 42}', "could not be read"),
    ],
    ids=[
        "too-long",
        "blank",
        "control-characters",
        "unknown-typ",
        "not-json",
        "no-typ",
        "not-a-str",
    ],
)
def test_bad_input_gets_an_error_reply_and_the_socket_stays_open(
    chat_server: ChatServer, frame: str, problem: str
) -> None:
    room = f"bad-input-{zlib.crc32(frame.encode())}"
    with (
        Member(chat_server.url, room, "alice") as alice,
        Member(chat_server.url, room, "bob") as bob,
    ):
        alice.send_raw(frame)
        error = alice.next_of("error")
        assert problem in error["text"]
        # Still open, still in the room: the next good message goes through,
        # and it is the first message Bob sees, so the bad one never reached him.
        alice.say("still here")
        assert alice.next_of("message")["text"] == "still here"
        assert bob.next_of("message")["text"] == "still here"


def test_a_too_long_name_gets_an_error_reply_and_the_socket_stays_open(
    chat_server: ChatServer,
) -> None:
    with Member(chat_server.url, "long-name", "alice") as alice:
        assert alice.next()["from"] == "alice"
        with Member(chat_server.url, "long-name", "n" * (MAX_NAME_LENGTH + 1)) as long_name:
            first = long_name.next()
            assert first["typ"] == "error"
            assert f"at most {MAX_NAME_LENGTH} characters" in first["text"]
            long_name.say("may I?")
            assert long_name.next()["typ"] == "error"
        # Alice was never told of a join, and nothing was said in her room.
        with Member(chat_server.url, "long-name", "bob"):
            assert alice.next_of("join") == {"typ": "join", "from": "bob", "text": "joined"}


def test_an_invalid_room_name_gets_an_error_reply(chat_server: ChatServer) -> None:
    with Member(chat_server.url, "no spaces allowed", "alice") as alice:
        error = alice.next()
        assert error["typ"] == "error"
        assert "room name" in error["text"]


def test_a_page_from_another_origin_cannot_open_the_socket(chat_server: ChatServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        Member(chat_server.url, "origin", "alice", origin="http://evil.example")
    assert refused.value.response.status_code == 403


def test_status_counts_connections_rooms_messages_and_errors(
    start_chat_server: Callable[..., ChatServer],
) -> None:
    server = start_chat_server()
    status = server.status()
    assert {key: status[key] for key in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert status["hub"] == "memory"
    assert status["members"] == {}
    with (
        Member(server.url, "counted", "alice") as alice,
        Member(server.url, "counted", "bob") as bob,
    ):
        for member in (alice, bob):
            while member.next_of("members")["members"] != ["alice", "bob"]:
                pass
        status = server.status()
        assert status["connections"] == 2
        assert status["rooms"] == 1
        assert status["members"] == {"counted": 2}
        before = status["messages_out"]

        alice.say("one")
        alice.say("two")
        alice.send_raw("not JSON")
        bob.next_of("message")
        bob.next_of("message")
        alice.next_of("error")

        def counted(status: dict[str, Any]) -> bool:
            return bool(status["messages_in"] == 2 and status["errors"] == 1)

        status = server.wait_for_status(counted)
        # Out: two lines to each of them, and one error reply to Alice.
        assert status["messages_out"] - before == 2 * 2 + 1
    status = server.wait_for_status(lambda status: status["connections"] == 0)
    assert status["rooms"] == 0
    assert status["connections_total"] == 2


def test_a_member_who_stops_reading_is_let_go_and_never_holds_up_the_room(
    start_chat_server: Callable[..., ChatServer],
) -> None:
    server = start_chat_server()
    with (
        Member(server.url, "busy", "carol", stalled=True) as carol,
        Member(server.url, "busy", "alice") as alice,
        Member(server.url, "busy", "bob") as bob,
    ):
        text = "x" * 480
        said = 0
        # Carol reads nothing: once her queue on the server is over the hub's
        # bound, she is disconnected, while Bob gets every line, in order.
        while not server.status()["hub_statistics"]["slow_consumers_disconnected"]:
            assert said < 100_000, "the stalled member was never let go"
            for number in range(said, said + 100):
                alice.say(f"{number} {text}")
            for number in range(said, said + 100):
                assert alice.next_of("message")["text"] == f"{number} {text}"
                assert bob.next_of("message")["text"] == f"{number} {text}"
            said += 100
        assert server.status()["members"] == {"busy": 2}

        with pytest.raises(ConnectionClosed) as closed:
            while True:
                carol.socket.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.TRY_AGAIN_LATER
