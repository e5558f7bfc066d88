"""The approval broker: TTL, single use, exact match, sessions, waiting, sweeps (mock clock)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_identity.actors.approval_broker import (
    DEFAULT_APPROVAL_TTL,
    ApprovalBroker,
    ApprovalSweeper,
)
from agent_identity.actors.approval_messages import ApprovalBrokerClient, Open, Sweep
from agent_identity.actors.approval_types import (
    APPROVAL_ID_PREFIX,
    DESCRIPTION_MAX_LENGTH,
    HOST_TIMEOUT_CAP_MS,
    MAX_APPROVAL_ID_LENGTH,
    TITLE_MAX_LENGTH,
    Approval,
    ApprovalOutcome,
    ApprovalStatus,
    DecisionResult,
    RefusalReason,
    params_digest,
    require_approval_payload,
)
from agent_identity.config import AuthzConfig
from agent_identity.kernel import ActorStopped, Reply, Supervisor

A = "agent:main:telegram:direct:42"
B = "agent:main:telegram:direct:43"
CMD = {"command": "rm -rf /tmp/build", "workdir": "/srv", "env": {"A": "1"}}
TTL = 60.0


async def start(
    nursery: trio.Nursery, *, sweep: bool = False, **kwargs: Any
) -> tuple[ApprovalBroker, ApprovalBrokerClient]:
    broker = ApprovalBroker(**{"ttl": TTL, **kwargs})
    await nursery.start(broker.run)
    if sweep:
        await nursery.start(broker.sweeper().run)
    return broker, ApprovalBrokerClient(broker.address)


async def ask(
    client: ApprovalBrokerClient,
    session: str = A,
    params: dict[str, Any] | None = None,
    tool: str = "exec",
) -> Approval:
    return await client.request(
        session,
        tool,
        CMD if params is None else params,
        risk="high",
        reason="Destructive: recursive delete",
        summary="rm -rf /tmp/build",
    )


@pytest.fixture
async def broker_client(nursery: trio.Nursery) -> ApprovalBrokerClient:
    _, client = await start(nursery)
    return client


# ----------------------------------------------------------------------- opening and ids


async def test_request_opens_a_pending_approval(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery)
    await trio.sleep(5)
    approval = await ask(client)
    assert approval.id.startswith(APPROVAL_ID_PREFIX)
    assert len(approval.id) >= len(APPROVAL_ID_PREFIX) + 32  # 192 random bits
    assert (approval.session_key, approval.tool_name, approval.risk) == (A, "exec", "high")
    assert approval.params_digest == params_digest(CMD)
    assert approval.reason == "Destructive: recursive delete"
    assert approval.summary == "rm -rf /tmp/build"
    assert (approval.created_at, approval.expires_at) == (5, 5 + TTL)
    assert approval.status is ApprovalStatus.PENDING
    assert approval.status.live
    assert (approval.decided_by, approval.decided_at) == (None, None)
    other = await ask(client)
    assert other.id != approval.id
    assert await client.get(approval.id) == approval
    assert await client.get("apr_nope") is None
    # The params themselves are not kept anywhere in the snapshot.
    assert "/srv" not in repr(approval)


async def test_approve_allows_exactly_one_use_of_exactly_that_call(
    broker_client: ApprovalBrokerClient,
) -> None:
    client = broker_client
    approval = await ask(client)
    assert not await client.consume(A, "exec", CMD)  # not approved yet
    result = await client.approve(approval.id, actor="telegram:42", session_key=A)
    assert result.ok
    assert result.refusal is None
    assert result.approval is not None
    assert result.approval.status is ApprovalStatus.APPROVED
    assert result.approval.decided_by == "telegram:42"
    assert result.message == f"Approved exec call {approval.id}."
    # Other params (one byte off, extra key), another tool: refused and not used up.
    assert not await client.consume(A, "exec", {**CMD, "command": "rm -rf /"})
    assert not await client.consume(A, "exec", {**CMD, "extra": None})
    assert not await client.consume(A, "write", CMD)
    # Key order does not matter: the digest is of canonical JSON.
    assert await client.consume(A, "exec", dict(reversed(list(CMD.items()))))
    # Single use.
    assert not await client.consume(A, "exec", CMD)
    stats = await client.statistics()
    assert (stats.opened, stats.approved, stats.consumed, stats.consume_refused) == (1, 1, 1, 5)
    assert (stats.pending, stats.awaiting_use, stats.remembered) == (0, 0, 1)
    finished = await client.get(approval.id)
    assert finished is not None
    assert finished.status is ApprovalStatus.CONSUMED
    assert finished.decided_by == "telegram:42"
    # A consumed approval is decided: approving again is refused.
    again = await client.approve(approval.id, actor="telegram:42", session_key=A)
    assert again.refusal is RefusalReason.ALREADY_DECIDED
    assert again.approval == finished


async def test_two_identical_approvals_are_used_oldest_first(
    broker_client: ApprovalBrokerClient,
) -> None:
    client = broker_client
    first, second = await ask(client), await ask(client)
    for approval in (first, second):
        assert (await client.approve(approval.id, actor="op")).ok
    assert await client.consume(A, "exec", CMD)
    assert [a.id for a in await client.list()] == [second.id]
    assert await client.consume(A, "exec", CMD)
    assert not await client.consume(A, "exec", CMD)


async def test_another_session_can_neither_use_nor_decide(
    broker_client: ApprovalBrokerClient,
) -> None:
    client = broker_client
    approval = await ask(client, A)
    for decide in (client.approve, client.reject):
        refused = await decide(approval.id, actor="telegram:43", session_key=B)
        assert not refused.ok
        assert refused.refusal is RefusalReason.WRONG_SESSION
        assert refused.approval is None  # session B learns nothing about it
        assert "another session" in refused.message
    assert (await client.get(approval.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]
    # An operator (no session key) may decide; then only session A may use it.
    assert (await client.approve(approval.id, actor="operator uid 1000")).ok
    assert not await client.consume(B, "exec", CMD)
    assert await client.consume(A, "exec", CMD)
    assert (await client.statistics()).refused == {"wrong_session": 2}


async def test_reject_blocks_the_call_and_first_decision_wins(
    broker_client: ApprovalBrokerClient,
) -> None:
    client = broker_client
    approval = await ask(client)
    rejected = await client.reject(approval.id, actor="telegram:42", session_key=A)
    assert rejected.ok
    assert rejected.approval is not None
    assert rejected.approval.status is ApprovalStatus.REJECTED
    assert rejected.message == f"Rejected exec call {approval.id}."
    assert not await client.consume(A, "exec", CMD)
    assert await client.wait(approval.id) is ApprovalOutcome.REJECTED
    late = await client.approve(approval.id, actor="operator")
    assert late.refusal is RefusalReason.ALREADY_DECIDED
    assert "already decided" in late.message
    # The reverse: a late host timeout cannot flip an approval.
    other = await ask(client)
    assert (await client.approve(other.id, actor="telegram:42", session_key=A)).ok
    flip = await client.resolve_host_decision(other.id, "timeout")
    assert flip.refusal is RefusalReason.ALREADY_DECIDED
    assert await client.consume(A, "exec", CMD)
    stats = await client.statistics()
    assert (stats.rejected, stats.approved) == (1, 1)


async def test_unknown_and_malformed_ids(broker_client: ApprovalBrokerClient) -> None:
    client = broker_client
    for bad in ("", "apr_unknown", "x" * (MAX_APPROVAL_ID_LENGTH + 1), "apr_\n; rm -rf"):
        result = await client.approve(bad, actor="op")
        assert result == DecisionResult(ok=False, refusal=RefusalReason.UNKNOWN)
        assert "No such approval" in result.message
        assert await client.wait(bad) is ApprovalOutcome.UNKNOWN
        assert await client.get(bad) is None


# --------------------------------------------------------------------------------- TTL


async def test_an_approval_expires_after_the_ttl(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery)
    approved = await ask(client)
    pending = await ask(client, params={"command": "sudo reboot"})
    assert (await client.approve(approved.id, actor="op")).ok
    await trio.sleep(TTL - 0.001)
    assert len(await client.list()) == 2
    await trio.sleep(0.001)
    # Approved but unused, and still pending: both gone at the TTL.
    assert not await client.consume(A, "exec", CMD)
    refused = await client.approve(pending.id, actor="op")
    assert refused.refusal is RefusalReason.EXPIRED
    assert refused.approval is not None
    assert refused.approval.status is ApprovalStatus.EXPIRED
    assert "expired" in refused.message
    assert await client.wait(approved.id) is ApprovalOutcome.EXPIRED
    stats = await client.statistics()
    assert (stats.expired, stats.pending, stats.awaiting_use, stats.remembered) == (2, 0, 0, 2)
    # Finished approvals are remembered for one more TTL, then unknown.
    await trio.sleep(TTL)
    assert (await client.approve(pending.id, actor="op")).refusal is RefusalReason.UNKNOWN
    assert (await client.statistics()).remembered == 0


async def test_ttl_comes_from_the_config() -> None:
    broker = ApprovalBroker.from_config(AuthzConfig(approval_ttl_seconds=42))
    assert broker.ttl == 42.0
    assert broker.name == "approval_broker"
    assert ApprovalBroker().ttl == DEFAULT_APPROVAL_TTL


# ----------------------------------------------------------------------------- waiting


async def test_wait_resolves_on_approve_reject_and_expiry(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    broker, client = await start(nursery, sweep=True)
    outcomes: dict[str, tuple[ApprovalOutcome, float]] = {}

    async def wait(label: str, approval_id: str) -> None:
        outcomes[label] = (await client.wait(approval_id), trio.current_time())

    first, second, third = [await ask(client, params={"n": n}) for n in range(3)]
    async with trio.open_nursery() as waiters:
        for label, approval in (("approve", first), ("reject", second), ("expire", third)):
            waiters.start_soon(wait, label, approval.id)
        await trio.testing.wait_all_tasks_blocked()
        assert broker.statistics().deferred == 3  # kept as replies; the mailbox is free
        assert (await client.statistics()).waiters == 3
        await trio.sleep(10)
        await client.approve(first.id, actor="op")
        await trio.sleep(10)
        await client.reject(second.id, actor="op")
    approve, reject, (expire, at) = outcomes["approve"], outcomes["reject"], outcomes["expire"]
    assert approve[0] is ApprovalOutcome.APPROVED
    assert approve[1] == 10
    assert reject[0] is ApprovalOutcome.REJECTED
    assert reject[1] == 20
    # Expiry is noticed by the sweeper within one tick of the TTL.
    assert expire is ApprovalOutcome.EXPIRED
    assert TTL <= at <= TTL + 1
    assert (await client.statistics()).waiters == 0
    # Approved but never used, it expired with the others.
    assert await client.wait(first.id) is ApprovalOutcome.EXPIRED


async def test_a_waiters_deadline_travels_and_it_is_dropped_by_the_sweep(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    broker, client = await start(nursery, sweep=True)
    approval = await ask(client)
    with trio.move_on_after(5) as scope:
        await client.wait(approval.id)
    assert scope.cancelled_caught
    assert trio.current_time() == 5
    await trio.sleep(1.5)  # one sweep later the broker has let go of the reply
    assert (await client.statistics()).waiters == 0
    assert broker.statistics().deferred == 0
    # The approval itself is unaffected.
    assert (await client.approve(approval.id, actor="op")).ok


async def test_the_sweep_fails_a_kept_reply_whose_deadline_passed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    broker, client = await start(nursery)
    approval = await ask(client)
    reply: Reply[ApprovalOutcome] = Reply(deadline=trio.current_time() + 3)
    from agent_identity.actors.approval_messages import Wait

    await broker.address.tell(Wait(reply, approval.id))
    await trio.sleep(3)
    broker.address.try_tell(Sweep())
    with pytest.raises(trio.TooSlowError):
        await reply.wait()
    assert (await client.statistics()).waiters == 0


async def test_waiters_fail_with_actor_stopped_when_the_broker_stops(
    nursery: trio.Nursery,
) -> None:
    broker, client = await start(nursery)
    approval = await ask(client)
    errors: list[str] = []

    async def wait() -> None:
        with pytest.raises(ActorStopped):
            await client.wait(approval.id)
        errors.append("stopped")

    async with trio.open_nursery() as waiters:
        waiters.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        await broker.stop()
    assert errors == ["stopped"]


# ------------------------------------------------------------------------ sweeps, bounds


async def test_the_sweeper_expires_approvals_with_no_other_traffic(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    broker, client = await start(nursery)
    sweeper = ApprovalSweeper(broker.address, interval=10)
    await nursery.start(sweeper.run)
    approval = await ask(client)
    seen: list[tuple[ApprovalOutcome, float]] = []

    async def wait() -> None:
        seen.append((await client.wait(approval.id), trio.current_time()))

    nursery.start_soon(wait)
    await trio.sleep(TTL + 5)
    assert sweeper.ticks == 6
    # Nothing but the sweeper's tick at t=60 could have expired it then.
    assert seen == [(ApprovalOutcome.EXPIRED, TTL)]
    assert (await client.statistics()).expired == 1
    sweeper.request_stop()
    await trio.testing.wait_all_tasks_blocked()


async def test_sweeper_under_a_supervisor_and_with_a_full_or_stopped_mailbox(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    broker = ApprovalBroker(ttl=TTL)
    sweeper = broker.sweeper(interval=1)
    sup = Supervisor([broker.child_spec(), sweeper.child_spec()], name="approvals")
    await nursery.start(sup.run)
    await trio.sleep(3.5)
    assert sweeper.ticks == 3
    await broker.stop()  # ticks to a stopped broker are skipped, not errors
    await trio.sleep(2)
    await sup.stop()
    with pytest.raises(ValueError, match="interval"):
        ApprovalSweeper(broker.address, interval=0)


async def test_bounds_cancel_the_oldest(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery, max_per_session=2, max_pending=3)
    a1 = await ask(client, A, {"n": 1})
    a2 = await ask(client, A, {"n": 2})
    a3 = await ask(client, A, {"n": 3})  # A has 2: a1 goes
    assert await client.wait(a1.id) is ApprovalOutcome.CANCELLED
    assert (await client.approve(a1.id, actor="op")).refusal is RefusalReason.UNKNOWN
    b1 = await ask(client, B, {"n": 1})
    b2 = await ask(client, B, {"n": 2})  # 3 overall: a2 goes
    assert [a.id for a in await client.list()] == [a3.id, b1.id, b2.id]
    assert [a.id for a in await client.list(A)] == [a3.id]
    assert [a.id for a in await client.list(B)] == [b1.id, b2.id]
    assert (await client.get(a2.id)).status is ApprovalStatus.CANCELLED  # type: ignore[union-attr]
    assert (await client.statistics()).cancelled == 2
    # Remembered finished approvals are bounded too: the oldest are forgotten first.
    for approval in (a3, b1, b2):
        await client.reject(approval.id, actor="op")
    stats = await client.statistics()
    assert (stats.remembered, stats.pending) == (3, 0)
    assert await client.get(a1.id) is None
    assert await client.get(a2.id) is None
    assert (await client.get(b2.id)).status is ApprovalStatus.REJECTED  # type: ignore[union-attr]


async def test_discard_cancels_a_sessions_approvals(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery)
    mine = await ask(client, A)
    theirs = await ask(client, B)
    outcome: list[ApprovalOutcome] = []

    async def wait() -> None:
        outcome.append(await client.wait(mine.id))

    async with trio.open_nursery() as waiters:
        waiters.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert await client.discard(A) == 1
    assert outcome == [ApprovalOutcome.CANCELLED]
    assert await client.discard(A) == 0
    assert [a.id for a in await client.list()] == [theirs.id]
    assert (await client.approve(mine.id, actor="op")).refusal is RefusalReason.UNKNOWN


# ------------------------------------------------------------------- host and validation


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        ("allow-once", ApprovalStatus.APPROVED),
        ("allow-always", ApprovalStatus.APPROVED),
        ("deny", ApprovalStatus.REJECTED),
        ("timeout", ApprovalStatus.REJECTED),
        ("cancelled", ApprovalStatus.REJECTED),
        ("something-new", ApprovalStatus.REJECTED),
    ],
)
async def test_host_decisions(
    broker_client: ApprovalBrokerClient, decision: str, status: ApprovalStatus
) -> None:
    approval = await ask(broker_client)
    result = await broker_client.resolve_host_decision(approval.id, decision)
    assert result.ok
    assert result.approval is not None
    assert result.approval.status is status
    assert result.approval.decided_by == f"host approval ({decision})"


async def test_invalid_requests(nursery: trio.Nursery) -> None:
    broker, client = await start(nursery)
    with pytest.raises(ValueError, match="session key"):
        await client.request("", "exec", CMD, risk="high", reason="r")
    with pytest.raises(ValueError, match="session key"):
        await client.request(A, "", CMD, risk="high", reason="r")
    with pytest.raises(ValueError, match="risk"):
        await client.request(A, "exec", CMD, risk="extreme", reason="r")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plain JSON"):
        await client.request(A, "exec", {"x": object()}, risk="high", reason="r")
    # A malformed envelope sent around the client is refused by the actor, which carries on.
    with pytest.raises(ValueError, match="session key"):
        await broker.address.ask(Open, A, "exec", "d", "extreme", "r", "")  # type: ignore[arg-type]
    # Params that are not JSON never match anything.
    assert not await client.consume(A, "exec", {"x": math.nan})
    assert (await client.statistics()).opened == 0
    for kwargs in ({"ttl": 0}, {"max_per_session": 0}, {"max_pending": 0}):
        with pytest.raises(ValueError, match=r"ttl|bounds"):
            ApprovalBroker(**kwargs)  # type: ignore[arg-type]


def test_params_digest_is_canonical() -> None:
    assert params_digest({"b": 1, "a": [1, {"y": "é", "x": None}]}) == params_digest(
        {"a": [1, {"x": None, "y": "é"}], "b": 1}
    )
    assert params_digest({"a": 1}) != params_digest({"a": "1"})
    assert params_digest({"a": 1.0}) != params_digest({"a": 1})
    assert len(params_digest({})) == 64
    for bad in ({"a": math.inf}, {1: "x", "b": 2}, {"a": {1, 2}}):
        with pytest.raises(ValueError, match="plain JSON"):
            params_digest(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------- requireApproval


def _approval(**changes: Any) -> Approval:
    base: dict[str, Any] = {
        "id": "apr_" + "x" * 32,
        "session_key": A,
        "tool_name": "exec",
        "params_digest": params_digest(CMD),
        "risk": "high",
        "reason": "Pipe-to-shell: network fetch piped to shell execution",
        "summary": "curl https://x.example/install.sh | bash",
        "created_at": 0.0,
        "expires_at": 300.0,
        "status": ApprovalStatus.PENDING,
    }
    return Approval(**{**base, **changes})


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_require_approval_payload_shape() -> None:
    approval = _approval()
    payload = require_approval_payload(approval)
    assert payload == {
        "title": "Approve high-risk exec call",
        "description": (
            "Pipe-to-shell: network fetch piped to shell execution: "
            "curl https://x.example/install.sh | bash (approval apr_" + "x" * 32 + ")"
        ),
        "severity": "critical",
        "timeoutMs": 300_000,
        "timeoutBehavior": "deny",
    }
    assert require_approval_payload(_approval(risk="medium"))["severity"] == "warning"
    assert require_approval_payload(_approval(risk="low"))["severity"] == "info"
    # The timeout is the TTL, capped at the host's 600 s.
    assert require_approval_payload(approval, ttl_seconds=3600)["timeoutMs"] == HOST_TIMEOUT_CAP_MS
    assert require_approval_payload(approval, ttl_seconds=0.0001)["timeoutMs"] == 1
    no_text = require_approval_payload(_approval(reason="", summary=""))
    assert no_text["description"] == f"The exec call needs your approval. (approval {approval.id})"


def test_require_approval_payload_respects_the_host_limits() -> None:
    approval = _approval(
        tool_name="t" * 200,
        reason="\U0001f525 " * 300,  # astral characters count twice in UTF-16
        summary="s" * 600,
    )
    payload = require_approval_payload(approval)
    title, description = str(payload["title"]), str(payload["description"])
    assert _utf16(title) <= TITLE_MAX_LENGTH
    assert title.endswith("\u2026")
    assert 1 <= _utf16(description) <= DESCRIPTION_MAX_LENGTH
    assert description.endswith(f"(approval {approval.id})")  # the id always survives


# --------------------------------------------------------------------------- property


@settings(max_examples=150, deadline=None)
@given(
    params=st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=4), children, max_size=3)
            ),
            max_leaves=6,
        ),
        max_size=4,
    ),
    decision=st.sampled_from(["approve", "reject", "none"]),
    same_session=st.booleans(),
    same_tool=st.booleans(),
    same_digest=st.booleans(),
    consumed_before=st.booleans(),
    elapsed=st.floats(min_value=0, max_value=2 * TTL),
)
def test_consume_succeeds_iff_approved_same_call_unused_and_unexpired(
    params: dict[str, Any],
    decision: str,
    same_session: bool,
    same_tool: bool,
    same_digest: bool,
    consumed_before: bool,
    elapsed: float,
) -> None:
    async def scenario() -> bool:
        async with trio.open_nursery() as nursery:
            _, client = await start(nursery)
            decoy = await ask(client, B, params)  # another session's identical call
            approval = await ask(client, A, params)
            if decision == "approve":
                await client.approve(approval.id, actor="op", session_key=A)
            elif decision == "reject":
                await client.reject(approval.id, actor="op", session_key=A)
            await client.approve(decoy.id, actor="op")
            if consumed_before:
                await client.consume(A, "exec", params)
            await trio.sleep(elapsed)
            result = await client.consume(
                A if same_session else B + ":other",
                "exec" if same_tool else "write",
                params if same_digest else {"wrapped": params},
            )
            nursery.cancel_scope.cancel()
        return result

    expected = (
        decision == "approve"
        and same_session
        and same_tool
        and same_digest
        and not consumed_before
        and elapsed < TTL
    )
    assert trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0)) is expected
