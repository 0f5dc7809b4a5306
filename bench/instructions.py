"""`python -m bench.instructions`: a server's CPU instructions per echoed message.

valgrind's callgrind counts instructions, not seconds, so the figure is the same on a busy
machine and servers compare exactly. Each server runs under callgrind while one client
(the `websockets` sync client, in this process) sends `WINDOW` messages at a time and reads
the echoes back; a run of `SMALL` messages is subtracted from a run of `LARGE`, so start-up,
imports and shutdown cancel out. The servers: wschannels on picows as installed (compiled by
mypyc, where the install could), the same with `WSCHANNELS_PURE=1`, and the raw picows echo
it is paired with in `make bench`. Writes docs/benchmarks/instructions.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from websockets.sync.client import connect

from bench.harness import REPO, BenchError, free_port, python_env, wait_for_port
from bench.load.echo import JSON_PAYLOAD

SMALL, LARGE = 1_024, 9_216
WINDOW = 64
OUT = REPO / "docs" / "benchmarks" / "instructions.md"

# name -> (module and arguments, environment, what it is)
SERVERS: dict[str, tuple[list[str], dict[str, str], str]] = {
    "wschannels-picows": (
        ["bench.servers.wschannels_echo", "--form", "picows"], {}, "wschannels on picows"
    ),
    "wschannels-picows-pure": (
        ["bench.servers.wschannels_echo", "--form", "picows"],
        {"WSCHANNELS_PURE": "1"},
        "the same, `WSCHANNELS_PURE=1`",
    ),
    "picows": (["bench.servers.picows_echo"], {}, "raw picows echo"),
}
# The frames of `make bench`'s echo tests (bench/load/echo.py).
TESTS = {
    "text": ("/", "x" * 32),
    "json": ("/json", json.dumps(JSON_PAYLOAD, separators=(",", ":"))),
}


def count(server: str, path: str, frame: str, messages: int) -> int:
    """Instructions of `server` under callgrind while it echoes `messages` frames on `path`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchError("valgrind is not installed (apt-get install valgrind)")
    module, extra_env, _ = SERVERS[server]
    port = free_port()
    env = {k: v for k, v in python_env().items() if k != "WSCHANNELS_PURE"}
    env |= extra_env | {"PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        proc = subprocess.Popen(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-m", *module, "--port", str(port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, proc, timeout=180)
            with connect(f"ws://127.0.0.1:{port}{path}", compression=None) as ws:
                for _ in range(messages // WINDOW):
                    for _ in range(WINDOW):
                        ws.send(frame)
                    for _ in range(WINDOW):
                        ws.recv(timeout=60)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        found = re.search(r"^summary:\s*(\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise BenchError(f"callgrind wrote no summary for {server}")
        print(f"{server} {path} {messages} messages: {int(found.group(1)):,} instructions")
        return int(found.group(1))


def per_message(server: str, test: str) -> float:
    path, frame = TESTS[test]
    small, large = count(server, path, frame, SMALL), count(server, path, frame, LARGE)
    return (large - small) / (LARGE - SMALL)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if _compiled() != "True":
        raise SystemExit("wschannels is not compiled here: reinstall it (README, Installation)")
    results = {(s, t): per_message(s, t) for s in SERVERS for t in TESTS}
    for (server, test), value in results.items():
        print(f"{server} {test}: {value:,.0f} instructions/msg")
    rows = []
    for test in TESTS:
        built, pure = results["wschannels-picows", test], results["wschannels-picows-pure", test]
        raw = results["picows", test]
        rows.append(
            f"| {test} | {built:,.0f} | {pure:,.0f} | {raw:,.0f} | {built / pure:.2f} | "
            f"{raw / built:.2f} | {raw / pure:.2f} |"
        )
    OUT.write_text(
        "\n".join(
            [
                "# Server instructions per message: compiled, pure Python, raw",
                "",
                "Written by `python -m bench.instructions` (valgrind's callgrind, one client, "
                f"{WINDOW} in flight, counted over {LARGE - SMALL:,} echoes; Python "
                f"{sys.version.split()[0]}, commit `{_commit()}`). Columns: instructions per "
                "message of wschannels on picows as installed (compiled by mypyc), the same "
                "with `WSCHANNELS_PURE=1`, the raw picows echo; then the ratios.",
                "",
                "| echo | compiled | pure | raw picows | compiled / pure | raw / compiled "
                "| raw / pure |",
                "|---|---|---|---|---|---|---|",
                *rows,
                "",
            ]
        )
    )
    print(f"wrote {OUT.relative_to(REPO)}")


def _compiled() -> str:
    env = {k: v for k, v in python_env().items() if k != "WSCHANNELS_PURE"}
    argv = [sys.executable, "-c", "import wschannels; print(wschannels.compiled)"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False).stdout.strip()


def _commit() -> str:
    argv = ["git", "-C", str(REPO), "describe", "--always", "--dirty"]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
