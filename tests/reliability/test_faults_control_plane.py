"""Control-plane faults: 30 % 5xx (and the IdP's), 429 with Retry-After, an outage past a TIP.

Each test runs the TIP path of a system (see ``test_faults_support``) on simulated time, with
three logged-in sessions whose TIPs live 300 s, while a client asks for every session's TIP
every few seconds. It checks, for its fault: the answers (TIPs served from the cache during
the fault, none expired when returned, by either clock), the retries on the wire (counted
per call, within the 4-attempt budget), the recovery once the fault is removed, and the logs
(the fault named by its code and status, no token, key or secret).
"""

from __future__ import annotations

import itertools
import logging

import pytest
import trio
import trio.testing

from agent_identity.actors.tip_schedule import MISS_BACKOFF_MAX
from agent_identity.sandbox.faults import FAULT_CODES

from .test_faults_support import (
    FIVE_XX,
    MAX_ATTEMPTS,
    MINT,
    USERPOOL,
    add_5xx,
    late_calls_bound,
    no_secrets_in,
    open_stack,
    within_budget,
)

HOUR = 3600.0
FIVE_XX_CODES = {FAULT_CODES[status] for status in FIVE_XX}


async def test_thirty_percent_5xx_is_absorbed_by_retries_and_the_cache(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        warm = await stack.drive(60)
        assert warm.served == warm.requests
        rules = add_5xx(stack.sb, None, 0.3) + add_5xx(stack.sb, USERPOOL, 0.3)
        # Two hours: about 28 refreshes per session, and two user-token renewals at the IdP.
        window = await stack.through(
            stack.removing(rules), 2 * HOUR, every=5, within=stack.policy.retry_max + 60
        )
        during, recovery = window.during, window.recovery
        before, after = window.before, window.after

        # Every ask got a TIP from the cache; none had expired, by either clock.
        assert during.requests == 3 * 2 * 720
        during.assert_all_from_cache()
        assert during.least_left > stack.policy.serve_margin
        assert during.slowest == 0.0  # a cached answer never waits for the network

        # About 30 % of the attempts failed with a 5xx; every failure but a call's last was
        # retried, and no call went past its 4 attempts.
        failed = sum(
            after.errors_by_code.get(code, 0) - before.errors_by_code.get(code, 0)
            for code in FIVE_XX_CODES
        )
        attempts = after.attempts - before.attempts
        retries = after.retries - before.retries
        gave_up = after.failures - before.failures
        assert 0.2 * attempts < failed < 0.4 * attempts
        assert retries == failed - gave_up > 0
        calls = window.calls
        assert sum(len(call) for call in calls) == attempts
        assert 2 <= within_budget(calls) <= MAX_ATTEMPTS
        assert sum(rule.hits for rule in rules[:4]) == failed

        # The IdP's 5xx delayed renewals at worst: nobody was logged out. Every renewal and
        # every failed try went to the token endpoint under the fault.
        stats = stack.refresher.tip_statistics()
        assert stats.logged_out == 0
        assert stats.renewals >= 2 * len(stack.sessions)
        idp = window.idp
        assert sum(path.endswith("/oauth/token") for path in idp) >= stats.renewals
        assert sum(rule.hits for rule in rules[4:]) <= len(idp)
        assert (await stack.stored_secrets()).isdisjoint(stack.login_secrets)

        # Back to normal at once, or after the refresh back-off of a session that failed.
        recovery.assert_within(stack.policy.retry_max)
        assert recovery.tally.expired == 0

        # Each retry is logged with the status and code that caused it.
        retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert len(retried) == retries
        described = {f"HTTP {status} {FAULT_CODES[status]}" for status in FIVE_XX}
        assert all(any(text in line for text in described) for line in retried)
        assert {text for text in described if any(text in line for line in retried)} == described
        for record in caplog.records:
            if record.levelno >= logging.WARNING and record.name.startswith("agent_identity"):
                assert any(f"HTTP {status}" in record.getMessage() for status in FIVE_XX)
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


async def test_throttling_waits_as_long_as_retry_after_says(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        rule = stack.sb.faults.add(MINT, status=429, retry_after=3, rate=0.6)
        window = await stack.through(
            stack.removing([rule]), HOUR, every=5, within=stack.policy.retry_max + 60
        )
        during, recovery = window.during, window.recovery
        before, after = window.before, window.after

        during.assert_all_from_cache()

        # Every wait between two attempts is the server's 3 s, not the sub-second jitter.
        calls = window.calls
        within_budget(calls)
        gaps = [b.at - a.at for call in calls for a, b in itertools.pairwise(call)]
        assert len(gaps) == after.retries - before.retries > 0
        assert gaps == pytest.approx([3.0] * len(gaps))
        throttled = after.errors_by_code["RequestLimitExceeded"]
        assert throttled == rule.hits
        # About 0.6**4 of the calls ran out of attempts: the refresher kept serving the cached
        # TIP and retried later (its own back-off), and each such call stopped at 4 attempts.
        gave_up = after.failures - before.failures
        assert 0 < gave_up <= sum(len(call) == MAX_ATTEMPTS for call in calls)
        assert stack.refresher.tip_statistics().failures == gave_up

        recovery.assert_within(stack.policy.retry_max)

        retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert retried
        assert all(
            "(HTTP 429 RequestLimitExceeded), retrying in 3.000s" in line for line in retried
        )
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert all("HTTP 429 RequestLimitExceeded" in line for line in warnings)
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


async def test_an_outage_longer_than_a_tip_never_serves_an_expired_one(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        minted = await stack.refresh_all()
        rule = stack.sb.faults.add(None, status=503)
        # Twice the TIPs' lifetime: the refreshes fail, then the TIPs run out.
        window = await stack.through(stack.removing([rule]), 600, every=2, within=60)
        assert window.began == minted  # the TIPs were fresh as the outage began
        during, recovery = window.during, window.recovery
        before, after = window.before, window.after

        # Served from the cache until the serve margin before expiry, then refused: never a
        # TIP past its expiry, and never one with less than the margin left.
        margin = stack.policy.serve_margin
        assert 0 < during.served == during.from_cache < during.requests
        assert during.no_tip == {"unavailable": during.requests - during.served}
        assert during.expired == during.expired_upstream == 0
        assert margin < during.least_left <= margin + 2
        # Asked every 2 s from the mint on: served at ticks 0..k, where the TIP had 300 - 2k s
        # left, the last tick with more than the margin.
        last_served_tick = (300 - during.least_left) / 2
        assert during.served == len(stack.sessions) * (last_served_tick + 1)

        # Every call that ended within the outage used its whole budget and failed; a call
        # still retrying when it ended (at most one per session) succeeded on its next try.
        calls = window.calls
        ended = [call for call in calls if call[-1].seq < window.end]
        assert all(len(call) == MAX_ATTEMPTS for call in ended)
        assert len(calls) - len(ended) <= len(stack.sessions)
        assert within_budget(calls) == MAX_ATTEMPTS
        assert after.failures - before.failures == len(ended) > 0
        assert after.retries - before.retries == sum(len(call) - 1 for call in calls)

        # Once the TIPs ran out, asks were held back between calls (the miss back-off): a
        # call per session and window, not one per ask (one per ask was 473 calls here).
        expired_at = minted + 300 - margin
        late = [call for call in calls if call[0].at >= expired_at]
        assert len(late) <= len(stack.sessions) * late_calls_bound(window.ended - expired_at)
        # Recovery is automatic: the first ask after a session's window mints again.
        assert recovery.seconds is not None
        assert recovery.seconds <= MISS_BACKOFF_MAX + 1
        assert recovery.tally.expired == recovery.tally.expired_upstream == 0
        assert set(recovery.tally.no_tip) <= {"unavailable"}

        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and r.name == "agent_identity.tip"
        ]
        assert len(warnings) == len(ended)
        assert all("HTTP 503 ServiceUnavailable" in line for line in warnings)
        assert {key for key in stack.sessions if any(key in line for line in warnings)} == set(
            stack.sessions
        )
        assert no_secrets_in(caplog.records, await stack.secrets()) == []
