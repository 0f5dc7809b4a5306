"""``pip install wschannels`` is the binding alone; every other part names the extra it needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("uvicorn", "websockets", "redis", "jinja2", "picows", "fastapi", "pydantic", "nats")


def run_python(code: str, *, without: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which the packages ``without`` cannot be imported."""
    block = "".join(f"sys.modules[{name!r}] = None\n" for name in without)
    program = "import sys\n" + block + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_the_core_dependencies_are_the_binding_alone() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    names = sorted(dependency.split(">")[0] for dependency in project["dependencies"])

    assert names == ["msgspec", "starlette"]
    for extra in ("uvicorn", "redis", "nats", "picows", "aiohttp", "fastapi", "chat", "testing"):
        assert extra in project["optional-dependencies"], extra


def test_the_uvicorn_floor_has_a_sansio_protocol_that_pings_and_holds_writes_back() -> None:
    """0.35 added websockets-sansio, 0.44 its pings, 0.53 its write flow control."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    assert "uvicorn[standard]>=0.53" in extras["uvicorn"]


def test_importing_wschannels_imports_no_optional_package() -> None:
    result = run_python(
        f"""
        import wschannels, wschannels.hub, wschannels.extras
        print(sorted(name for name in {OPTIONAL!r} if name in sys.modules))
        """
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_binding_and_the_memory_hub_work_with_no_optional_package() -> None:
    result = run_python(
        """
        import asyncio, wschannels

        @wschannels.messages()
        async def echo(receiver: wschannels.Receiver[str], sender: wschannels.Sender[str]) -> None:
            async for message in receiver:
                await sender.send(message)

        async def main() -> None:
            async with wschannels.Hub() as hub:
                print(type(wschannels.asgi(echo)).__name__, hub.local_count("room"))

        asyncio.run(main())
        """,
        without=OPTIONAL,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "function 0"


@pytest.mark.parametrize(
    ("call", "missing", "extra"),
    [
        ("wschannels.run(wschannels.asgi(echo))", "uvicorn", "uvicorn"),
        ("wschannels.uvicorn_config(echo)", "uvicorn", "uvicorn"),
        ("wschannels.Hub('redis://127.0.0.1:1/0')", "redis", "redis"),
        ("wschannels.serve_picows", "picows", "picows"),
    ],
)
def test_a_feature_whose_extra_is_missing_names_the_extra(
    call: str, missing: str, extra: str
) -> None:
    result = run_python(
        f"""
        import wschannels

        @wschannels.messages()
        async def echo(sender: wschannels.Sender[str]) -> None:
            pass

        try:
            {call}
        except wschannels.MissingExtra as error:
            print(error)
        """,
        without=(missing,),
    )

    assert result.returncode == 0, result.stderr
    assert f"pip install 'wschannels[{extra}]'" in result.stdout
    assert repr(missing) in result.stdout


def test_a_bad_hub_url_is_still_a_value_error_without_redis() -> None:
    result = run_python(
        """
        import wschannels
        try:
            wschannels.Hub("http://user:secret@host/")
        except ValueError as error:
            print(error)
        """,
        without=("redis",),
    )

    assert result.returncode == 0, result.stderr
    assert "unsupported hub URL" in result.stdout
    assert "secret" not in result.stdout


@pytest.mark.parametrize("missing", ["uvicorn", "jinja2", "redis"])
def test_the_chat_command_without_the_chat_extra_exits_with_one_clear_line(missing: str) -> None:
    result = run_python(
        "from wschannels.chat.__main__ import main; main(['--port', '1'])", without=(missing,)
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"wschannels-chat: wschannels-chat needs the {missing!r} package, which is not "
        "installed: pip install 'wschannels[chat]'"
    ]
