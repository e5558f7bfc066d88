"""The fault soak (``scripts/soak/faults.py``) in its CI mode: its JSON lines and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent_identity.actors.tip_schedule import MISS_BACKOFF_MAX

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak" / "faults.py"
FAULTS = [
    "5xx_30pct",
    "429_retry_after",
    "latency_2s",
    "connection_reset",
    "malformed_json",
    "jwks_rotation",
    "clock_skew_plus_120",
    "clock_skew_minus_120",
    "outage",
]
#: Faults that leave every cached TIP valid: every ask must have been served from the cache.
PARTIAL = set(FAULTS) - {"outage"}


def test_the_quick_soak_serves_no_expired_tip_and_recovers_from_every_fault() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["fault"] for line in lines] == FAULTS
    by_fault = {line["fault"]: line for line in lines}
    for line in lines:
        name = line["fault"]
        assert line["expired_served"] == 0, name
        assert line["recovered"] is True, name
        assert line["recovery_seconds"] is not None, name
        assert 0 <= line["retries_per_call_max"] <= 3, name
        assert line["attempts_numbered"] is True, name
        assert line["retries"] == line["attempts"] - line["control_plane_calls"], name
        assert line["control_plane_calls"] > 0, name
        assert line["log_leaks"] == 0, name
        assert line["served_from_cache"] <= line["served"] <= line["requests"] > 0, name
        if name in PARTIAL:
            assert line["served"] == line["served_from_cache"] == line["requests"], name
    # Each fault did what it says: retried errors, waits without errors, unretried garbage.
    for name in ("5xx_30pct", "429_retry_after", "connection_reset"):
        assert by_fault[name]["retries"] > 0, name
    assert by_fault["latency_2s"]["retries"] == 0
    assert by_fault["malformed_json"]["retries"] == 0
    assert by_fault["malformed_json"]["failed_calls"] > 0
    assert "InvalidResponse" in by_fault["malformed_json"]["log_example"]
    assert "fetching the JWKS again" in by_fault["jwks_rotation"]["log_example"]
    # A total outage: the cache ran out, nothing expired was served, every call used its
    # whole budget and failed, asks were held back between calls (the miss back-off: far
    # fewer calls than asks), and the first ask after a session's back-off minted again.
    outage = by_fault["outage"]
    assert outage["no_tip"] == {"unavailable": outage["requests"] - outage["served"]}
    assert outage["no_tip"]["unavailable"] > 0
    assert outage["retries_per_call_max"] == 3
    assert outage["failed_calls"] == outage["control_plane_calls"]
    assert outage["control_plane_calls"] < outage["no_tip"]["unavailable"] / 2
    assert 0.0 <= outage["recovery_seconds"] <= MISS_BACKOFF_MAX + 1
    assert "HTTP 503 ServiceUnavailable" in outage["log_example"]
