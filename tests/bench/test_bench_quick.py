"""The benchmarks keep working: each runs in ``--quick`` mode and prints well-formed JSON lines.

Only the shape of the output is checked (every line parses, the expected kinds of line are
there with their keys), never the figures: timings are for people to read, not for tests to
assert on a shared machine. Sizes are cut further than ``--quick`` where a script allows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"

pytestmark = pytest.mark.slow

SETUP_KEYS = {"bench", "kind", "mode", "date", "host", "cpus", "python", "loadavg_1m"}


def run_bench(script: str, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, os.fspath(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert lines, "no output"
    assert all(isinstance(line, dict) for line in lines)
    setup = lines[0]
    assert setup.keys() >= SETUP_KEYS
    assert (setup["kind"], setup["mode"]) == ("setup", "quick")
    assert {line["bench"] for line in lines} == {setup["bench"]}
    return lines


def of_kind(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("kind") == kind]


def test_store_login() -> None:
    lines = run_bench("store_login.py", "--sessions", "300", "--logins", "10")
    summaries = of_kind(lines, "summary")
    assert {(s["mode"], s["case"]) for s in summaries} == {
        (mode, case) for mode in ("journal", "whole-file") for case in ("sequential", "concurrent")
    }
    for summary in summaries:
        assert {"p50_ms", "p99_ms", "stored_sessions", "load_ms", "target_met"} <= summary.keys()
        assert isinstance(summary["target_met"], bool)
    rounds = of_kind(lines, "round")
    assert rounds
    assert all({"p50_ms", "p99_ms", "count", "store_writes"} <= r.keys() for r in rounds)


def test_tool_call() -> None:
    lines = run_bench(
        "tool_call.py", "--calls", "300", "--alloc-calls", "100", "--breakdown-calls", "50"
    )
    (summary,) = of_kind(lines, "summary")
    assert {"p50_us", "p99_us", "cpu_p50_us", "cpu_p99_us", "target_met"} <= summary.keys()
    assert isinstance(summary["target_met_cpu"], bool)
    assert summary["permission_cache_hits"] > 0
    (alloc,) = of_kind(lines, "allocations")
    assert {"peak_bytes_per_call_p50", "retained_bytes_per_call"} <= alloc.keys()
    assert summary["actor_messages"] == 0  # the fast path is what was timed
    parts = {line["part"] for line in of_kind(lines, "breakdown")}
    assert {"tip_nowait", "check_tool_nowait", "lease_and_release_nowait"} <= parts
    assert "actor_hop_avoided" in parts


def test_sessions_scale() -> None:
    lines = run_bench("sessions_scale.py", "--sessions", "400", "--requests", "300")
    memory = of_kind(lines, "memory")
    assert {m["measure"] for m in memory} == {"rss", "traced"}
    for line in memory:
        assert {"store_overhead_per_session", "tip_cache_overhead_per_session"} <= line.keys()
        assert line["timer_tasks"] == 1
    refresh = {line["scenario"]: line for line in of_kind(lines, "refresh")}
    assert set(refresh) == {"steady", "burst"}
    assert {"peak_per_s", "mean_per_s", "peak_over_mean", "target_met"} <= refresh["steady"].keys()
    assert refresh["steady"]["timer_tasks"] == 1
    cases = {"small", "large", "large_hot"}
    setups = of_kind(lines, "token_setup")
    assert {s["case"] for s in setups} == cases
    assert all({"gc_tracked", "rss_mb"} <= s.keys() for s in setups)
    rounds = of_kind(lines, "token")
    assert {r["case"] for r in rounds} == cases  # side by side: every case in every round
    for line in rounds:
        assert line["count"] == 300
        assert len(line["gc_collections"]) == 3
    (token,) = of_kind(lines, "token_summary")
    assert {"p99_us_small", "p99_us_large", "p99_us_large_hot", "p99_ratio"} <= token.keys()
    assert isinstance(token["target_met"], bool)


def test_cold_start() -> None:
    lines = run_bench("cold_start.py", "--rounds", "1", "--sessions", "200")
    (baseline,) = of_kind(lines, "baseline")
    assert {"python_startup_s", "python_startup_and_cli_imports_s"} <= baseline.keys()
    cases = {line["case"]: line for line in of_kind(lines, "case")}
    assert set(cases) == {"empty", "sessions"}
    for case in cases.values():
        assert {"ready_s", "internal_ready_s", "stop_s", "target_met"} <= case.keys()


def test_run_all_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", os.fspath(BENCH / "run_all.sh")], check=True)


def test_gc_pause() -> None:
    lines = run_bench("gc_pause.py", "--tips", "2000", "--rounds", "2")
    (summary,) = of_kind(lines, "summary")
    assert summary["tips"] == 2000
    assert {
        "tracked_before",
        "tracked_after",
        "tracked_per_tip",
        "tracked_per_tip_by_type",
        "gc_collect_ms_p50",
        "cpu_gc_collect_ms_p50",
        "baseline_gc_collect_ms_p50",
        "cache_gc_ms",
        "build_us_per_tip",
        "rss_bytes_per_tip",
        "target_met",
    } <= summary.keys()
    assert isinstance(summary["target_met"], bool)
