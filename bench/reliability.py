"""`python -m bench.reliability`: the reliability scenarios, each on every server of the registry.

    python -m bench.reliability hold --connections 10000      # RSS/conn, connect time, p99
    python -m bench.reliability soak --minutes 10             # churn with a leak check
    python -m bench.reliability fairness                      # one flooder vs 100 clients

The server runs the routes of `bench.servers.reliability_app` in its own process, pinned to
the server core; the load generator is pinned to the other. Each scenario prints one JSON
object per server and writes them to `--out` (default docs/benchmarks/reliability/).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO, BenchError, Server, free_port, python_module, raise_open_files_limit
from bench.harness import run_load as run_generator
from bench.servers import registry

ROUTES = "bench.servers.reliability_app:ROUTES"


def server_for(name: str) -> Server:
    port = free_port()
    argv = python_module("bench.servers.registry", name, "--port", str(port), "--routes", ROUTES)
    return Server(f"{name}-reliability", argv, port)


def run_scenario(scenario: str, names: list[str], extra: list[str], timeout: float
                 ) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {}
    for name in names:
        server = server_for(name)
        server.start()
        try:
            path = {"hold": "/echo", "fairness": "/echo", "soak": ""}[scenario]
            args = ["--url", f"ws://127.0.0.1:{server.port}{path}",
                    "--server-pid", str(server.pid), *extra]  # fmt: skip
            result = run_generator(f"bench.load.{scenario}", args, timeout)
            result["server_alive_after"] = server.alive()
        except BenchError as error:
            result = {"error": str(error)[-2000:]}
        finally:
            server.stop()
        results[name] = result
        summary = {k: v for k, v in result.items() if k != "samples"}
        print(f"{scenario} on {name}: {json.dumps(summary)}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", choices=["hold", "soak", "fairness"])
    parser.add_argument("--servers", default=None, help="registry names (default: available)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "reliability")
    parser.add_argument("--connections", type=int, default=None, help="hold: how many")
    parser.add_argument("--minutes", type=float, default=None, help="soak: how long")
    parser.add_argument("--concurrency", type=int, default=None, help="soak: churning workers")
    parser.add_argument("--duration", type=float, default=None, help="fairness: seconds a phase")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    for why in registry.unavailable().values():
        print(f"reliability: skipping {why}", flush=True)
    names = [k.name for k in registry.available()]
    if args.servers:
        names = [n for n in args.servers.split(",") if n in names]
    extra: list[str] = []
    timeout = 600.0
    if args.scenario == "hold" and args.connections is not None:
        extra += ["--connections", str(args.connections)]
    if args.scenario == "soak":
        minutes = args.minutes if args.minutes is not None else 10.0
        extra += ["--minutes", str(minutes)]
        if args.concurrency is not None:
            extra += ["--concurrency", str(args.concurrency)]
        timeout = minutes * 60 + 300
    if args.scenario == "fairness" and args.duration is not None:
        extra += ["--duration", str(args.duration)]
    command = "python -m bench.reliability " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    results = run_scenario(args.scenario, names, extra, timeout)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "results": results}
    target = args.out / f"{args.scenario}.json"
    target.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written to {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
