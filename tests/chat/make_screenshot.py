"""Make ``docs/chat.png``, the README's picture: ``python -m tests.chat.make_screenshot``.

It starts a real chat server, has three people talk in headless Chromium,
and saves what one of them sees.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from .room_page import CHROMIUM_ARGS, chromium_executable, join, messages, say
from .servers import ROOT, ChatServer, free_port

CONVERSATION = [
    ("Ada", "Morning! Who's around?"),
    ("Grace", "Here. I just tried the chat on my phone, it fits nicely."),
    ("Grace", "And it reconnects by itself after a server restart."),
    ("Linus", "Markup like <b>this</b> shows up as plain text, as it should."),
    ("Ada", "Great. Let's ship it."),
]


def main(output: Path = ROOT / "docs" / "chat.png") -> None:
    with tempfile.TemporaryDirectory() as logs:
        server = ChatServer(Path(logs), free_port()).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium_executable(), args=CHROMIUM_ARGS
                )
                pages = {}
                for name in ("Ada", "Grace", "Linus"):
                    context = browser.new_context(
                        viewport={"width": 880, "height": 600},
                        device_scale_factor=2,
                        color_scheme="light",
                        locale="en-US",
                    )
                    pages[name] = page = context.new_page()
                    join(page, server.url, "lobby", name)
                for name, text in CONVERSATION:
                    say(pages[name], text)
                    for page in pages.values():
                        expect(messages(page, text)).to_have_count(1)
                ada = pages["Ada"]
                ada.locator("#text").blur()
                output.parent.mkdir(parents=True, exist_ok=True)
                ada.screenshot(path=output)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {output}")


if __name__ == "__main__":
    main(*(Path(argument) for argument in sys.argv[1:2]))
