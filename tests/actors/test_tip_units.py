"""Units of the TIP refresher: the policy, the timer heap, workload rules, failure edges.

The renewal edges use a scripted :class:`UserTokenRenewer` and the local minter of
``test_tip_simulated.py`` (test doubles of our own interfaces) because they need answers the
sandbox does not give on demand (a refresh without an ID token, a renewed token refused).
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.tip_messages import (
    LoggedOut,
    NoTip,
    TipInfo,
    TipRefresherClient,
)
from agent_identity.actors.tip_mint import (
    DEFAULT_WORKLOAD,
    IdentityTipMinter,
    is_user_token_rejected,
    resolve_workload,
)
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.actors.tip_schedule import (
    MISS_BACKOFF_BASE,
    MISS_BACKOFF_GRACE,
    MISS_BACKOFF_MAX,
    RefreshPolicy,
    TimerHeap,
)
from agent_identity.actors.tip_session import RenewFailed, SessionTokens
from agent_identity.authz.tip_claims import DelegationChain, TipClaims
from agent_identity.config import IdentityConfig
from agent_identity.kernel import ActorStopped
from agent_identity.oidc import IdTokenClaims, OidcError, RefreshNotValidatedError, TokenSet
from agent_identity.storage import MemoryBackend, SessionRecord, SessionView
from agent_identity.volcengine import VolcengineError

from .test_tip_simulated import LocalMinter, Wall, user_token
from .test_tip_support import MINT, open_env

HOUR = 3600.0
KEY = "agent:main:alice"

# ------------------------------------------------------------------ RefreshPolicy


def test_policy_refresh_point_is_a_jittered_fraction() -> None:
    policy = RefreshPolicy()
    rng = random.Random(1)
    points = [policy.refresh_at(1000.0, 1000.0 + HOUR, rng) for _ in range(500)]
    assert all(1000 + 0.75 * HOUR <= p <= 1000 + 0.85 * HOUR for p in points)
    assert max(points) - min(points) > 0.05 * HOUR  # spread, not a herd


def test_policy_safety_margin_bounds_a_late_schedule() -> None:
    policy = RefreshPolicy(refresh_fraction=(0.9, 0.9), safety_margin=60.0)
    rng = random.Random(1)
    # 10 h lifetime: 90 % is 1 h before expiry, earlier than the margin.
    assert policy.refresh_at(0.0, 36000.0, rng) == pytest.approx(32400.0)
    # 100 s lifetime: the margin is capped at 10 % of it.
    assert policy.refresh_at(0.0, 100.0, rng) == pytest.approx(90.0)
    # Received after its expiry (a skewed clock): due at once.
    assert policy.refresh_at(200.0, 100.0, rng) <= 100.0


def test_policy_backoff_grows_and_is_capped() -> None:
    policy = RefreshPolicy(retry_base=2.0, retry_max=300.0, min_delay=1.0)
    rng = random.Random(3)
    firsts = [policy.retry_delay(1, rng) for _ in range(50)]
    assert all(1.0 <= d <= 2.0 for d in firsts)
    assert all(2.0 <= policy.retry_delay(2, rng) <= 4.0 for _ in range(50))
    assert all(150.0 <= policy.retry_delay(200, rng) <= 300.0 for _ in range(50))


def test_policy_miss_backoff_spares_one_failure_then_doubles_to_the_cap() -> None:
    policy = RefreshPolicy()
    rng = random.Random(3)
    assert (MISS_BACKOFF_GRACE, MISS_BACKOFF_BASE, MISS_BACKOFF_MAX) == (1, 1.0, 30.0)
    assert policy.miss_backoff(1, rng) == 0.0  # one failure holds no ask back
    for failures, ceiling in [(2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (500, 30.0)]:
        delays = [policy.miss_backoff(failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, delays)
        assert len(set(delays)) > 1  # jittered
    assert RefreshPolicy(miss_backoff_base=0.0).miss_backoff(9, rng) == 0.0  # turned off


def test_policy_serves_only_with_a_margin() -> None:
    policy = RefreshPolicy(serve_margin=5.0)
    assert policy.servable(100.0, 94.0)
    assert not policy.servable(100.0, 95.0)
    assert not policy.servable(100.0, 101.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"refresh_fraction": (0.0, 0.5)},
        {"refresh_fraction": (0.9, 0.8)},
        {"refresh_fraction": (0.5, 1.0)},
        {"safety_margin": -1.0},
        {"serve_margin": float("nan")},
        {"min_delay": float("inf")},
        {"retry_base": 0.0},
        {"retry_base": 10.0, "retry_max": 5.0},
        {"idle_ttl": 0.0},
        {"miss_backoff_base": -1.0},
        {"miss_backoff_base": 10.0, "miss_backoff_max": 5.0},
        {"miss_backoff_max": float("inf")},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        RefreshPolicy(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ TimerHeap


def test_timer_heap_orders_reschedules_and_cancels() -> None:
    heap = TimerHeap()
    assert heap.next_due() is None
    assert heap.pop_due(100.0) is None
    assert heap.schedule("b", 20.0)
    assert heap.schedule("a", 10.0)
    assert not heap.schedule("c", 30.0)
    assert (len(heap), "a" in heap, heap.when("a"), heap.when("zzz")) == (3, True, 10.0, None)
    assert heap.schedule("c", 5.0)  # rescheduled earlier: its old entry goes stale
    assert not heap.schedule("a", 25.0)
    assert heap.cancel("b")
    assert not heap.cancel("b")
    assert heap.next_due() == 5.0
    assert heap.pop_due(4.9) is None
    assert heap.pop_due(100.0) == "c"
    assert heap.pop_due(100.0) == "a"
    assert heap.pop_due(100.0) is None
    assert len(heap) == 0
    assert "scheduled=0" in repr(heap)


def test_timer_heap_compacts_stale_entries() -> None:
    heap = TimerHeap()
    for n in range(1000):
        heap.schedule("only", float(n))
    assert len(heap) == 1
    assert "entries=" in repr(heap)
    assert int(repr(heap).split("entries=")[1].rstrip(">")) < 200
    for n in range(300):
        heap.schedule(f"k{n}", float(n))
    for n in range(300):
        heap.cancel(f"k{n}")
    assert heap.pop_due(1e9) == "only"
    heap.schedule("x", 1.0)
    heap.clear()
    assert heap.next_due() is None


# ------------------------------------------------------------------ workload rules


def test_workload_priority() -> None:
    named = IdentityConfig(workload_name="wl", role_trn="trn:iam::1:role/r")
    assert resolve_workload(named, "agent") == "wl"
    assert resolve_workload(IdentityConfig(role_trn="trn:iam::1:role/r"), "agent") is None
    assert resolve_workload(IdentityConfig(), "agent") == "agent"
    assert resolve_workload(IdentityConfig(), None) == DEFAULT_WORKLOAD == "openclaw-agent"


@pytest.mark.parametrize(
    ("status", "code", "rejected"),
    [
        (400, "InvalidParameter.UserToken", True),
        (400, "TokenExpired", True),
        (401, "InvalidUserToken", True),
        (401, "InvalidAccessKey", False),
        (401, "SignatureDoesNotMatch", False),
        (400, "MissingParameter", False),
        (400, "InvalidTimestamp", False),
        (403, "AccessDenied", False),
        (404, "ResourceNotFound.WorkloadIdentity", False),
        (503, "ServiceUnavailable", False),
        (None, "ConnectionError", False),
    ],
)
def test_user_token_rejection(status: int | None, code: str, *, rejected: bool) -> None:
    error = VolcengineError(status=status, code=code, message="m")
    assert is_user_token_rejected(error) is rejected


# ------------------------------------------------------------------ minter answers


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (
            {"WorkloadAccessToken": "", "ExpiresAt": "2030-01-01T00:00:00Z"},
            "no WorkloadAccessToken",
        ),
        ({"WorkloadAccessToken": "a.b.c", "ExpiresAt": "soon"}, "unreadable ExpiresAt"),
    ],
)
async def test_minter_refuses_unusable_answers(result: dict[str, str], message: str) -> None:
    async with open_env() as env:
        env.sb.app.handlers[("2025-10-30", MINT)] = lambda _ctx: result
        minter = IdentityTipMinter(env.identity_client())
        assert "pool='default'" in repr(minter)
        with pytest.raises(VolcengineError) as caught:
            await minter.mint(env.sb.issue_user_token("agent-identity-dev", "alice"), None)
        assert caught.value.code == "InvalidResponse"
        assert message in caught.value.message
        assert minter.statistics().failures == 1


# ------------------------------------------------------------------ renewal edges


@dataclass
class ScriptedRenewer:
    """Answers ``refresh`` with what the test scripted (our UserTokenRenewer protocol)."""

    wall: Wall
    answer: Callable[[str], TokenSet] | OidcError | None = None
    calls: list[str] = field(default_factory=list)

    async def refresh(self, refresh_token: str, *, expected_sub: str | None = None) -> TokenSet:
        await trio.lowlevel.checkpoint()
        self.calls.append(refresh_token)
        if isinstance(self.answer, OidcError):
            raise self.answer
        if self.answer is not None:
            return self.answer(refresh_token)
        exp = int(self.wall() + HOUR)
        claims = IdTokenClaims(sub=expected_sub or "x", iss="local", aud=("c",), exp=exp, iat=0)
        return TokenSet(
            access_token="at",
            id_token=user_token(expected_sub or "x", exp),
            refresh_token=f"{refresh_token}+",
            claims=claims,
        )


@dataclass
class Rig:
    wall: Wall
    minter: LocalMinter
    renewer: ScriptedRenewer
    store: SessionStore
    refresher: TipRefresher
    tips: TipRefresherClient
    refused: set[str] = field(default_factory=set)

    async def login(self, *, expires_in: float = 4 * HOUR, refresh: str | None = "r0") -> str:
        exp = self.wall() + expires_in
        token = user_token("alice", exp)
        await self.store.client.put(
            SessionRecord(
                session_key=KEY,
                sub="alice",
                user_token=token,
                expires_at=exp,
                login_at=self.wall(),
                refresh_token=refresh,
            )
        )
        return token


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    wall = Wall()
    minter = LocalMinter(wall)
    renewer = ScriptedRenewer(wall)
    async with trio.open_nursery() as nursery:
        store = SessionStore(MemoryBackend(now=wall), now=wall)
        await nursery.start(store.run)
        refresher = TipRefresher(
            minter,
            store.client,
            renewer=renewer,
            rng=random.Random(1),
            wall=wall,
        )
        await nursery.start(refresher.run)
        rig = Rig(wall, minter, renewer, store, refresher, refresher.client)

        async def refuse() -> None:
            await trio.lowlevel.checkpoint()
            view = await store.client.get(KEY)
            if view is not None and view.user_token in rig.refused:
                raise VolcengineError(
                    status=400, code="InvalidParameter.UserToken", message="The token has expired."
                )

        minter.hook = refuse
        yield rig
        nursery.cancel_scope.cancel()


async def test_refused_then_renewed_token_also_refused_is_logged_out(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.refused.add(await rig.login())

    def renewed_but_refused(refresh_token: str) -> TokenSet:
        token = user_token("alice", rig.wall() + HOUR)
        rig.refused.add(token)
        claims = IdTokenClaims(sub="alice", iss="i", aud=("c",), exp=int(rig.wall() + HOUR), iat=0)
        return TokenSet(access_token="a", id_token=token, refresh_token="r1", claims=claims)

    rig.renewer.answer = renewed_but_refused
    outcome = await rig.tips.get_tip(KEY)
    assert isinstance(outcome, LoggedOut)
    assert "renewed user token was refused" in outcome.reason


async def test_early_renewal_whose_token_is_refused_is_logged_out(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.login(expires_in=100)  # within user_token_margin: renewed before minting

    def refused(refresh_token: str) -> TokenSet:
        token = user_token("alice", rig.wall() + HOUR)
        rig.refused.add(token)
        claims = IdTokenClaims(sub="alice", iss="i", aud=("c",), exp=int(rig.wall() + HOUR), iat=0)
        return TokenSet(access_token="a", id_token=token, refresh_token="r1", claims=claims)

    rig.renewer.answer = refused
    outcome = await rig.tips.get_tip(KEY)
    assert isinstance(outcome, LoggedOut)
    assert rig.renewer.calls == ["r0"]


async def test_renewal_outage_is_not_a_logout(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.refused.add(await rig.login())
    rig.renewer.answer = OidcError("token_request_failed", "The token endpoint is unreachable.")
    outcome = await rig.tips.get_tip(KEY)
    assert isinstance(outcome, NoTip)
    assert not isinstance(outcome, LoggedOut)
    assert outcome.code == "unavailable"
    assert "unreachable" in outcome.reason
    # Not remembered as dead: the next ask tries again (and works once renewal does).
    rig.renewer.answer = None
    info = await rig.tips.get_tip(KEY)
    assert isinstance(info, TipInfo)
    assert await rig.store.client.get_refresh_token(KEY) == "r0+"


async def test_renewed_then_control_plane_outage(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.refused.add(await rig.login())
    real = rig.minter.hook

    async def refuse_then_fail() -> None:
        if real is not None:
            await real()
        raise VolcengineError(status=503, code="ServiceUnavailable", message="down")

    rig.minter.hook = refuse_then_fail
    outcome = await rig.tips.get_tip(KEY)
    assert isinstance(outcome, NoTip)
    assert outcome.code == "unavailable"
    assert "ServiceUnavailable" in outcome.reason


async def test_refresh_without_a_new_id_token_keeps_the_rotated_refresh_token(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.refused.add(await rig.login())
    rig.renewer.answer = lambda _token: TokenSet(access_token="a", refresh_token="rotated")
    outcome = await rig.tips.get_tip(KEY)
    assert isinstance(outcome, LoggedOut)
    assert "no new ID token" in outcome.reason
    assert await rig.store.client.get_refresh_token(KEY) == "rotated"


def not_validated(rotated: str | None, *, spent: str = "r0") -> RefreshNotValidatedError:
    """What ``OidcClient.refresh`` raises when the provider answered but its JWKS is down."""
    tokens = TokenSet(access_token="at", id_token="unchecked", refresh_token=rotated or spent)
    cause = OidcError("jwks_failed", "The provider's signing keys answered HTTP 503.")
    return RefreshNotValidatedError(cause, tokens, rotated=rotated is not None)


async def test_an_unvalidated_refresh_keeps_the_rotated_refresh_token_and_is_no_logout(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    rig.refused.add(await rig.login())
    rig.renewer.answer = not_validated("r1")
    outcome = await rig.tips.get_tip(KEY)
    assert isinstance(outcome, NoTip)
    assert not isinstance(outcome, LoggedOut)
    assert outcome.code == "unavailable"
    assert "signing keys answered HTTP 503" in outcome.reason
    assert "rotated refresh token was kept" in outcome.reason
    # The provider spent r0: the store holds r1, with the old user token.
    assert await rig.store.client.get_refresh_token(KEY) == "r1"
    view = await rig.store.client.get(KEY)
    assert view is not None
    assert view.user_token in rig.refused
    # The next renewal redeems r1 (r0 would be refused: invalid_grant, a logout).
    rig.renewer.answer = None
    info = await rig.tips.get_tip(KEY)
    assert isinstance(info, TipInfo)
    assert rig.renewer.calls == ["r0", "r1"]
    assert await rig.store.client.get_refresh_token(KEY) == "r1+"
    stats = await rig.tips.statistics()
    assert (stats.logged_out, stats.failures, stats.renewals) == (0, 1, 1)


@dataclass
class FlakyStore:
    """The two calls a renewal makes of the session store; writes fail while ``down``."""

    refresh: str | None = "r0"
    down: bool = False
    hang: bool = False
    records: list[SessionRecord] = field(default_factory=list)

    async def get_refresh_token(self, key: str) -> str | None:
        await trio.lowlevel.checkpoint()
        return self.refresh

    async def put(self, record: SessionRecord) -> None:
        await trio.lowlevel.checkpoint()
        if self.hang:
            await trio.sleep_forever()
        if self.down:
            raise ActorStopped("session_store")
        self.records.append(record)
        self.refresh = record.refresh_token


async def test_session_tokens_never_lose_a_rotated_refresh_token(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.login()
    view = await rig.store.client.get(KEY)
    assert view is not None
    store = FlakyStore()
    tokens = SessionTokens(store, rig.renewer)  # type: ignore[arg-type]
    # Not rotated: nothing to write, still a transient failure.
    rig.renewer.answer = not_validated(None)
    same = await tokens.renew(view)
    assert same == RenewFailed(
        "renewing the user token failed: The provider's signing keys answered HTTP 503.", False
    )
    assert store.records == []
    # Rotated while the store cannot write: transient, and r1 is kept in memory.
    store.down = True
    rig.renewer.answer = not_validated("r1")
    lost = await tokens.renew(view)
    assert isinstance(lost, RenewFailed)
    assert not lost.final
    assert "not available" in lost.reason
    assert "kept in memory" in lost.reason
    # The store still holds the spent r0: the next renewal redeems r1 (and keeps r2).
    rig.renewer.answer = not_validated("r2")
    assert isinstance(await tokens.renew(view), RenewFailed)
    # A renewal that works while the store is down keeps its rotated token too.
    rig.renewer.answer = None
    assert isinstance(await tokens.renew(view), RenewFailed)
    assert rig.renewer.calls == ["r0", "r0", "r1", "r2"]
    # Back: the next one redeems r2+ and the store keeps r2++.
    store.down = False
    renewed = await tokens.renew(view)
    assert isinstance(renewed, SessionView)
    assert rig.renewer.calls[-1] == "r2+"
    assert store.refresh == "r2++"
    assert tokens.renewals == 1
    # Once stored, the store's token is the one again (a new login replaces it, too).
    store.refresh = "n0"
    await tokens.renew(view)
    assert rig.renewer.calls[-1] == "n0"


async def test_a_cancelled_write_does_not_lose_the_rotated_refresh_token(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.login()
    view = await rig.store.client.get(KEY)
    assert view is not None
    store = FlakyStore(hang=True)
    tokens = SessionTokens(store, rig.renewer)  # type: ignore[arg-type]
    rig.renewer.answer = None  # the provider renews and rotates r0 to r0+
    with trio.move_on_after(5) as scope:  # the flight's timeout, mid-write
        await tokens.renew(view)
    assert scope.cancelled_caught
    assert store.records == []
    store.hang = False
    renewed = await tokens.renew(view)  # redeems r0+, not the spent r0
    assert isinstance(renewed, SessionView)
    assert rig.renewer.calls == ["r0", "r0+"]
    assert store.refresh == "r0++"


async def test_a_logged_out_session_is_logged_at_info_once_per_cause(
    rig: Rig, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent_identity.tip")

    def lines() -> list[tuple[int, str]]:
        return [
            (r.levelno, r.getMessage())
            for r in caplog.records
            if r.name == "agent_identity.tip" and "logged out" in r.getMessage()
        ]

    rig.refused.add(await rig.login(refresh=None))
    for _ in range(5):
        assert isinstance(await rig.tips.get_tip(KEY), LoggedOut)
    [(level, first), *repeats] = lines()
    assert level == logging.INFO
    assert f"session {KEY!r} is logged out: " in first
    assert "no refresh token" in first
    assert repeats == [(logging.DEBUG, f"TIP refresher: session {KEY!r} is still logged out")] * 4
    # A new login whose token is refused too is a new finding: INFO again, once.
    await trio.sleep(1)  # a new token (the same claims would sign to the same token)
    rig.refused.add(await rig.login(refresh=None))
    for _ in range(3):
        assert isinstance(await rig.tips.get_tip(KEY), LoggedOut)
    assert [level for level, _ in lines()] == [logging.INFO] + [logging.DEBUG] * 4 + [
        logging.INFO
    ] + [logging.DEBUG] * 2
    # After a TIP was minted again, the next logout is reported again.
    await trio.sleep(1)
    await rig.login(refresh=None)
    assert isinstance(await rig.tips.get_tip(KEY), TipInfo)
    await trio.sleep(1)
    rig.refused.add(await rig.login(refresh=None))
    assert isinstance(await rig.tips.refresh(KEY), LoggedOut)
    assert [level for level, _ in lines()].count(logging.INFO) == 3
    assert (await rig.tips.statistics()).logged_out == 9


async def test_session_tokens_edges(rig: Rig, autojump_clock: trio.testing.MockClock) -> None:
    tokens = SessionTokens(rig.store.client, rig.renewer)
    assert "renewer=True" in repr(tokens)
    await rig.login()
    view = await tokens.get(KEY)
    assert view is not None
    # The session ended meanwhile: nothing to renew with.
    await rig.store.client.delete(KEY)
    gone = await tokens.renew(view)
    assert gone == RenewFailed("the session ended while its user token was being renewed", True)
    # No renewer at all.
    assert (await SessionTokens(rig.store.client, None).renew(view)).final  # type: ignore[union-attr]
    # The store stopped.
    await rig.store.stop()
    down = await tokens.renew(view)
    assert isinstance(down, RenewFailed)
    assert not down.final


async def test_a_store_that_stops_during_renewal(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.login()
    view = await rig.store.client.get(KEY)
    assert view is not None

    def stop_store(refresh_token: str) -> TokenSet:
        rig.store.request_stop()
        exp = int(rig.wall() + HOUR)
        claims = IdTokenClaims(sub="alice", iss="i", aud=("c",), exp=exp, iat=0)
        return TokenSet(access_token="a", id_token=user_token("alice", exp), claims=claims)

    rig.renewer.answer = stop_store
    failed = await SessionTokens(rig.store.client, rig.renewer).renew(view)
    assert isinstance(failed, RenewFailed)
    assert "not available to keep the renewal" in failed.reason


# ------------------------------------------------------------------ actor edges


async def test_a_new_agent_mid_flight_restarts_the_flight(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.login()
    rig.minter.latency = 10.0
    results: list[object] = []

    async def ask(agent: str | None) -> None:
        results.append(await rig.tips.get_tip(KEY, agent_id=agent))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, None)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "writer")
    assert len(results) == 2
    for result in results:
        assert isinstance(result, TipInfo)
        assert result.workload == "writer"
    assert len(rig.minter.calls["alice"]) == 1  # the first mint was cancelled mid-way


async def test_a_bug_in_a_flight_crashes_the_actor_and_fails_its_callers() -> None:
    wall = Wall()
    minter = LocalMinter(wall)

    async def boom() -> None:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("bug")

    minter.hook = boom
    store = SessionStore(MemoryBackend(now=wall), now=wall)
    refresher = TipRefresher(minter, store.client, wall=wall)
    assert "tip_refresher" in repr(refresher.client)
    with pytest.RaisesGroup(RuntimeError, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await nursery.start(refresher.run)
            with pytest.raises(RuntimeError, match="already running"):
                await refresher.run()
            await store.client.put(
                SessionRecord(
                    session_key=KEY,
                    sub="alice",
                    user_token=user_token("alice", wall() + HOUR),
                    expires_at=wall() + HOUR,
                    login_at=wall(),
                )
            )
            with pytest.raises(ActorStopped):
                await refresher.client.get_tip(KEY)


def test_constructor_checks() -> None:
    wall = Wall()
    store = SessionStore(MemoryBackend(now=wall), now=wall)
    with pytest.raises(ValueError, match="max_background_mints"):
        TipRefresher(LocalMinter(wall), store.client, max_background_mints=0)
    stats = TipRefresher(LocalMinter(wall), store.client).tip_statistics()
    assert (stats.cached, stats.timer_tasks, stats.actor.running) == (0, 0, False)


def test_tip_info_expires_in() -> None:
    info = TipInfo(
        session_key=KEY,
        token="t",
        sub="alice",
        chain=DelegationChain(("a",)),
        workload=None,
        issued_at=None,
        expires_at=100.0,
        refresh_at=None,
        parent_key=None,
        cached=True,
        claims=TipClaims(sub="alice", chain=DelegationChain(("a",))),
    )
    assert info.expires_in(40.0) == 60.0
