"""Driving the chat's room page in a real browser, as a person would."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, expect

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RECONNECT_TIMEOUT = 30_000  # milliseconds: a restart plus a backoff of up to 10 s


def chromium_executable() -> str | None:
    """Debian's Chromium, which Playwright drives without ``playwright install``."""
    found = shutil.which("chromium")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found


def open_room(page: Any, server_url: str, room: str) -> None:
    page.goto(f"{server_url}/rooms/{room}")


def join(page: Any, server_url: str, room: str, name: str) -> None:
    """Open the room, give a name, and wait until the page is in the room and online."""
    open_room(page, server_url, room)
    page.fill("#name", name)
    page.click("#join-form button[type=submit]")
    expect(page.locator("#composer")).to_be_visible()
    expect(state(page)).to_have_text("online")


def say(page: Any, text: str) -> None:
    """Type a message and press Enter."""
    page.fill("#text", text)
    page.press("#text", "Enter")


def state(page: Any) -> Locator:
    """The connection state shown in the page's header."""
    locator: Locator = page.locator("#state")
    return locator


def messages(page: Any, text: str, *, mine: bool | None = None) -> Locator:
    """Chat lines in the conversation whose text is exactly ``text``."""
    kind = "" if mine is None else (".mine" if mine else ".theirs")
    locator: Locator = page.locator(f"#log li.msg{kind}").filter(
        has=page.get_by_text(text, exact=True)
    )
    return locator


def notices(page: Any, text: str) -> Locator:
    """Notices in the conversation (joins, leaves) reading exactly ``text``."""
    locator: Locator = page.locator("#log li.notice").filter(has_text=text)
    return locator


def errors(page: Any) -> Locator:
    """Error notices the server sent to this page."""
    locator: Locator = page.locator("#log li.notice.error")
    return locator
