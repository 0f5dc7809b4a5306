"""The benchmark harness still runs end to end (a smoke test, not a performance assertion)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_quick_echo_run_writes_a_table_with_a_finite_ratio(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "echo", "--servers", "picows",
         "--tests", "text N=1 W=64", "--duration", "0.3", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    records = results["echo"]
    assert {r["server"] for r in records} == {"starlette-sansio", "picows"}
    assert not [r["error"] for r in records if "error" in r]
    assert all(r["messages"] > 0 for r in records)

    table = (tmp_path / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| picows |"))
    ratio = float(row.split("|")[2].split("x")[0])
    assert math.isfinite(ratio) and ratio > 0
    assert (tmp_path / "echo_throughput_ratio.png").stat().st_size > 0
    assert results["machine"]["packages"]["picows"] != "not installed"


def test_an_external_baseline_command_is_measured_beside_the_suite_servers(
    tmp_path: Path,
) -> None:
    # A bench server started the way a Go build would be: any command, the port from {port}.
    command = f"{sys.executable} -m bench.servers.picows_echo --port {{port}}"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenarios", "echo", "--servers", "external",
         "--baseline", f"external={command}", "--reps", "1", "--duration", "0.3",
         "--tests", "text N=1 W=64,json N=1 W=64", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    records = [r for r in results["echo"] if r["server"] == "external"]
    assert {r["test"] for r in records} == {"text N=1 W=64", "json N=1 W=64"}
    assert not [r["error"] for r in records if "error" in r]
    assert all(r["messages"] > 0 and r["server_cpu_us_per_msg"] > 0 for r in records)
    assert results["servers"]["external"]["external"] is True

    table = (tmp_path / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| external |"))
    ratios = [float(cell.split("x")[0]) for cell in row.split("|")[2:4]]
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    assert f"`external` = external: `{command}`" in table


def test_a_baseline_without_a_command_is_refused_with_the_expected_form(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--baseline", "go", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "NAME=COMMAND" in done.stdout
    assert not (tmp_path / "results.json").exists()


def test_server_cpu_counts_the_work_of_child_processes() -> None:
    # Granian serves from a worker process, and a --baseline command may be a shell around
    # the real server: the CPU a server uses is that of its whole process tree.
    from bench.harness import cpu_seconds

    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.5: pass\n"
        "print('burnt', flush=True)\n"
        "sys.stdin.read()\n"
    )
    shell = subprocess.Popen(
        ["sh", "-c", f'{sys.executable} -c "$0"; true', burn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert shell.stdout is not None and shell.stdout.readline() == "burnt\n"
        assert cpu_seconds(shell.pid) >= 0.45
    finally:
        assert shell.stdin is not None
        shell.stdin.close()
        shell.wait(10)


def test_a_server_whose_library_or_adapter_is_missing_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import suite

    assert suite.missing(("json", "wschannels:messages")) is None
    assert "no_such_module_here does not import" in str(suite.missing(("no_such_module_here",)))
    assert "has no no_such_adapter" in str(suite.missing(("wschannels:no_such_adapter",)))

    absent = suite.EchoServer("absent", "needs what is not here", "bench.servers.picows_echo",
                              requires=("wschannels:no_such_adapter",))  # fmt: skip
    registry = suite.echo_servers()
    monkeypatch.setattr(suite, "echo_servers", lambda: [*registry, absent])
    plan = suite.make_plan(suite.Settings.quick_run(), ["echo"], None)
    assert "absent" not in {s.name for s in plan.echo}
    assert "has no no_such_adapter" in plan.skipped["absent"]


def test_the_reliability_scenarios_run_end_to_end(tmp_path: Path) -> None:
    """hold, soak and fairness, tiny, on picows: each writes its record with no error."""
    runs = [
        ["hold", "--connections", "600"],
        ["soak", "--minutes", "0.05", "--concurrency", "2"],
        ["fairness", "--duration", "0.5"],
    ]
    for args in runs:
        done = subprocess.run(
            [sys.executable, "-m", "bench.reliability", *args, "--servers", "picows",
             "--out", str(tmp_path)],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        record = json.loads((tmp_path / f"{args[0]}.json").read_text())
        result = record["results"]["picows"]
        assert "error" not in result and result["server_alive_after"]
    hold = json.loads((tmp_path / "hold.json").read_text())["results"]["picows"]
    assert hold["connections"] == 600 and hold["lost_echoes"] == 0
    soak = json.loads((tmp_path / "soak.json").read_text())["results"]["picows"]
    assert soak["cycles"] > 0 and soak["idle_after"]["hub_members"] == 0
