"""The TIP refresher against the sandbox: outages, expiry, user token renewal, logouts, subagents.

Wall-clock time is moved with the shared :class:`WallClock` (the sandbox, the clients, the
store and the refresher all read it), so a TIP ages an hour in one step over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from agent_identity.actors.tip_messages import LoggedOut
from agent_identity.config import IdentityConfig
from agent_identity.sandbox.tokens import rotate_user_pool_key

from .test_tip_support import MINT, POOL, Env, claims_of, no_tip, open_env, tip

KEY = "agent:main:telegram:direct:42"
CHILD = "agent:main:subagent:7f3a"
PROPAGATE = IdentityConfig(subagent_tip_propagation=True)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with open_env() as opened:
        yield opened


# ------------------------------------------------------------------ outages and expiry


async def test_outage_keeps_serving_until_expiry_then_reports_it(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY, ttl=8 * 3600)
    first = tip(await tips.get_tip(KEY))
    assert first.refresh_at is not None
    assert first.expires_at - 3600 * 0.85 - 1 <= first.refresh_at
    assert first.refresh_at <= first.expires_at - 3600 * 0.15 + 1
    outage = env.sb.faults.add(action=MINT, status=503)
    # Past the refresh point, still valid: served from the cache, refreshed ahead (and failing).
    env.wall.advance(first.refresh_at - env.wall() + 60)
    served = tip(await tips.get_tip(KEY))
    assert served.token == first.token
    assert served.cached
    failed = no_tip(await tips.refresh(KEY))  # joins the refresh in flight, or makes one
    assert failed.code == "unavailable"
    assert "ServiceUnavailable" in failed.reason
    again = tip(await tips.get_tip(KEY))
    assert again.token == first.token
    assert tip(await tips.peek(KEY)).token == first.token
    [summary] = await tips.list_tips()
    assert summary.failures >= 1
    assert summary.last_error is not None
    assert "ServiceUnavailable" in summary.last_error
    stats = await tips.statistics()
    assert stats.failures >= 1
    assert stats.scheduled == 1  # the retry, with backoff
    # Past expiry: never served; the outage is reported.
    env.wall.advance(first.expires_at - env.wall())
    expired = no_tip(await tips.get_tip(KEY))
    assert expired.code == "unavailable"
    assert "ServiceUnavailable" in expired.reason
    assert no_tip(await tips.peek(KEY)).code == "not_cached"
    assert await tips.list_tips() == []
    assert (await tips.statistics()).cached == 0
    # The control plane is back: a new TIP.
    env.sb.faults.remove(outage)
    fresh = tip(await tips.get_tip(KEY))
    assert fresh.token != first.token
    assert fresh.expires_at > env.wall() + 3000


async def test_a_tip_within_the_serve_margin_is_never_served(env: Env) -> None:
    refresher, tips = await env.start()
    await env.login(KEY, ttl=8 * 3600)
    first = tip(await tips.get_tip(KEY))
    env.sb.faults.add(action=MINT, status=503)
    env.wall.advance(first.expires_at - env.wall() - refresher.policy.serve_margin + 0.5)
    assert no_tip(await tips.get_tip(KEY)).code == "unavailable"
    assert no_tip(await tips.peek(KEY)).code == "not_cached"


async def test_user_token_capped_tip_too_short_to_serve(env: Env) -> None:
    """The control plane caps a TIP at the user token's expiry; 3 s left is not servable."""
    _, tips = await env.start()
    await env.login(KEY, ttl=3)
    outcome = no_tip(await tips.get_tip(KEY))
    assert outcome.code == "unavailable"
    assert "expires in" in outcome.reason


# ------------------------------------------------------------------ logouts and renewals


async def test_refused_user_token_without_refresh_token_is_logged_out(env: Env) -> None:
    _, tips = await env.start()
    # The control plane says expired; the store (host clock behind) still has the session.
    await env.login(
        KEY, user_token=env.sb.issue_user_token(POOL, "alice", ttl=-60), expires_at=env.wall() + 600
    )
    outcome = await tips.get_tip(KEY)
    assert isinstance(outcome, LoggedOut)
    assert outcome.code == "logged_out"
    assert "expired" in outcome.reason
    assert "log in again" in outcome.reason
    # Remembered by the token's fingerprint: asking again costs no control-plane call.
    assert isinstance(await tips.get_tip(KEY), LoggedOut)
    assert env.sb.requests.count(MINT) == 1
    assert (await tips.statistics()).logged_out == 2
    # A new login mints again.
    await env.login(KEY)
    assert tip(await tips.get_tip(KEY)).sub == "alice"


async def test_expired_user_token_is_renewed_with_the_refresh_token(env: Env) -> None:
    oidc = env.oidc()
    tokens = await env.oidc_login(oidc)
    assert tokens.refresh_token is not None
    _, tips = await env.start(renewer=oidc)
    # The stored user token is refused as expired by the control plane.
    await env.login(
        KEY,
        user_token=env.sb.issue_user_token(POOL, "alice", ttl=-60),
        expires_at=env.wall() + 1200,
        refresh_token=tokens.refresh_token,
    )
    info = tip(await tips.get_tip(KEY))
    assert info.sub == "alice"
    assert info.expires_at > env.wall() + 3000
    assert env.sb.requests.count(MINT) == 2  # refused, then minted with the renewed token
    # The renewed record went back to the store, with the rotated refresh token.
    view = await env.sessions.get(KEY)
    assert view is not None
    assert claims_of(view.user_token)["exp"] > env.wall() + 3000
    assert view.expires_at == claims_of(view.user_token)["exp"]
    assert await env.sessions.get_refresh_token(KEY) not in (None, tokens.refresh_token)
    assert (await tips.statistics()).renewals == 1


async def test_user_token_about_to_expire_is_renewed_before_minting(env: Env) -> None:
    oidc = env.oidc()
    tokens = await env.oidc_login(oidc)
    assert tokens.id_token is not None
    assert tokens.refresh_token is not None
    refresher, tips = await env.start(renewer=oidc)
    await env.login(KEY, user_token=tokens.id_token, refresh_token=tokens.refresh_token)
    first = tip(await tips.get_tip(KEY))
    assert (await tips.statistics()).renewals == 0
    # Two minutes of user token left (< user_token_margin): renew first, then mint.
    view = await env.sessions.get(KEY)
    assert view is not None
    env.wall.advance(view.expires_at - env.wall() - 120)
    assert refresher.policy.user_token_margin > 120
    second = tip(await tips.refresh(KEY))
    assert second.token != first.token
    assert second.expires_at > env.wall() + 3000  # not capped at the old user token's expiry
    renewed = await env.sessions.get(KEY)
    assert renewed is not None
    assert renewed.user_token != tokens.id_token
    assert (await tips.statistics()).renewals == 1


async def test_early_renewal_failure_keeps_minting_with_the_current_token(env: Env) -> None:
    oidc = env.oidc()
    refresher, tips = await env.start(renewer=oidc)
    await env.login(KEY, ttl=200, refresh_token="spent-refresh-token")
    assert refresher.policy.user_token_margin > 200
    info = tip(await tips.get_tip(KEY))
    assert info.expires_at <= env.wall() + 200  # capped at the user token's expiry
    assert (await tips.statistics()).renewals == 0


async def test_revoked_user_token_with_a_spent_refresh_token_is_logged_out(env: Env) -> None:
    oidc = env.oidc()
    _, tips = await env.start(renewer=oidc)
    await env.login(KEY, refresh_token="not-a-refresh-token-the-pool-knows")
    rotate_user_pool_key(env.sb.state, POOL, grace_seconds=None)  # revokes every id_token
    outcome = await tips.get_tip(KEY)
    assert isinstance(outcome, LoggedOut)
    assert "InvalidParameter.UserToken" in outcome.reason
    assert "renewing the user token failed" in outcome.reason


async def test_revoked_user_token_is_renewed_and_the_session_kept(env: Env) -> None:
    oidc = env.oidc()
    tokens = await env.oidc_login(oidc)
    assert tokens.id_token is not None
    _, tips = await env.start(renewer=oidc)
    await env.login(KEY, user_token=tokens.id_token, refresh_token=tokens.refresh_token)
    first = tip(await tips.get_tip(KEY))
    rotate_user_pool_key(env.sb.state, POOL, grace_seconds=None)
    second = tip(await tips.refresh(KEY))
    assert second.token != first.token
    assert (await tips.statistics()).renewals == 1


async def test_session_gone_from_the_store_drops_the_tip(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY)
    tip(await tips.get_tip(KEY))
    await env.sessions.delete(KEY)
    assert no_tip(await tips.refresh(KEY)).code == "no_session"
    assert no_tip(await tips.peek(KEY)).code == "not_cached"
    assert (await tips.statistics()).scheduled == 0


async def test_control_plane_auth_failures_are_not_logouts(env: Env) -> None:
    """A 401 about our own signature is an outage of ours, not the user's logout."""
    _, tips = await env.start()
    await env.login(KEY)
    env.sb.faults.add(action=MINT, status=401, count=1)  # InvalidAccessKey
    outcome = no_tip(await tips.get_tip(KEY))
    assert outcome.code == "unavailable"
    assert not isinstance(outcome, LoggedOut)
    env.sb.faults.add(action=MINT, status=401, code="InvalidUserToken", count=1)
    assert isinstance(await tips.get_tip(KEY), LoggedOut)


# ------------------------------------------------------------------ subagent propagation


async def test_subagent_tip_has_one_more_act_level_and_refreshes(env: Env) -> None:
    _, tips = await env.start(PROPAGATE)
    await env.login(KEY)
    parent = tip(await tips.get_tip(KEY))
    child = tip(await tips.propagate(KEY, CHILD, agent_id="helper"))
    assert child.session_key == CHILD
    assert child.parent_key == KEY
    assert child.sub == "alice"
    assert child.chain.actors == ("helper", "openclaw-agent")
    assert len(child.chain) == len(parent.chain) + 1
    assert claims_of(child.token)["act"] == {"sub": "helper", "act": {"sub": "openclaw-agent"}}
    assert child.expires_at <= parent.expires_at  # capped by the parent TIP
    # The child session works like any other; propagating again is idempotent.
    assert tip(await tips.get_tip(CHILD)).token == child.token
    assert tip(await tips.propagate(KEY, CHILD, agent_id="helper")).token == child.token
    # Refreshed from the parent's TIP (cached: one mint only).
    mints = env.sb.requests.count(MINT)
    env.wall.advance(5)
    refreshed = tip(await tips.refresh(CHILD))
    assert refreshed.token != child.token
    assert refreshed.chain.actors == ("helper", "openclaw-agent")
    assert env.sb.requests.count(MINT) == mints + 1
    listed = {s.session_key: s for s in await tips.list_tips()}
    assert listed[CHILD].parent_key == KEY
    assert (await tips.statistics()).linked == 1


async def test_subagent_of_a_subagent_and_logout_of_the_root(env: Env) -> None:
    _, tips = await env.start(PROPAGATE)
    await env.login(KEY)
    grandchild = f"{CHILD}:subagent:99"
    tip(await tips.propagate(KEY, CHILD))
    deep = tip(await tips.propagate(CHILD, grandchild))
    assert deep.chain.actors == ("openclaw-agent",) * 3
    # After a flush, the children mint again through their parents.
    assert await tips.flush() == 3
    again = tip(await tips.get_tip(grandchild))
    assert again.chain.actors == ("openclaw-agent",) * 3
    assert tip(await tips.peek(KEY)).cached  # minted on the way
    # Logging out the root drops the whole family.
    assert await tips.forget(KEY) is True
    for key in (KEY, CHILD, grandchild):
        assert no_tip(await tips.peek(key)).code == "not_cached"
    assert no_tip(await tips.get_tip(grandchild)).code == "no_session"
    assert (await tips.statistics()).linked == 0


async def test_propagation_refusals(env: Env) -> None:
    _, off = await env.start(name="off")
    await env.login(KEY)
    assert no_tip(await off.propagate(KEY, CHILD)).code == "propagation_disabled"
    _, tips = await env.start(PROPAGATE, name="on")
    assert no_tip(await tips.propagate(KEY, KEY)).code == "invalid_link"
    tip(await tips.propagate(KEY, CHILD))
    assert no_tip(await tips.propagate(CHILD, KEY)).code == "invalid_link"
    # Too deep a family.
    parent = CHILD
    for depth in range(20):
        outcome = await tips.propagate(parent, f"{parent}:{depth}")
        if no_tip_code(outcome) == "invalid_link":
            break
        parent = f"{parent}:{depth}"
    else:  # pragma: no cover - the limit must stop it
        pytest.fail("no depth limit")
    # A parent without a session.
    lone = no_tip(await tips.propagate("agent:main:nobody", "agent:main:subagent:x"))
    assert lone.code == "no_session"
    assert "parent session" in lone.reason


def no_tip_code(outcome: object) -> str | None:
    return getattr(outcome, "code", None)


async def test_subagent_of_a_logged_out_parent_is_logged_out(env: Env) -> None:
    _, tips = await env.start(PROPAGATE)
    await env.login(
        KEY, user_token=env.sb.issue_user_token(POOL, "alice", ttl=-60), expires_at=env.wall() + 600
    )
    outcome = await tips.propagate(KEY, CHILD)
    assert isinstance(outcome, LoggedOut)
    assert outcome.reason.startswith("the parent session has no TIP")


async def test_relinking_a_subagent_to_another_parent(env: Env) -> None:
    _, tips = await env.start(PROPAGATE)
    await env.login(KEY, "alice")
    await env.login("agent:main:bob", "bob")
    assert tip(await tips.propagate(KEY, CHILD)).sub == "alice"
    moved = tip(await tips.propagate("agent:main:bob", CHILD))
    assert moved.sub == "bob"
    assert moved.parent_key == "agent:main:bob"


async def test_subagent_mint_failure_is_reported(env: Env) -> None:
    _, tips = await env.start(PROPAGATE)
    await env.login(KEY)
    tip(await tips.get_tip(KEY))
    env.sb.faults.add(action=MINT, status=503)
    outcome = no_tip(await tips.propagate(KEY, CHILD))
    assert outcome.code == "unavailable"
    assert "subagent" in outcome.reason


async def test_concurrent_askers_of_a_new_subagent_share_its_mint(env: Env) -> None:
    _, tips = await env.start(PROPAGATE)
    await env.login(KEY)
    tip(await tips.get_tip(KEY))
    env.sb.faults.add(action=MINT, latency=0.2, count=1)
    before = env.sb.requests.count(MINT)
    results: list[object] = []

    async def ask() -> None:
        results.append(await tips.get_tip(CHILD))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tips.propagate, KEY, CHILD)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(10):
            nursery.start_soon(ask)
    assert len({tip(r).token for r in results}) == 1  # type: ignore[arg-type]
    assert env.sb.requests.count(MINT) == before + 1
