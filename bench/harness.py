"""Process plumbing for the benchmarks: pinned subprocesses, ports, /proc readings, Redis."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Server side on one core, load generator on the other, so neither steals the other's CPU.
SERVER_CORE = 0
LOAD_CORE = 1

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A server or load generator did not behave; the message says which and why."""


def raise_open_files_limit() -> int:
    """Raise this process's soft open-file limit to the hard limit; return the new limit.

    10,000 connections need 10,000 descriptors on each side, above the usual soft limit of 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinning_available() -> bool:
    """Whether `taskset` exists and there are at least two cores to separate server and load."""
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def priority_boost_available() -> bool:
    """Whether benchmark processes may be given the highest priority (root only)."""
    return os.geteuid() == 0


def boost_priority(pid: int) -> None:
    """Give process `pid` (the leader of its own session) the highest CPU priority, if allowed.

    On a machine that other work shares, this keeps that work from taking the benchmark's
    cores. With autogroup scheduling (each session is scheduled as one group) a process's
    own nice value only counts inside its group, so the group's nice value is set too.
    """
    if not priority_boost_available():
        return
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text("-20")
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, -20)


def pinned(core: int, argv: Sequence[str]) -> list[str]:
    """`argv` prefixed with `taskset -c core` where pinning is possible."""
    if pinning_available():
        return ["taskset", "-c", str(core), *argv]
    return list(argv)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Block until something accepts on `port`; fail early if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"nothing listening on port {port} after {timeout:.0f} s")


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it that is alive now.

    A server may do its work in child processes: granian runs its worker in one, and an
    external `--baseline` command may be a shell that starts the real server. The server's
    CPU and memory are those of the whole tree.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time that process `pid` and its descendants have used so far.

    A child that has exited and was waited for counts in its parent's `cutime`/`cstime`.
    """
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                raise
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / _CLOCK_TICKS


def busy_cpu_seconds() -> float:
    """CPU time all cores have spent not idle since boot (from /proc/stat).

    Minus the server's and the generator's own CPU, this is what other processes took
    during a measurement: the benchmarks share the machine with whatever else runs on it.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid` and its descendants (see `process_tree`)."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            if p == pid:
                raise
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                break
        else:
            if p == pid:
                raise BenchError(f"no VmRSS for pid {pid}")
    return total


def python_env() -> dict[str, str]:
    """Environment for child Pythons: the repo root importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """A server subprocess pinned to the server core, listening on `port`."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)  # added to `python_env()`
    proc: subprocess.Popen[bytes] | None = None
    log: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            pinned(SERVER_CORE, self.argv),
            cwd=REPO,
            env=python_env() | self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        boost_priority(self.proc.pid)  # its children (workers) inherit the priority
        try:
            wait_for_port(self.port, self.proc, timeout)
        except BenchError as e:
            self.stop()
            raise BenchError(f"{self.name}: {e}\n{self.output()}") from None

    def output(self, limit: int = 4000) -> str:
        """The tail of what the server printed (for error messages)."""
        if self.log is None:
            return ""
        self.log.seek(0)
        text: str = self.log.read().decode(errors="replace")
        return text[-limit:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; the server's whole process group goes."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.log is not None:
            self.log.close()
            self.log = None
        self.proc = None


@contextlib.contextmanager
def running(servers: Sequence[Server]) -> Iterator[Sequence[Server]]:
    """Start `servers` in order, yield them, stop them all whatever happens."""
    started: list[Server] = []
    try:
        for s in servers:
            s.start()
            started.append(s)
        yield servers
    finally:
        for s in reversed(started):
            s.stop()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_load(module: str, args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a load generator pinned to the load core; return the JSON object it prints last."""
    argv = pinned(LOAD_CORE, python_module(module, *args))
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=python_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    boost_priority(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{module} did not finish within {timeout:.0f} s") from e
    finally:
        if proc.poll() is None:  # timed out, or we are being interrupted
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = err.decode(errors="replace")[-3000:]
        raise BenchError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free port (server core, no persistence); yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise BenchError("redis-server is not installed (scripts/system-deps.sh installs it)")
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--maxclients", "10000"]
    server = Server("redis", argv, port)
    server.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """A throwaway ``nats-server -js`` on a free port (server core); yields its URL."""
    exe = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if exe is None:
        raise BenchError("nats-server is not installed (scripts/system-deps.sh installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory() as store:
        server = Server("nats", [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                        port)  # fmt: skip
        server.start()
        try:
            yield f"nats://127.0.0.1:{port}"
        finally:
            server.stop()


@contextlib.contextmanager
def redis_cluster() -> Iterator[str]:
    """Three throwaway redis-servers joined into a cluster (no replicas); yields its URL."""
    exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if exe is None or cli is None:
        raise BenchError("redis-server and redis-cli are needed (scripts/system-deps.sh)")
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port < 55000 and port not in ports:
            ports.append(port)
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        for port in ports:
            argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--maxclients", "10000", "--cluster-enabled", "yes",
                    "--cluster-config-file", f"{directory}/nodes-{port}.conf"]  # fmt: skip
            server = Server(f"redis-{port}", argv, port)
            server.start()
            stack.callback(server.stop)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 30
        for port in ports:
            while b"cluster_state:ok" not in subprocess.run(
                [cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=10
            ).stdout:
                if time.monotonic() > deadline:
                    raise BenchError("the Redis Cluster did not come up")
                time.sleep(0.05)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
