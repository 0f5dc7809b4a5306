"""The scenarios: which servers, which loads, in which order; each returns result records.

Method (as in docs/benchmarks): servers run one at a time, in the listed order in even
repetitions and reversed in odd ones (A B C D / D C B A), so a slow drift of the machine
does not favour one side; a ratio is taken between two servers of the same repetition and
the median over repetitions is reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    REPO,
    BenchError,
    Server,
    free_port,
    nats_server,
    python_module,
    redis_cluster,
    redis_server,
    run_load,
    running,
)

BASELINE = "starlette-sansio"

Step = Callable[[str], None]  # progress callback: called once per finished step with its label


@dataclass(frozen=True)
class Settings:
    """How long and how often; `quick()` is the two-minute smoke run."""

    reps: int = 3
    warmup: float = 0.3
    duration: float = 1.5
    fanout_sizes: tuple[int, ...] = (1_000, 10_000)
    fanout_split: int = 10_000  # members of the two-process (Redis) case, half in each
    fanout_publishes: int = 30
    fanout_budget: float = 15.0
    fanout_publish_timeout: float = 10.0
    idle_connections: int = 10_000
    churn_reps: int = 2
    churn_duration: float = 1.5
    churn_concurrency: int = 8
    quick: bool = False

    @classmethod
    def quick_run(cls) -> Settings:
        return cls(
            reps=1,
            warmup=0.2,
            duration=0.5,
            fanout_sizes=(1_000,),
            fanout_split=1_000,
            fanout_publishes=5,
            fanout_budget=3.0,
            fanout_publish_timeout=5.0,
            idle_connections=1_000,
            churn_reps=1,
            churn_duration=0.5,
            quick=True,
        )


# -- echo ----------------------------------------------------------------------------------


def missing(requires: tuple[str, ...]) -> str | None:
    """Why a server cannot run here, or None: each of `requires` is "module" or "module:name".

    A server whose library (or whose wschannels adapter) is not installed is skipped, with
    this reason in the report's notes, instead of failing every run.
    """
    for need in requires:
        module, _, name = need.partition(":")
        try:
            found = importlib.import_module(module)
        except ImportError as e:
            return f"{module} does not import ({e})"
        if name and not hasattr(found, name):
            version = getattr(found, "__version__", None)
            return f"{module}{f' {version}' if version else ''} has no {name} yet"
    return None


@dataclass(frozen=True)
class EchoServer:
    """An echo server: `/` echoes text, `/json` (where `json`) decodes and re-encodes JSON.

    `raw` names the raw echo on the same server, for a wschannels binding: what the binding
    costs is its throughput over that one's. `command` is an external server (`--baseline`):
    a shell command, `{port}` in it (and `$PORT`) the port to listen on.
    """

    name: str
    label: str
    module: str = ""
    args: tuple[str, ...] = ()
    protocol: str = "raw"  # or "socketio"
    json: bool = False
    concurrency: bool = True  # also run the many-connection tests
    wschannels: bool = False
    raw: str | None = None
    requires: tuple[str, ...] = ()
    command: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # set in the server's environment

    def server(self) -> Server:
        port = free_port()
        if self.command is not None:
            argv = ["sh", "-c", self.command.replace("{port}", str(port))]
            return Server(self.name, argv, port, env={"PORT": str(port)})
        argv = python_module(self.module, "--port", str(port), *self.args)
        return Server(self.name, argv, port, env=dict(self.env))

    def missing(self) -> str | None:
        return missing(self.requires)


def starlette(ws: str, **kw: Any) -> EchoServer:
    return EchoServer(
        f"starlette-{ws.replace('websockets-', '')}",
        f"Starlette, uvicorn ws={ws}",
        "bench.servers.starlette_echo",
        ("--ws", ws),
        **kw,
    )


def wschannels_on(name: str, label: str, raw: str, *args: str, **kw: Any) -> EchoServer:
    return EchoServer(name, label, "bench.servers.wschannels_echo", args, json=True,
                      wschannels=True, raw=raw, **kw)  # fmt: skip


def echo_servers() -> list[EchoServer]:
    """Every echo contender, the baseline first, then the raw servers, then wschannels on each.

    Servers whose library or wschannels adapter is missing are listed too: `make_plan` skips
    them with a note.
    """
    return [
        starlette("websockets-sansio", json=True),
        starlette("websockets", concurrency=False),
        starlette("wsproto", concurrency=False),
        EchoServer("granian", "the same Starlette app on granian (ASGI, Rust; 1 worker, "
                   "1 runtime thread, uvloop)", "bench.servers.starlette_echo",
                   ("--server", "granian"), json=True, requires=("granian",)),
        EchoServer("picows", "raw picows server", "bench.servers.picows_echo", json=True),
        EchoServer("picows-websockets", "picows.websockets.serve, picows' websockets-compatible "
                   "server", "bench.servers.websockets_echo", ("--impl", "picows"), json=True,
                   requires=("picows.websockets",)),
        EchoServer("websockets", "websockets.asyncio.server.serve (websockets library)",
                   "bench.servers.websockets_echo", ("--impl", "websockets"),
                   json=True),
        EchoServer("aiohttp", "aiohttp WebSocketResponse handlers, web.run_app",
                   "bench.servers.aiohttp_echo", json=True, requires=("aiohttp",)),
        wschannels_on("wschannels", "wschannels messages()/json() route, uvicorn "
                      "ws=websockets-sansio", BASELINE, "--form", "route"),
        dataclasses.replace(
            wschannels_on("wschannels-asgi", "wschannels.asgi(handler), uvicorn "
                          "ws=websockets-sansio", BASELINE, "--form", "asgi"),
            json=False,
        ),
        wschannels_on("wschannels-picows", "wschannels messages()/json() on the picows "
                      "transport (no ASGI server)", "picows", "--form", "picows"),
        # The same, its hot path run from the Python sources: what compiling with mypyc pays.
        wschannels_on("wschannels-picows-pure", "wschannels-picows with WSCHANNELS_PURE=1 (the "
                      "engine, channels, views and codecs not compiled)", "picows", "--form",
                      "picows", env=(("WSCHANNELS_PURE", "1"),)),
        wschannels_on("wschannels-granian", "wschannels messages()/json() route on granian",
                      "granian", "--form", "route", "--server", "granian",
                      requires=("granian",)),
        wschannels_on("wschannels-websockets", "wschannels on the websockets library's server "
                      "(wschannels.run_websockets)", "websockets", "--form", "websockets",
                      requires=("wschannels:run_websockets",)),
        wschannels_on("wschannels-aiohttp", "wschannels under aiohttp "
                      "(wschannels.aiohttp_route)", "aiohttp", "--form", "aiohttp",
                      requires=("aiohttp", "wschannels:aiohttp_route")),
        EchoServer(
            "socketio",
            "python-socketio ASGI, uvicorn ws=websockets-sansio",
            "bench.servers.socketio_echo",
            protocol="socketio",
            json=True,
        ),
    ]


def external_server(spec: str) -> EchoServer:
    """`NAME=CMD` from `--baseline` as an echo server (see bench/README.md for the contract)."""
    name, sep, command = spec.partition("=")
    name, command = name.strip(), command.strip()
    if not sep or not name or not command:
        raise ValueError(f"--baseline wants NAME=COMMAND, got {spec!r}")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"--baseline name {name!r}: letters, digits, '-', '_' and '.' only")
    return EchoServer(name, f"external: `{command}`", json=True, command=command)


def wschannels_transports() -> list[str]:
    """Server adapters in src/wschannels/servers/ (asgi is the one under uvicorn)."""
    folder = REPO / "src" / "wschannels" / "servers"
    helpers = {"drain", "memory", "routing", "stepping", "uvicorn"}  # not servers of their own
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(folder)])
        if not m.name.startswith("_") and m.name not in helpers
    )


@dataclass(frozen=True)
class EchoTest:
    kind: str  # "text" (32 B) or "json"
    connections: int
    window: int
    scenario: str  # "echo" (one connection) or "concurrency"

    @property
    def label(self) -> str:
        return f"{self.kind} N={self.connections} W={self.window}"

    def applies_to(self, server: EchoServer) -> bool:
        if self.kind == "json" and not server.json:
            return False
        return self.scenario == "echo" or server.concurrency


def echo_tests(settings: Settings) -> list[EchoTest]:
    tests = [
        EchoTest("text", 1, 1, "echo"),
        EchoTest("text", 1, 64, "echo"),
        EchoTest("json", 1, 1, "echo"),
        EchoTest("json", 1, 64, "echo"),
        EchoTest("text", 10, 1, "concurrency"),
        EchoTest("text", 10, 64, "concurrency"),
        EchoTest("json", 10, 64, "concurrency"),
        EchoTest("text", 100, 1, "concurrency"),
        EchoTest("text", 100, 64, "concurrency"),
        EchoTest("json", 100, 64, "concurrency"),
        EchoTest("text", 1000, 1, "concurrency"),
    ]
    if settings.quick:
        tests = [t for t in tests if t.kind == "text" and t.connections <= 100]
    return tests


def alternate(items: list[Any], rep: int) -> list[Any]:
    """A B C D in even repetitions, D C B A in odd ones."""
    return items if rep % 2 == 0 else items[::-1]


def run_echo(
    servers: list[EchoServer], tests: list[EchoTest], settings: Settings, step: Step
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for rep in range(settings.reps):
        for spec in alternate(servers, rep):
            mine = [t for t in tests if t.applies_to(spec)]
            try:
                with running([spec.server()]) as (server,):
                    for test in mine:
                        records.append(echo_once(spec, server, test, settings, rep))
                        step(f"echo {spec.name} {test.label}")
            except BenchError as e:
                done = {(r["server"], r["test"]) for r in records if r["rep"] == rep}
                for test in mine:
                    if (spec.name, test.label) not in done:
                        records.append(_failed(spec.name, test.label, rep, e))
                        step(f"echo {spec.name} {test.label} failed")
    return records


def echo_once(
    spec: EchoServer, server: Server, test: EchoTest, settings: Settings, rep: int
) -> dict[str, Any]:
    base = {"server": spec.name, "test": test.label, "scenario": test.scenario, "rep": rep}
    path = "json" if test.kind == "json" and spec.protocol == "raw" else ""
    try:
        result = run_load(
            "bench.load.echo",
            [
                "--url", f"ws://127.0.0.1:{server.port}/{path}",
                "--protocol", spec.protocol,
                "--kind", test.kind,
                "--connections", str(test.connections),
                "--window", str(test.window),
                "--warmup", str(settings.warmup),
                "--duration", str(settings.duration),
                "--server-pid", str(server.pid),
            ],
            timeout=120,
        )  # fmt: skip
    except BenchError as e:
        if not server.alive():
            raise BenchError(f"{spec.name} died: {e}\n{server.output()}") from None
        return _failed(spec.name, test.label, rep, e) | base
    if result["errors"]:
        result["error"] = "; ".join(result["errors"])
    return base | result


def _failed(server: str, test: str, rep: int, error: Exception) -> dict[str, Any]:
    return {"server": server, "test": test, "rep": rep, "error": str(error)[:2000]}


# -- fan-out -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanoutStack:
    """A fan-out server: members on `/member`, the publisher on `/publish` (Socket.IO: events)."""

    name: str
    label: str
    module: str
    args: tuple[str, ...] = ()
    protocol: str = "raw"
    redis_flag: str | None = None  # how the server takes the Redis URL, for the 2-process case
    requires: tuple[str, ...] = ()  # as for EchoServer: skipped with a note when missing

    def server(self, redis_url: str | None) -> Server:
        port = free_port()
        args = [*self.args]
        if redis_url is not None:
            assert self.redis_flag is not None
            args += [self.redis_flag, redis_url]
        return Server(self.name, python_module(self.module, "--port", str(port), *args), port)

    def urls(self, server: Server) -> tuple[str, str]:
        base = f"ws://127.0.0.1:{server.port}"
        if self.protocol == "socketio":
            return base, base
        return f"{base}/member", f"{base}/publish"

    def missing(self) -> str | None:
        return missing(self.requires)


def wschannels_hub(name: str, label: str, *args: str, **kw: Any) -> FanoutStack:
    return FanoutStack(name, label, "bench.servers.wschannels_fanout", args, redis_flag="--hub",
                       **kw)  # fmt: skip


FANOUT_LOCAL = [
    FanoutStack(
        "starlette-loop",
        "Starlette, sequential send_text loop",
        "bench.servers.starlette_fanout",
    ),
    FanoutStack("aiohttp-loop", "aiohttp, sequential send_str loop",
                "bench.servers.aiohttp_fanout", requires=("aiohttp",)),
    FanoutStack("websockets-broadcast", "websockets.broadcast()",
                "bench.servers.websockets_fanout", ("--impl", "websockets")),
    FanoutStack("picows-websockets-broadcast", "picows.websockets.broadcast()",
                "bench.servers.websockets_fanout", ("--impl", "picows"),
                requires=("picows.websockets",)),
    wschannels_hub("wschannels", "wschannels Hub (memory)"),
    wschannels_hub("wschannels-picows", "wschannels Hub (memory), picows transport",
                   "--transport", "picows"),
    wschannels_hub("wschannels-websockets", "wschannels Hub (memory), websockets server",
                   "--transport", "websockets",
                   requires=("wschannels:serve_websockets",)),
    wschannels_hub("wschannels-aiohttp", "wschannels Hub (memory), aiohttp",
                   "--transport", "aiohttp",
                   requires=("aiohttp", "wschannels:aiohttp_route")),
    FanoutStack(
        "socketio",
        "python-socketio emit(room=)",
        "bench.servers.socketio_fanout",
        protocol="socketio",
        redis_flag="--redis",
    ),
    FanoutStack(
        "channels",
        "Django Channels group_send, in-memory layer",
        "bench.servers.channels_fanout",
        ("--layer", "memory"),
    ),
]

_LOCAL = {stack.name: stack for stack in FANOUT_LOCAL}

FANOUT_REDIS = [
    dataclasses.replace(_LOCAL["wschannels"], label="wschannels Hub (Redis)"),
    dataclasses.replace(_LOCAL["wschannels-picows"],
                        label="wschannels Hub (Redis), picows transport"),
    dataclasses.replace(_LOCAL["socketio"], label="python-socketio emit(room=), AsyncRedisManager"),
    FanoutStack(
        "channels",
        "Django Channels group_send, channels_redis",
        "bench.servers.channels_fanout",
        ("--layer", "redis"),
        redis_flag="--redis",
    ),
]


# The same two-process case over the Hub's other backends (only wschannels speaks them).
FANOUT_BACKENDS = {
    "nats": [
        dataclasses.replace(_LOCAL["wschannels"], label="wschannels Hub (NATS)"),
        dataclasses.replace(
            _LOCAL["wschannels-picows"], label="wschannels Hub (NATS), picows transport"
        ),
    ],
    "redis-cluster": [
        dataclasses.replace(_LOCAL["wschannels"], label="wschannels Hub (Redis Cluster)"),
        dataclasses.replace(
            _LOCAL["wschannels-picows"], label="wschannels Hub (Redis Cluster), picows transport"
        ),
    ],
}
BACKEND_NAMES = {"redis": "Redis", "nats": "NATS", "redis-cluster": "a 3-shard Redis Cluster"}


@dataclass(frozen=True)
class FanoutCase:
    members: int
    processes: int
    backend: str = "redis"  # what the processes share: redis, nats or redis-cluster

    @property
    def label(self) -> str:
        if self.processes == 1:
            return f"{self.members:,} members, 1 process"
        share = self.members // self.processes
        return f"{self.processes} x {share:,} members over {BACKEND_NAMES[self.backend]}"


def fanout_cases(settings: Settings) -> list[tuple[FanoutCase, list[FanoutStack]]]:
    cases: list[tuple[FanoutCase, list[FanoutStack]]] = [
        (FanoutCase(n, 1), FANOUT_LOCAL) for n in settings.fanout_sizes
    ]
    cases.append((FanoutCase(settings.fanout_split, 2), FANOUT_REDIS))
    for backend, stacks in FANOUT_BACKENDS.items():
        cases.append((FanoutCase(settings.fanout_split, 2, backend), stacks))
    return cases


def run_fanout(
    cases: list[tuple[FanoutCase, list[FanoutStack]]], settings: Settings, step: Step
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i, (case, stacks) in enumerate(cases):
        for stack in alternate(stacks, i):
            base = {"stack": stack.name, "label": stack.label, "case": case.label,
                    "members_wanted": case.members, "processes": case.processes}  # fmt: skip
            try:
                records.append(base | fanout_once(stack, case, settings))
            except BenchError as e:
                records.append(base | {"error": str(e)[:2000]})
            step(f"fan-out {stack.name} {case.label}")
    return records


@contextlib.contextmanager
def _maybe_backend(case: FanoutCase) -> Iterator[str | None]:
    """The shared backend of a case across processes (None for one process)."""
    if case.processes == 1:
        yield None
        return
    start = {"redis": redis_server, "nats": nats_server, "redis-cluster": redis_cluster}
    with start[case.backend]() as url:
        yield url


def fanout_once(stack: FanoutStack, case: FanoutCase, settings: Settings) -> dict[str, Any]:
    with _maybe_backend(case) as redis_url:
        servers = [stack.server(redis_url) for _ in range(case.processes)]
        with running(servers):
            member_urls, publish_url = zip(*(stack.urls(s) for s in servers), strict=True)
            connect_timeout = 60.0
            result = run_load(
                "bench.load.fanout",
                [
                    "--member-urls", ",".join(member_urls),
                    "--publish-url", publish_url[0],
                    "--protocol", stack.protocol,
                    "--members", str(case.members),
                    "--publishes", str(settings.fanout_publishes),
                    "--budget", str(settings.fanout_budget),
                    "--publish-timeout", str(settings.fanout_publish_timeout),
                    "--connect-timeout", str(connect_timeout),
                    "--server-pids", ",".join(str(s.pid) for s in servers),
                ],
                timeout=connect_timeout + settings.fanout_budget
                + 3 * settings.fanout_publish_timeout + 60,
            )  # fmt: skip
            died = [s.name for s in servers if not s.alive()]
            if died:
                result["error"] = f"server process died: {servers[0].output()[-500:]}"
            if result["members"] < case.members:
                result["server_log"] = "\n".join(s.output(1500) for s in servers)
    return result


# -- idle memory ---------------------------------------------------------------------------


def run_idle(
    servers: list[EchoServer], settings: Settings, step: Step
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    n = settings.idle_connections
    for spec in servers:
        base = {"server": spec.name, "connections_wanted": n}
        try:
            with running([spec.server()]) as (server,):
                result = run_load(
                    "bench.load.idle",
                    [
                        "--url", f"ws://127.0.0.1:{server.port}/",
                        "--connections", str(n),
                        "--warm", str(max(100, n // 20)),
                        "--server-pid", str(server.pid),
                    ],
                    timeout=300,
                )  # fmt: skip
            records.append(base | result)
        except BenchError as e:
            records.append(base | {"error": str(e)[:2000]})
        step(f"idle {spec.name}")
    return records


# -- churn ---------------------------------------------------------------------------------


def run_churn(
    servers: list[EchoServer], settings: Settings, step: Step
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for rep in range(settings.churn_reps):
        for spec in alternate(servers, rep):
            base = {"server": spec.name, "rep": rep}
            try:
                with running([spec.server()]) as (server,):
                    result = run_load(
                        "bench.load.churn",
                        [
                            "--url", f"ws://127.0.0.1:{server.port}/",
                            "--protocol", spec.protocol,
                            "--concurrency", str(settings.churn_concurrency),
                            "--warmup", str(settings.warmup),
                            "--duration", str(settings.churn_duration),
                            "--server-pid", str(server.pid),
                        ],
                        timeout=120,
                    )  # fmt: skip
                records.append(base | result)
            except BenchError as e:
                records.append(base | {"error": str(e)[:2000]})
            step(f"churn {spec.name}")
    return records


@dataclass
class Plan:
    """What a run will do, so the progress bar knows its length before it starts."""

    settings: Settings
    scenarios: list[str]
    echo: list[EchoServer] = field(default_factory=list)
    tests: list[EchoTest] = field(default_factory=list)
    fanout: list[tuple[FanoutCase, list[FanoutStack]]] = field(default_factory=list)
    idle: list[EchoServer] = field(default_factory=list)
    churn: list[EchoServer] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # server -> why it cannot run here

    def steps(self) -> int:
        n = 0
        if "echo" in self.scenarios:
            n += self.settings.reps * sum(
                1 for s in self.echo for t in self.tests if t.applies_to(s)
            )
        if "fanout" in self.scenarios:
            n += sum(len(stacks) for _, stacks in self.fanout)
        if "idle" in self.scenarios:
            n += len(self.idle)
        if "churn" in self.scenarios:
            n += self.settings.churn_reps * len(self.churn)
        return n


def make_plan(
    settings: Settings,
    scenarios: list[str],
    only: set[str] | None,
    external: list[EchoServer] | None = None,
) -> Plan:
    """The servers and tests of a run: `only` those named (with the baseline and the raw
    server each named binding is compared with), `external` ones always."""
    registry = echo_servers()
    if only is not None:
        only = only | {BASELINE} | {s.raw for s in registry if s.name in only and s.raw}
    skipped: dict[str, str] = {}

    def runnable(server: EchoServer | FanoutStack) -> bool:
        if only is not None and server.name not in only:
            return False
        why = server.missing()
        if why is not None:
            skipped[server.name] = why
        return why is None

    servers = [s for s in registry if runnable(s)] + list(external or [])
    fanout = [(case, [s for s in stacks if runnable(s)]) for case, stacks in fanout_cases(settings)]
    raws = {s.raw for s in servers if s.raw}
    return Plan(
        settings=settings,
        scenarios=scenarios,
        echo=servers,
        tests=echo_tests(settings),
        fanout=[(c, s) for c, s in fanout if s],
        idle=[s for s in servers if s.name == BASELINE or s.name in raws or s.wschannels
              or s.command is not None],
        churn=servers,
        skipped=skipped,
    )


def out_dir_default() -> Path:
    return REPO / "docs" / "benchmarks"
