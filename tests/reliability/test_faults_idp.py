"""IdP faults and clocks: JWKS key rotation, and the control plane's clock skewed by ±2 minutes.

Same setting as ``test_faults_control_plane``. The sessions logged in through the user pool's
authorization-code flow, so each holds an id_token (the ``UserToken`` TIPs are minted from)
and a rotating refresh token; the refresher renews the id_token with it when it nears expiry
or the control plane refuses it.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
import trio
import trio.testing

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.actors.tip_schedule import MISS_BACKOFF_MAX

from .test_faults_support import MINT, POOL, no_secrets_in, open_stack, within_budget

HOUR = 3600.0


async def test_jwks_key_rotation_is_followed_without_a_logout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        before = stack.transport()
        start = stack.wire.mark()
        # The user pool signs with a new key and drops the old one at once: every session's
        # id_token is refused at its next mint, and renewed ones carry an unknown kid.
        new_kid = stack.sb.rotate_user_pool_key(POOL, grace_seconds=None)
        during = await stack.drive(1200, every=5)
        end = stack.wire.mark()
        after = stack.transport()

        during.assert_all_from_cache()

        # One refusal per session (a 400: not retried), one renewal each, one JWKS refetch
        # for all of them (the new key is cached once fetched).
        refused = after.errors_by_code["InvalidParameter.UserToken"]
        assert refused == len(stack.sessions)
        assert before.errors_by_code == {}
        assert within_budget(stack.wire.calls(start, end)) == 1
        stats = stack.refresher.tip_statistics()
        assert (stats.renewals, stats.logged_out, stats.failures) == (len(stack.sessions), 0, 0)
        jwks = stack.oidc.jwks_statistics()
        assert jwks is not None
        assert (jwks.refetches, jwks.refused_refetches) == (1, 0)
        renewed = await stack.stored_secrets()
        assert renewed.isdisjoint(stack.login_secrets)

        # Healthy throughout: nothing to recover from.
        recovery = await stack.recover(within=0)
        assert recovery.seconds == 0.0

        rotated = [
            r.getMessage() for r in caplog.records if "unknown signing key" in r.getMessage()
        ]
        assert rotated == [f"unknown signing key {new_kid!r}: fetching the JWKS again"]
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


async def test_key_rotation_while_the_jwks_endpoint_fails_logs_nobody_out(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    async with open_stack() as stack:
        await stack.drive(60)
        await stack.refresh_all()
        await stack.drive(200, every=2)
        stack.sb.rotate_user_pool_key(POOL, grace_seconds=None)
        jwks_path = urlsplit(stack.sb.user_pool_jwks_url(POOL)).path
        # Over the refreshes (225 to 255 s), ending before the TIPs expire.
        rule = stack.sb.faults.add(jwks_path, status=503)
        during = await stack.drive(80, every=2)
        stack.sb.faults.remove(rule)
        assert rule.hits > 0
        assert during.served == during.requests
        # Each session's renewal was answered by the provider, which spent its refresh
        # token, but could not be checked: the rotated refresh token was kept instead of lost.
        kept = [
            r.getMessage() for r in caplog.records if "refresh token was kept" in r.getMessage()
        ]
        assert {key for key in stack.sessions if any(key in line for line in kept)} == set(
            stack.sessions
        )
        recovery = await stack.recover(within=stack.policy.retry_max + 60)
        assert recovery.recovered
        assert recovery.tally.expired == 0
        stats = stack.refresher.tip_statistics()
        assert stats.logged_out == 0
        assert stats.renewals == len(stack.sessions)  # each renewed once the keys were back
        assert (await stack.stored_secrets()).isdisjoint(stack.login_secrets)
        assert not any("invalid_grant" in r.getMessage() for r in caplog.records)
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


@pytest.mark.parametrize("skew", [120.0, -120.0], ids=["ahead", "behind"])
async def test_a_skewed_control_plane_clock_changes_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, skew: float
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    # Skewed from the start: the logins' id_tokens, every TIP and every renewal are issued on
    # the control plane's (and IdP's) clock, "from the future" when it is ahead.
    async with open_stack(skew=skew) as stack:
        first, *_ = await stack.ask_all()
        assert isinstance(first, TipInfo)
        assert first.issued_at is not None
        assert first.issued_at - stack.clock() == skew
        # A TIP is taken to live its 300 s from its arrival, or to its ``exp`` if that reads
        # sooner here: the earlier of the two clocks' ends.
        assert first.expires_at - stack.clock() == 300 + min(skew, 0.0)
        before = stack.transport()
        # Two hours: every TIP refreshed about 28 times, every id_token renewed twice.
        during = await stack.drive(2 * HOUR, every=10)
        after = stack.transport()

        during.assert_all_from_cache()
        stats = stack.refresher.tip_statistics()
        assert (stats.logged_out, stats.failures) == (0, 0)
        assert stats.renewals >= 2 * len(stack.sessions)
        # ``X-Date`` two minutes off is within the signature's tolerance: no call failed.
        assert after.errors_by_code == before.errors_by_code == {}
        assert after.retries == before.retries == 0
        assert after.calls - before.calls >= 28 * len(stack.sessions)

        recovery = await stack.recover(within=0)
        assert recovery.seconds == 0.0
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert no_secrets_in(caplog.records, await stack.secrets()) == []


async def test_a_control_plane_clock_ahead_never_gets_an_expired_tip_served(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    del autojump_clock
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    # The control plane's clock runs 2 minutes ahead: a TIP minted now reads
    # ``exp = now + 120 + 300`` here, but is dead for the control plane in 300 s.
    async with open_stack(skew=120.0) as stack:
        await stack.drive(60)
        minted = await stack.refresh_all()
        info = await stack.tips.peek(stack.sessions[0])
        assert isinstance(info, TipInfo)
        assert info.issued_at is not None
        assert info.expires_at == info.issued_at - 120 + 300
        await stack.drive(200, every=2)
        # The refreshes fail, past the TIPs' true end and past their ``exp`` as read here.
        rule = stack.sb.faults.add(MINT, status=503)
        window = await stack.through(stack.removing([rule]), 300, every=2, within=60)
        assert window.ended - minted == 500
        during, recovery = window.during, window.recovery

        # Served from the cache until the margin before the *control plane's* expiry, then
        # refused; never a TIP the control plane (or a resource server on its clock) would
        # call expired.
        assert 0 < during.served == during.from_cache < during.requests
        assert during.expired == during.expired_upstream == 0
        assert during.no_tip == {"unavailable": during.requests - during.served}
        margin = stack.policy.serve_margin
        assert margin < during.least_left <= margin + 2
        within_budget(window.calls)

        # The TIPs ran out under the fault: the first ask after a session's miss back-off
        # mints again.
        assert recovery.seconds is not None
        assert recovery.seconds <= MISS_BACKOFF_MAX + 1
        assert recovery.tally.expired == recovery.tally.expired_upstream == 0
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings
        assert all("HTTP 503 ServiceUnavailable" in line for line in warnings)
        assert no_secrets_in(caplog.records, await stack.secrets()) == []
