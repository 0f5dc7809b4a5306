"""`python -m bench`: run the benchmark suite and write docs/benchmarks/.

    python -m bench                      # the whole suite (~25 min on 2 cores)
    python -m bench --quick              # a ~3-minute smoke run of every scenario
    python -m bench --scenarios echo --servers starlette-sansio,wschannels
    python -m bench --scenarios profile  # py-spy profiles of the echo servers under load
    python -m bench --baseline 'go=./echo-server -port {port}'   # an external server beside ours
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bench import report, suite
from bench.harness import REPO, raise_open_files_limit

SCENARIOS = ["echo", "fanout", "idle", "churn"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="short smoke run of every scenario")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join([*SCENARIOS, 'profile'])} (default: all "
        "but profile)",
    )
    p.add_argument("--servers", default=None, help="only these servers/stacks (comma-separated)")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=CMD",
        help="an external echo server measured beside ours (repeatable): CMD is run with "
        "`sh -c` and listens on 127.0.0.1:{port} (also in $PORT), text echo at /, JSON echo "
        "at /json; see bench/README.md",
    )
    p.add_argument(
        "--tests", default=None, help="only echo tests whose label contains one of these (comma)"
    )
    p.add_argument("--reps", type=int, default=None, help="echo repetitions (default 3, quick 1)")
    p.add_argument("--duration", type=float, default=None, help="seconds measured per echo run")
    p.add_argument("--out", type=Path, default=suite.out_dir_default(), help="output folder")
    p.add_argument(
        "--report-only", action="store_true", help="redraw the report from OUT/results.json"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report_only:
        saved = json.loads((args.out / "results.json").read_text())
        echo_labels = {s.name: s.label for s in suite.echo_servers()}
        echo_labels |= {k: v["label"] for k, v in saved.get("servers", {}).items()}
        print(f"results: {report.write(saved, args.out, echo_labels)}")
        if args.out == suite.out_dir_default():
            write_headlines(saved)
        return 0
    try:
        external = [suite.external_server(spec) for spec in args.baseline]
    except ValueError as e:
        print(e)
        return 2
    clash = {s.name for s in external} & {s.name for s in suite.echo_servers()}
    if clash or len({s.name for s in external}) < len(external):
        print(f"--baseline names must be new and distinct: {sorted(clash) or args.baseline}")
        return 2
    raise_open_files_limit()
    # SIGTERM unwinds like Ctrl-C, so the servers (each in its own session) are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = suite.Settings.quick_run() if args.quick else suite.Settings()
    if args.reps is not None:
        settings = dataclasses.replace(settings, reps=args.reps)
    if args.duration is not None:
        settings = dataclasses.replace(settings, duration=args.duration)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - {*SCENARIOS, "profile"}
    if unknown:
        print(f"unknown scenario(s) {sorted(unknown)}; choose from {[*SCENARIOS, 'profile']}")
        return 2
    only = {s.strip() for s in args.servers.split(",")} if args.servers else None
    if only is not None:
        only.add(suite.BASELINE)  # every echo, idle and churn ratio needs it
    plan = suite.make_plan(settings, scenarios, only, external)
    if args.tests:
        wanted = [t.strip() for t in args.tests.split(",")]
        plan.tests = [t for t in plan.tests if any(w in t.label for w in wanted)]
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    if "profile" in scenarios:
        from bench import profile

        folder = profile.run(plan, args.out / "profiles")
        print(f"profiles written to {folder}")
        scenarios = [s for s in scenarios if s != "profile"]
        if not scenarios:
            return 0
        plan.scenarios = scenarios

    results: dict[str, Any] = {
        "notes": notes(plan),
        "servers": server_records(plan),
        "skipped": plan.skipped,
    }
    load_at_start = Path("/proc/loadavg").read_text().split()[:3]
    started = time.monotonic()
    with tqdm(total=plan.steps(), unit="run", dynamic_ncols=True) as bar:

        def step(label: str) -> None:
            bar.set_postfix_str(label[:60])
            bar.update(1)

        if "echo" in scenarios:
            results["echo"] = suite.run_echo(plan.echo, plan.tests, settings, step)
        if "fanout" in scenarios:
            results["fanout"] = suite.run_fanout(plan.fanout, settings, step)
        if "idle" in scenarios:
            results["idle"] = suite.run_idle(plan.idle, settings, step)
        if "churn" in scenarios:
            results["churn"] = suite.run_churn(plan.churn, settings, step)

    settings_record = dataclasses.asdict(settings) | {
        "scenarios": scenarios,
        "servers": sorted(only) if only else "all",
        "seconds": round(time.monotonic() - started),
        "uvicorn": "1 worker, loop=uvloop, http=httptools, ws_per_message_deflate=False, "
        "log_level=warning, backlog=4096",
        "generator": "picows + uvloop, one process on the load core",
        "load_average_at_start": load_at_start,
    }
    results["machine"] = report.machine_record(settings_record, command)
    labels = {s.name: s.label for s in plan.echo}
    readme = report.write(results, args.out, labels)
    print(f"results: {readme}")
    # Only a whole run on the default folder speaks for the project's README.
    whole = not (args.quick or only or args.tests or args.reps or args.duration)
    if whole and scenarios == SCENARIOS and args.out == suite.out_dir_default():
        write_headlines(results)
    for target, measured, verdict in report.targets(results):
        print(f"  {verdict:>14}  {target}: {measured}")
    return 0


# The pages whose headline tables come from the last whole run.
HEADLINE_PAGES = ("README.md", "docs/performance.md")


def write_headlines(results: dict[str, Any]) -> None:
    for page in HEADLINE_PAGES:
        if report.write_headline(results, REPO / page):
            print(f"{page}: the benchmark headline regenerated")


def server_records(plan: suite.Plan) -> dict[str, dict[str, Any]]:
    """What each echo server is, for the report: label, the raw server it is paired with."""
    return {
        s.name: {
            "label": s.label,
            "raw": s.raw,
            "wschannels": s.wschannels,
            "external": s.command is not None,
        }
        for s in plan.echo
    }


def notes(plan: suite.Plan) -> list[str]:
    """Facts about this run a reader needs beside the numbers."""
    out: list[str] = []
    transports = suite.wschannels_transports()
    covered = {"asgi", "picows", "websockets", "aiohttp"}
    missing = [t for t in transports if t not in covered]
    out.append(
        "wschannels server adapters found in src/wschannels/servers/: "
        + (", ".join(transports) or "none")
        + (f"; without a benchmark server yet: {', '.join(missing)}" if missing else "")
    )
    for name, why in sorted(plan.skipped.items()):
        out.append(f"`{name}` skipped: {why}")
    n = plan.settings.idle_connections
    out.append(
        f"Idle and fan-out hold up to {max(n, *plan.settings.fanout_sizes):,} connections: "
        "one descriptor each on the server and on the client side, each process below the "
        "open-file hard limit after raising its soft limit to it."
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
