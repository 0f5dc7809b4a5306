"""The chat as people use it: headless Chromium pages talking through a real chat server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from wschannels.chat.app import MAX_NAME_LENGTH, MAX_TEXT_LENGTH

from .room_page import (
    RECONNECT_TIMEOUT,
    errors,
    join,
    messages,
    notices,
    open_room,
    say,
    state,
)
from .servers import ChatServer

NewPage = Callable[..., Any]


def test_two_people_see_the_joins_talk_both_ways_and_see_a_leave(
    chat_server: ChatServer, new_page: NewPage, artifacts: Path
) -> None:
    ada, grace = new_page(), new_page()
    join(ada, chat_server.url, "meeting", "Ada")
    expect(notices(ada, "You joined # meeting")).to_be_visible()
    join(grace, chat_server.url, "meeting", "Grace")
    expect(notices(grace, "You joined # meeting")).to_be_visible()
    expect(notices(ada, "Grace joined")).to_be_visible()

    say(ada, "Hello Grace, are you there?")
    expect(messages(ada, "Hello Grace, are you there?", mine=True)).to_have_count(1)
    expect(messages(grace, "Hello Grace, are you there?", mine=False)).to_have_count(1)
    say(grace, "Hi Ada! Loud and clear.")
    expect(messages(ada, "Hi Ada! Loud and clear.", mine=False)).to_have_count(1)
    expect(messages(grace, "Hi Ada! Loud and clear.", mine=True)).to_have_count(1)
    ada.screenshot(path=artifacts / "chat-conversation.png")

    grace.click("#leave")
    expect(grace).to_have_url(f"{chat_server.url}/")
    expect(notices(ada, "Grace left")).to_be_visible()


def test_markup_in_messages_and_names_is_shown_as_text_and_never_runs(
    chat_server: ChatServer, new_page: NewPage
) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    ada, eve = new_page(), new_page()
    for page in (ada, eve):
        page.on("dialog", on_dialog)
    join(ada, chat_server.url, "markup", "Ada")
    evil_name = "<img src=x onerror=alert(3)>"
    join(eve, chat_server.url, "markup", evil_name)
    payloads = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        '<a href="javascript:alert(4)">click</a> &amp; <b>bold</b>',
    ]
    for payload in payloads:
        say(eve, payload)
    for payload in payloads:
        expect(messages(ada, payload, mine=False)).to_have_count(1)
    expect(notices(ada, f"{evil_name} joined")).to_be_visible()
    expect(ada.locator("#log .from").first).to_have_text(evil_name)

    # A last round trip, so a handler that markup could have installed has had its chance.
    say(ada, "done")
    expect(messages(eve, "done")).to_have_count(1)
    for page in (ada, eve):
        injected = "#log img, #log script, #log a, #log .text *, #log .from *, #log .who *"
        assert page.locator(injected).count() == 0
    assert dialogs == []


def test_a_too_long_name_shows_an_error_in_the_page_and_the_socket_stays_open(
    start_chat_server: Callable[..., ChatServer], new_page: NewPage
) -> None:
    server = start_chat_server()
    page = new_page()
    open_room(page, server.url, "names")
    page.eval_on_selector("#name", "input => input.removeAttribute('maxlength')")
    page.fill("#name", "N" * (MAX_NAME_LENGTH + 1))
    page.click("#join-form button[type=submit]")

    expect(page.locator("#join-problem")).to_contain_text(f"at most {MAX_NAME_LENGTH} characters")
    expect(state(page)).to_have_text("online")
    server.wait_for_status(
        lambda status: status["connections"] == 1 and status["errors"] == 1 and status["rooms"] == 0
    )

    page.fill("#name", "Nina")
    page.click("#join-form button[type=submit]")
    expect(notices(page, "You joined # names")).to_be_visible()
    server.wait_for_status(lambda status: status["members"] == {"names": 1})


def test_a_too_long_message_shows_an_error_in_the_page_and_the_socket_stays_open(
    start_chat_server: Callable[..., ChatServer], new_page: NewPage
) -> None:
    server = start_chat_server()
    page = new_page()
    join(page, server.url, "limits", "Ada")
    page.eval_on_selector("#text", "input => input.removeAttribute('maxlength')")
    say(page, "x" * (MAX_TEXT_LENGTH + 1))

    expect(errors(page)).to_contain_text(f"at most {MAX_TEXT_LENGTH} characters")
    expect(state(page)).to_have_text("online")
    say(page, "a short one")
    expect(messages(page, "a short one", mine=True)).to_have_count(1)
    status = server.wait_for_status(lambda status: status["messages_in"] == 2)
    assert status["errors"] == 1
    assert status["connections"] == 1
    assert status["connections_total"] == 1


def test_pages_reconnect_by_themselves_with_growing_delays_after_the_server_restarts(
    start_chat_server: Callable[..., ChatServer], new_page: NewPage
) -> None:
    server = start_chat_server()
    ada, grace = new_page(), new_page()
    join(ada, server.url, "restart", "Ada")
    join(grace, server.url, "restart", "Grace")
    say(ada, "before the restart")
    expect(messages(grace, "before the restart")).to_have_count(1)
    for page in (ada, grace):
        page.evaluate("window.beforeTheRestart = true")

    server.kill()
    for page in (ada, grace):
        # Backoff, not a tight loop: after a few refused attempts the wait is seconds long.
        expect(state(page)).to_have_text(re.compile(r"reconnecting in ([2-9]|10)s"))
    server.start()

    # The in-memory hub's history went with the process: the pages say so, reload,
    # and join again as the same people.
    for page in (ada, grace):
        page.wait_for_function("window.beforeTheRestart === undefined", timeout=RECONNECT_TIMEOUT)
        expect(notices(page, "You joined # restart")).to_be_visible(timeout=RECONNECT_TIMEOUT)
        expect(state(page)).to_have_text("online")
    say(grace, "after the restart")
    expect(messages(ada, "after the restart", mine=False)).to_have_count(1)
    say(ada, "and back again")
    expect(messages(grace, "and back again", mine=False)).to_have_count(1)


def test_a_page_that_lost_its_connection_shows_every_line_said_meanwhile_once(
    redis_url: str, start_chat_server: Callable[..., ChatServer], new_page: NewPage
) -> None:
    one = start_chat_server(redis_url=redis_url)
    two = start_chat_server(redis_url=redis_url)
    ada, grace = new_page(), new_page()
    join(ada, one.url, "blip", "Ada")
    join(grace, two.url, "blip", "Grace")
    expect(ada.locator("#members li")).to_have_text(["Ada", "Grace"])
    say(grace, "before the blip")
    expect(messages(ada, "before the blip", mine=False)).to_have_count(1)
    ada.evaluate("window.sameDocument = true")

    one.kill()  # Ada's server goes away; Grace's stays, and the room goes on without her
    expect(state(ada)).to_have_text(re.compile(r"reconnecting in \d+s"))
    expect(grace.locator("#members li")).to_have_text(["Grace"], timeout=RECONNECT_TIMEOUT)
    meanwhile = [f"said while Ada was away {n}" for n in range(3)]
    for text in meanwhile:
        say(grace, text)
        expect(messages(grace, text, mine=True)).to_have_count(1)
    one.start()

    expect(notices(ada, "You are back")).to_be_visible(timeout=RECONNECT_TIMEOUT)
    for text in ["before the blip", *meanwhile]:
        expect(messages(ada, text, mine=False)).to_have_count(1)
    texts = ada.locator("#log li.msg .text").all_text_contents()
    assert texts == ["before the blip", *meanwhile]  # all of them, in order, once
    assert ada.evaluate("window.sameDocument") is True  # recovered, not reloaded
    expect(ada.locator("#members li")).to_have_text(["Ada", "Grace"])
    say(grace, "after the blip")
    expect(messages(ada, "after the blip", mine=False)).to_have_count(1)


def test_the_room_fits_a_phone_screen(
    chat_server: ChatServer, new_page: NewPage, artifacts: Path
) -> None:
    width, height = 390, 844
    phone = new_page(width, height, is_mobile=True, has_touch=True, device_scale_factor=2)
    friend = new_page()
    join(phone, chat_server.url, "phone", "Ada")
    join(friend, chat_server.url, "phone", "Grace")
    say(friend, "A long word does not push the page sideways: " + "w" * 120)
    say(phone, "Short and sweet.")
    expect(messages(phone, "Short and sweet.", mine=True)).to_have_count(1)
    expect(phone.locator("#log li.msg.theirs")).to_have_count(1)

    assert phone.evaluate("document.documentElement.scrollWidth") <= width
    for selector in ("#text", "#send", "#leave", "#state"):
        box = phone.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, selector
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, selector
    phone.screenshot(path=artifacts / "chat-phone.png")
