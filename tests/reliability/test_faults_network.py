"""Network faults: 2 s latency spikes, connection resets, malformed JSON.

Same setting as ``test_faults_control_plane`` (three sessions, 300 s TIPs, a client asking
every few seconds, simulated time). The malformed-JSON test places a total fault over the
TIPs' refresh time (75 to 85 % of their life) and ends it before they expire, so every ask
must still be answered from the cache.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from .test_faults_support import (
    MAX_ATTEMPTS,
    MINT,
    USERPOOL,
    no_secrets_in,
    open_stack,
    within_budget,
)

HOUR = 3600.0


async def test_latency_spikes_delay_refreshes_never_cached_answers(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        # Half of the control-plane and IdP requests answer 2 s late (the real answer).
        rules = [
            stack.sb.faults.add(None, latency=2.0, rate=0.5),
            stack.sb.faults.add(USERPOOL, latency=2.0, rate=0.5),
        ]
        window = await stack.through(stack.removing(rules), 2 * HOUR, every=5, within=60)
        during, recovery = window.during, window.recovery
        before, after = window.before, window.after

        # The spikes hit the refreshes, but the askers were answered from the cache at once.
        assert rules[0].hits > 10
        during.assert_all_from_cache()
        assert during.slowest_cached == 0.0
        # 2 s is well inside the HTTP timeout: no attempt failed, nothing was retried.
        assert within_budget(window.calls) == 1
        assert after.retries == before.retries
        assert after.errors_by_code == before.errors_by_code
        stats = stack.refresher.tip_statistics()
        assert (stats.failures, stats.logged_out) == (0, 0)
        assert stats.renewals >= len(stack.sessions)

        assert recovery.seconds == 0.0
        # Nothing failed, so nothing was worth a warning.
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


async def test_connection_resets_are_retried_within_budget(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        rule = stack.sb.faults.add(None, reset=True, rate=0.4)
        window = await stack.through(
            stack.removing([rule]), HOUR, every=5, within=stack.policy.retry_max + 60
        )
        during, recovery = window.during, window.recovery
        before, after = window.before, window.after

        during.assert_all_from_cache()

        # Each reset is one failed attempt with a connection-level error, retried at once
        # within the budget (a reset is always worth another attempt).
        resets = after.errors_by_code["TransportError"] - before.errors_by_code.get(
            "TransportError", 0
        )
        assert resets == rule.hits > 0
        assert set(after.errors_by_code) == {"TransportError"}
        assert 2 <= within_budget(window.calls) <= MAX_ATTEMPTS
        gave_up = after.failures - before.failures
        assert after.retries - before.retries == resets - gave_up

        recovery.assert_within(stack.policy.retry_max)

        retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert len(retried) == resets - gave_up
        assert all("(TransportError: peer closed connection" in line for line in retried)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == gave_up
        assert all("peer closed connection" in line for line in warnings)
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


async def test_malformed_json_is_not_retried_and_the_cache_covers_it(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        minted = await stack.refresh_all()
        await stack.drive(200, every=2)
        # From 200 s to 280 s of the TIPs' 300 s: over their refresh time (225 to 255 s),
        # ending before they expire.
        rule = stack.sb.faults.add(MINT, malformed=True)
        window = await stack.through(stack.removing([rule]), 80, every=2, within=60)
        assert window.ended - minted == 280
        during, recovery = window.during, window.recovery
        before, after = window.before, window.after

        during.assert_all_from_cache()

        # A body that is not JSON is not retried (as the SDK does): one attempt per call, and
        # the refresher's own back-off spaced the calls out.
        calls = window.calls
        assert len(calls) == rule.hits >= len(stack.sessions)
        assert within_budget(calls) == 1
        assert after.errors_by_code["InvalidResponse"] == len(calls)
        assert after.retries == before.retries
        # The refresh at 225 to 255 s, then retries 1-2, 2-4, 4-8, 8-16 and 16-32 s apart:
        # at most 6 calls per session in the fault's last 55 s.
        assert len(calls) <= 6 * len(stack.sessions)

        # Recovered by the next back-off retry, or at the latest by the first ask once the
        # cached TIP is past its serve margin (a miss mints at once): before it expired.
        assert recovery.seconds is not None
        assert recovery.seconds <= 300 - 280
        assert recovery.tally.expired == 0

        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == len(calls)
        assert all("InvalidResponse: the body is not JSON" in line for line in warnings)
        # Nothing of the garbage body reaches the logs.
        assert all("injected" not in r.getMessage() for r in caplog.records)
        assert no_secrets_in(caplog.records, await stack.secrets()) == []
