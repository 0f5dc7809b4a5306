"""Every python block of every docs page runs here, in page order, one namespace per page.

A block's top-level code runs as a module named after the page (so an
``if __name__ == "__main__":`` block, which would start a server for good, is
skipped), and each ``async def test_*`` a block defines is then run: that is
how the pages show, and the suite checks, what their code does.

A block may carry a marker on the line before it:

* ``<!-- docs-test: compile-only REASON -->``: it needs what the suite cannot
  give (REASON says what); it is compiled, not run.
* ``<!-- docs-test: later REASON -->``: it shows an API that does not exist
  yet; it is compiled, and the page's test is skipped with REASON.

A page that uses Redis reads ``REDIS_URL`` from the environment; the test sets
it to a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer
from wschannels.testing.pytest_plugin import Connector

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<mark>compile-only|later) (?P<reason>.*?) -->\n)?"
    r"```python[^\n]*\n(?P<code>.*?)^```",
    flags=re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    mark: str | None
    reason: str | None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    def compiled(self) -> types.CodeType:
        """The block's code, with tracebacks pointing at the page's own line numbers."""
        return compile("\n" * (self.line - 1) + self.code, f"docs/{self.page}", "exec")


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        name = page.relative_to(DOCS).as_posix()
        found.append(Block(name, line, match["code"], match["mark"], match["reason"]))
    return found


PAGES = sorted(page for page in DOCS.rglob("*.md") if blocks(page))


def test_the_docs_have_python_blocks_to_run() -> None:
    assert len(PAGES) >= 10, [page.name for page in PAGES]


def test_every_marker_sits_on_a_python_block() -> None:
    for page in DOCS.rglob("*.md"):
        text = page.read_text()
        markers = text.count("<!-- docs-test:")
        assert markers == sum(block.mark is not None for block in blocks(page)), page


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("docs-redis")).start()
    yield server.url
    server.kill()


def run_page(page: Path) -> None:
    """Run the page's blocks in order, and the tests they define."""
    slug = re.sub(r"\W", "_", page.relative_to(DOCS).with_suffix("").as_posix())
    module = types.ModuleType(f"docs_{slug}")
    for block in blocks(page):
        code = block.compiled()
        if block.mark is not None:
            continue
        before = set(module.__dict__)
        exec(code, module.__dict__)
        for name, value in list(module.__dict__.items()):
            if name in before or not name.startswith("test_"):
                continue
            if callable(value):
                call_test(value)


def call_test(test: Any) -> None:
    """Call a test a page defines, with the one fixture the docs use, ``ws_connect``."""
    connector = Connector()
    wanted = inspect.signature(test).parameters
    arguments = {"ws_connect": connector} if "ws_connect" in wanted else {}
    try:
        if inspect.iscoroutinefunction(test):
            asyncio.run(asyncio.wait_for(test(**arguments), 60))
        else:
            test(**arguments)
    finally:
        connector._drop_all()


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_the_page_runs(
    page: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain (not async) test: the page may call asyncio.run, as a script does."""
    if "REDIS_URL" in page.read_text():
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url"))
    run_page(page)


LATER = [block for page in PAGES for block in blocks(page) if block.mark == "later"]


def test_no_page_shows_an_api_that_does_not_exist_yet() -> None:
    """A ``later`` block is a promise: once the API lands, the block must run like the others."""
    for block in LATER:
        block.compiled()
    assert not LATER, f"blocks still marked later: {[block.where for block in LATER]}"
