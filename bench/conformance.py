"""Autobahn|Testsuite against every server: wschannels' `raw()` echo beside the server's own echo.

    python -m bench.conformance               # cases 1-10, 12.1, 13.1 -> docs/conformance.md
    python -m bench.conformance --servers picows,uvicorn --no-compression --out /tmp/ab
    python -m bench.conformance --full        # every case, all of 12.x and 13.x

Autobahn's `fuzzingclient` is Python 2 only: it runs from a virtualenv made with pyenv's
Python 2.7.18 and `virtualenv<20.22`, cached in `.autobahn/` (gitignored; built on first use,
about a minute). Each server of `bench.servers.registry` runs in its own process, twice: once
with the wschannels echo, once with the same server's raw echo. The table groups Autobahn's
grades by case section and lists every case where wschannels grades worse than the raw echo.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import REPO, BenchError, Server, free_port, python_module, running
from bench.servers import registry

CACHE = REPO / ".autobahn"
WSTEST = CACHE / "py2" / "bin" / "wstest"
PYTHON2_VERSION = "2.7.18"

GRADES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# How bad a grade is, for "worse than the raw echo": INFORMATIONAL cases have no verdict.
RANK = {"OK": 0, "INFORMATIONAL": 0, "NON-STRICT": 1, "UNIMPLEMENTED": 2, "FAILED": 3}
SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 handling",
    "7": "Close handling",
    "9": "Limits/performance",
    "10": "Miscellaneous",
    "12": "Compression, payloads",
    "13": "Compression, parameters",
}
BASE_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
SHORT_COMPRESSION = ["12.1.*", "13.1.*"]
FULL_COMPRESSION = ["12.*", "13.*"]


@dataclass(frozen=True)
class Agent:
    """One server process Autobahn tests: a server of the registry, wschannels or raw."""

    server: str
    raw: bool

    @property
    def name(self) -> str:
        return f"{self.server}-{'raw' if self.raw else 'wschannels'}"


def python2() -> Path:
    """pyenv's Python 2.7.18 (or $AUTOBAHN_PYTHON2); scripts/system-deps.sh installs it."""
    given = os.environ.get("AUTOBAHN_PYTHON2")
    if given:
        return Path(given)
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [root / "versions" / PYTHON2_VERSION / "bin" / "python"]
    pyenv = shutil.which("pyenv") or str(root / "bin" / "pyenv")
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        prefix = subprocess.run([pyenv, "prefix", PYTHON2_VERSION], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        candidates.insert(0, Path(prefix) / "bin" / "python")
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise BenchError(
        f"Autobahn|Testsuite needs Python {PYTHON2_VERSION} from pyenv "
        f"(looked for {', '.join(map(str, candidates))}); run `bash scripts/system-deps.sh` "
        "or set AUTOBAHN_PYTHON2"
    )


def ensure_wstest() -> Path:
    """`wstest` from the cached Python 2 virtualenv, built first if missing (~1 min)."""
    if WSTEST.exists():
        return WSTEST
    interpreter = python2()
    tool = CACHE / "tool"
    print(f"conformance: building the Autobahn virtualenv in {CACHE} (once, ~1 min)", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(tool)],
        [str(tool / "bin" / "pip"), "install", "-q", "virtualenv<20.22"],
        [str(tool / "bin" / "virtualenv"), "-q", "-p", str(interpreter), str(CACHE / "py2")],
        [str(CACHE / "py2" / "bin" / "pip"), "install", "-q", "autobahntestsuite"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(step)} failed:\n{done.stderr[-3000:]}")
    return WSTEST


def agents_for(servers: Sequence[str]) -> list[Agent]:
    return [Agent(name, raw) for name in servers for raw in (False, True)]


@contextlib.contextmanager
def started(agents: Sequence[Agent]) -> Iterator[dict[Agent, int]]:
    """Every agent's server in its own process on a free port, stopped afterwards."""
    processes: list[Server] = []
    ports: dict[Agent, int] = {}
    for agent in agents:
        port = free_port()
        argv = python_module("bench.servers.registry", agent.server, "--port", str(port))
        if agent.raw:
            argv.append("--raw")
        processes.append(Server(agent.name, argv, port))
        ports[agent] = port
    with running(processes):
        yield ports


def run_wstest(
    agent: Agent, port: int, cases: Sequence[str], outdir: Path, timeout: float
) -> dict[str, Any]:
    """`wstest -m fuzzingclient` against one agent; Autobahn's results: case → result."""
    wstest = ensure_wstest()
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent.name, "url": f"ws://127.0.0.1:{port}/"}],
        "cases": list(cases),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_file = outdir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run(
        [str(wstest), "-m", "fuzzingclient", "-s", str(spec_file)],
        cwd=outdir, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    index = outdir / "index.json"
    if done.returncode != 0 or not index.exists():
        raise BenchError(f"wstest on {agent.name} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")  # fmt: skip
    results: dict[str, Any] = json.loads(index.read_text())[agent.name]
    return results


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def grades(index: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """agent → case → Autobahn's grade, from agent → Autobahn's results."""
    return {
        agent: {case: result["behavior"] for case, result in cases.items()}
        for agent, cases in index.items()
    }


def worse_than_raw(graded: dict[str, dict[str, str]], server: str) -> list[tuple[str, str, str]]:
    """(case, wschannels grade, raw grade) wherever wschannels on ``server`` grades worse."""
    ours, theirs = graded[f"{server}-wschannels"], graded[f"{server}-raw"]
    out = []
    for case in sorted(ours, key=case_key):
        raw_grade = theirs.get(case)
        if raw_grade is not None and RANK[ours[case]] > RANK[raw_grade]:
            out.append((case, ours[case], raw_grade))
    return out


def with_grade(cases: dict[str, str], grade: str) -> list[str]:
    return sorted((case for case, g in cases.items() if g == grade), key=case_key)


def compact(cases: Sequence[str]) -> str:
    return ", ".join(cases) if cases else "none"


def report(
    graded: dict[str, dict[str, str]], servers: Sequence[str], command: str, seconds: float,
    skipped: dict[str, str],
) -> str:  # fmt: skip
    """docs/conformance.md: the totals, the table per section, the differences to raw."""
    lines = [
        "# Conformance: Autobahn|Testsuite",
        "",
        f"Produced by `{command}` ({seconds:.0f} s on 2 shared cores; "
        f"{time.strftime('%Y-%m-%d')}). Autobahn|Testsuite `fuzzingclient` (Python 2.7.18, "
        "`autobahntestsuite` from PyPI) against the `raw()` echo of "
        "`bench/servers/registry.py` on each server, and beside it the same server's own "
        "hand-written echo. Cases 1-10 (Autobahn has no section 8 or 11) everywhere; 12.x/13.x "
        "(permessage-deflate) only where the server negotiates it.",
        "",
        "| server | echo | cases | " + " | ".join(GRADES) + " |",
        "|---|---|---|" + "---|" * len(GRADES),
    ]
    for server in servers:
        kind = registry.by_name(server)
        for raw in (False, True):
            agent = f"{server}-{'raw' if raw else 'wschannels'}"
            counts = Counter(graded[agent].values())
            label = kind.raw_label if raw else kind.label
            lines.append(f"| {server} | {label} | {len(graded[agent])} | "
                         + " | ".join(str(counts.get(g, 0)) for g in GRADES) + " |")  # fmt: skip
    for name, why in skipped.items():
        lines.append(f"| {name} | not run: {why} | | " + " | ".join("" for _ in GRADES) + " |")
    lines += ["", "## Per section", ""]
    lines += ["Each cell: OK / NON-STRICT / INFORMATIONAL / UNIMPLEMENTED / FAILED.", ""]
    agents = [f"{s}-{v}" for s in servers for v in ("wschannels", "raw")]
    lines.append("| section | " + " | ".join(agents) + " |")
    lines.append("|---|" + "---|" * len(agents))
    present = sorted({c.split(".")[0] for a in agents for c in graded[a]}, key=int)
    for section in present:
        cells = []
        for agent in agents:
            counts = Counter(g for c, g in graded[agent].items() if c.split(".")[0] == section)
            cells.append("/".join(str(counts.get(g, 0)) for g in GRADES) if counts else "-")
        lines.append(f"| {section} {SECTIONS.get(section, '')} | " + " | ".join(cells) + " |")
    lines += ["", "## Cases that are not OK", ""]
    for agent in agents:
        parts = [
            f"{grade} {compact(with_grade(graded[agent], grade))}"
            for grade in ("FAILED", "UNIMPLEMENTED", "NON-STRICT")
        ]
        lines.append(f"- **{agent}**: " + "; ".join(parts))
    lines += ["", "## Where wschannels grades worse than the same server's raw echo", ""]
    for server in servers:
        worse = worse_than_raw(graded, server)
        text = ", ".join(f"{case} ({ours}; raw {raw})" for case, ours, raw in worse)
        lines.append(f"- **{server}**: {text or 'nowhere'}")
    lines += ["", "Grades are Autobahn's `behavior`; \"worse\" ranks OK = INFORMATIONAL < "
              "NON-STRICT < UNIMPLEMENTED < FAILED. Autobahn's own HTML reports land in the "
              "`--reports` folder (default `test-artifacts/autobahn/`).", ""]  # fmt: skip
    return "\n".join(lines)


def run(
    servers: Sequence[str], *, compression: bool = True, full: bool = False,
    reports: Path | None = None, timeout: float = 3600,
) -> dict[str, dict[str, str]]:  # fmt: skip
    """Run Autobahn over ``servers`` (names in the registry); agent → case → grade.

    One `wstest` per agent, all at once: Autobahn spends most of a run waiting on timers
    (close handshakes, slow-frame cases), so running them side by side takes the time of one.
    """
    extra = FULL_COMPRESSION if full else SHORT_COMPRESSION
    outdir = reports or REPO / "test-artifacts" / "autobahn"
    ensure_wstest()
    agents = agents_for(servers)

    def cases_for(agent: Agent) -> list[str]:
        deflate = compression and registry.by_name(agent.server).compression
        return [*BASE_CASES, *(extra if deflate else [])]

    with started(agents) as ports:
        with ThreadPoolExecutor(len(agents)) as pool:
            futures = {
                agent: pool.submit(run_wstest, agent, ports[agent], cases_for(agent),
                                   outdir / agent.name, timeout)
                for agent in agents
            }
            graded = grades({agent.name: f.result() for agent, f in futures.items()})
        confirm_differences(graded, servers, ports, outdir, timeout)
    return graded


def confirm_differences(
    graded: dict[str, dict[str, str]], servers: Sequence[str], ports: dict[Agent, int],
    outdir: Path, timeout: float,
) -> None:  # fmt: skip
    """Run every case where wschannels grades worse than the raw echo again, both agents one
    after the other, and keep the second grades.

    Some grades depend on timing (a fail-fast check is OK or NON-STRICT depending on how soon
    the close arrives): on a busy machine, running four agents at once can tip one. A case
    still worse when run alone is a real difference.
    """
    for server in servers:
        cases = [case for case, _, _ in worse_than_raw(graded, server)]
        if not cases:
            continue
        print(f"conformance: {server}: running {', '.join(cases)} again, one agent at a time",
              flush=True)  # fmt: skip
        for raw in (False, True):
            agent = Agent(server, raw)
            again = run_wstest(agent, ports[agent], cases, outdir / f"{agent.name}-again",
                               timeout)  # fmt: skip
            graded[agent.name].update(grades({agent.name: again})[agent.name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.conformance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--servers", default=None, help="registry names (default: all available)")
    parser.add_argument("--no-compression", action="store_true", help="skip 12.x and 13.x")
    parser.add_argument("--full", action="store_true", help="all of 12.x/13.x, not 12.1/13.1")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "conformance.md")
    parser.add_argument("--reports", type=Path, default=None, help="Autobahn's HTML reports")
    args = parser.parse_args(argv)
    skipped = registry.unavailable()
    for why in skipped.values():
        print(f"conformance: skipping {why}", flush=True)
    names = [k.name for k in registry.available()]
    if args.servers:
        wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
        names = [n for n in wanted if n in names]
        skipped = {n: w for n, w in skipped.items() if n in wanted}
    started_at = time.monotonic()
    graded = run(names, compression=not args.no_compression, full=args.full,
                 reports=args.reports)  # fmt: skip
    command = "python -m bench.conformance " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(graded, names, command.strip(), time.monotonic() - started_at, skipped)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
