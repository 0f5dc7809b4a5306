"""Several chat servers on one Redis serve one chat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from .members import Member
from .room_page import join, messages, notices, say
from .servers import ChatServer


def test_people_on_two_servers_sharing_redis_chat_in_one_room(
    redis_url: str, start_chat_server: Callable[..., ChatServer], new_page: Callable[..., Any]
) -> None:
    one = start_chat_server(redis_url=redis_url)
    two = start_chat_server(redis_url=redis_url)
    assert one.status()["hub"] == two.status()["hub"] == "redis"

    ada, grace = new_page(), new_page()
    join(ada, one.url, "shared", "Ada")
    join(grace, two.url, "shared", "Grace")
    expect(notices(ada, "Grace joined")).to_be_visible()

    say(ada, "Hello from server one")
    expect(messages(grace, "Hello from server one", mine=False)).to_have_count(1)
    say(grace, "Hello from server two")
    expect(messages(ada, "Hello from server two", mine=False)).to_have_count(1)
    # Each server counts its own people.
    assert one.status()["members"] == {"shared": 1}
    assert two.status()["members"] == {"shared": 1}

    grace.close()
    expect(notices(ada, "Grace left")).to_be_visible()


def test_the_redis_url_can_come_from_the_environment(
    redis_url: str, start_chat_server: Callable[..., ChatServer]
) -> None:
    from_environment = start_chat_server(env={"WSCHANNELS_REDIS_URL": redis_url})
    from_option = start_chat_server(redis_url=redis_url)
    assert from_environment.status()["hub"] == "redis"

    with Member(from_environment.url, "env", "ada") as ada:
        assert ada.next() == {"typ": "join", "from": "ada", "text": "joined"}
        with Member(from_option.url, "env", "grace") as grace:
            assert ada.next_of("join") == {"typ": "join", "from": "grace", "text": "joined"}
            grace.say("across processes")
            line = ada.next_of("message")
            assert line.pop("pos")
            assert line == {"typ": "message", "from": "grace", "text": "across processes"}
