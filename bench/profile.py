"""`python -m bench --scenarios profile`: where an echo server's time goes under load.

Each echo server runs under `py-spy record` (sampling from outside the process, so the server
runs unmodified) while the load generator drives it with N=1 W=64 and N=10 W=64 text echo.
For each server this writes the collapsed stacks (`<server>.txt`, loadable in speedscope) and
a summary (`summary.md`): time by component (package), and the top functions by own and by
inclusive samples.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.harness import LOAD_CORE, BenchError, pinned, run_load, running
from bench.suite import BASELINE, EchoServer, Plan

SECONDS = 6
LOADS = [(1, 64), (10, 64)]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy is not installed (pip install py-spy)")
    return found


def run(plan: Plan, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # Each wschannels server beside the raw echo it is paired with: the difference is the
    # binding's cost on that server.
    paired = {s.raw for s in plan.echo if s.wschannels and s.raw}
    servers = [s for s in plan.echo if s.name == BASELINE or s.wschannels or s.name in paired]
    sections = [
        "# Echo server profiles",
        "",
        f"py-spy record (sampling at 250 Hz, {SECONDS} s per load) of each server while the "
        "picows load generator runs "
        + ", ".join(f"N={n} W={w}" for n, w in LOADS)
        + " text echo, one after the other. Percentages are of the server's samples "
        "(idle samples excluded).",
        "",
    ]
    profiles = {spec.name: profile_server(spec, folder / f"{spec.name}.txt") for spec in servers}
    sections += comparison(profiles)
    for spec in servers:
        sections += summarise(spec, *profiles[spec.name])
    summary = folder / "summary.md"
    summary.write_text("\n".join(sections) + "\n")
    return folder


def comparison(profiles: dict[str, tuple[Counter[str], float]]) -> list[str]:
    """Server CPU per message split by component, one column per server."""
    split: dict[str, Counter[str]] = {}
    for name, (stacks, us_per_msg) in profiles.items():
        total = sum(stacks.values()) or 1
        shares: Counter[str] = Counter()
        for stack, count in stacks.items():
            frames = [f for f in stack.split(";") if f]
            if frames:
                shares[component(_frame(frames[-1])[1]).split("/")[0]] += count
        split[name] = Counter({c: n / total * us_per_msg for c, n in shares.items()})
    names = list(profiles)
    rows = sorted({c for s in split.values() for c in s}, key=lambda c: -max(
        s.get(c, 0.0) for s in split.values()))  # fmt: skip
    lines = ["## Server CPU per message by component (µs, own time)", "",
             "The server's CPU per message during the profiled loads, split by the package "
             "whose code was running (samples' own frames). \"asyncio\" includes the event "
             "loop's C code and system calls made from it.", "",
             "| component | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]  # fmt: skip
    for c in rows:
        lines.append(f"| {c} | " + " | ".join(f"{split[n].get(c, 0.0):.1f}" for n in names) + " |")
    lines.append("| **total** | " + " | ".join(f"**{profiles[n][1]:.1f}**" for n in names) + " |")
    return [*lines, ""]


def profile_server(spec: EchoServer, out: Path) -> tuple[Counter[str], float]:
    """Collapsed stacks of `spec` under the echo loads, and its CPU µs per message meanwhile."""
    stacks: Counter[str] = Counter()
    cpu_us = messages = 0.0
    with running([spec.server()]) as (server,):
        for n, w in LOADS:
            raw = out.with_suffix(f".N{n}.raw")
            spy = subprocess.Popen(
                # --subprocesses: granian runs the app in a worker process.
                pinned(LOAD_CORE, [py_spy(), "record", "--pid", str(server.pid), "--subprocesses",
                                   "--duration", str(SECONDS), "--rate", "250",
                                   "--format", "raw", "--nonblocking", "--output", str(raw)]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            result = run_load(
                "bench.load.echo",
                ["--url", f"ws://127.0.0.1:{server.port}/", "--connections", str(n),
                 "--window", str(w), "--warmup", "0.2", "--duration", str(SECONDS + 0.5),
                 "--server-pid", str(server.pid)],
                timeout=60,
            )  # fmt: skip
            cpu_us += result["server_cpu_us_per_msg"] * result["messages"]
            messages += result["messages"]
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0 or not raw.exists():
                raise BenchError(f"py-spy failed on {spec.name}: {err.decode()[-1000:]}")
            for line in raw.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack:
                    stacks[stack] += int(count)
            raw.unlink()
    out.write_text("".join(f"{s} {c}\n" for s, c in stacks.most_common()))
    return stacks, cpu_us / messages if messages else math.nan


def component(path: str) -> str:
    """A frame's package: site-packages/<name>, wschannels, bench, or the standard library."""
    path = path.replace(os.sep, "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/src/wschannels/" in path:
        return "wschannels/" + path.split("/src/wschannels/", 1)[1]
    if "/bench/" in path:
        return "bench"
    if "/lib/python3" in path:
        return "stdlib/" + path.rsplit("/", 1)[-1]
    return path


def _frame(text: str) -> tuple[str, str]:
    m = _FRAME.match(text.strip())
    if not m:
        return text, ""
    return m["func"], m["file"]


def summarise(
    spec: EchoServer, stacks: Counter[str], us_per_msg: float, top: int = 25
) -> list[str]:
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_component: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        func, file = frames[-1]
        own[f"{func} ({component(file)})"] += count
        by_component[component(file).split("/")[0]] += count
        for name in {f"{fn} ({component(fl)})" for fn, fl in frames}:
            inclusive[name] += count
    lines = [f"## {spec.name}: {spec.label}", "",
             f"{total:,} samples; server CPU {us_per_msg:.1f} µs per message.", "",
             "| component (own time) | share |", "|---|---|"]  # fmt: skip
    lines += [f"| {c} | {n / total:.1%} |" for c, n in by_component.most_common(12)]
    lines += ["", "| function (own time) | share |", "|---|---|"]
    lines += [f"| `{f}` | {n / total:.1%} |" for f, n in own.most_common(top)]
    lines += ["", "| function (inclusive) | share |", "|---|---|"]
    lines += [f"| `{f}` | {n / total:.1%} |" for f, n in inclusive.most_common(top)]
    return [*lines, ""]
