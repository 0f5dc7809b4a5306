"""The benchmark harness still runs end to end (a smoke test, not a performance assertion)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

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
