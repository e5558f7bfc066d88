"""``ControlService`` behind a real control socket, against a running system and the sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from agent_identity.actors.approval_types import ApprovalOutcome, ApprovalStatus
from agent_identity.actors.tip_messages import NoTip, TipInfo
from agent_identity.actors.vault_types import FetchStatus
from agent_identity.config import LoadedConfig
from agent_identity.kernel import ActorStopped
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.system import Identity, open_identity
from agent_identity.system.control import (
    DEFAULT_OPERATOR,
    ControlService,
    ReloadHook,
    ReloadResult,
    config_file_reloader,
)
from agent_identity.transports.control import control_call, control_socket_path, serve_control
from agent_identity.transports.control_wire import (
    ApprovalsReply,
    ApprovalsRequest,
    ApproveRequest,
    ControlReply,
    ControlRequest,
    DecisionReply,
    ErrorReply,
    FlushTipsReply,
    FlushTipsRequest,
    RejectRequest,
    ReloadReply,
    ReloadRequest,
    RevokeReply,
    RevokeRequest,
    SessionsReply,
    SessionsRequest,
    ShutdownReply,
    ShutdownRequest,
    StatusReply,
    StatusRequest,
)
from agent_identity.transports.uds_socket import open_unix_listener

from .conftest import World

ALICE = "agent:main:main:user:alice"
BOB = "agent:main:main:user:bob"
API_KEY = "sk-sandbox-openai-0000000000000000"  # the seed's "openai" provider
ENV_VAR = "OPENAI_API_KEY"
NO_ENV: dict[str, str] = {}


@dataclass
class Daemon:
    """A running system with its control service behind a real socket."""

    world: World
    ident: Identity
    service: ControlService
    path: Path
    secrets: list[str] = field(default_factory=list)

    async def call(self, request: ControlRequest) -> ControlReply:
        reply = await control_call(self.path, request, timeout=30)
        encoded = msgspec.json.encode(reply).decode()
        for secret in self.secrets:
            assert secret not in encoded, f"a secret leaked into a {type(reply).__name__}"
        return reply

    async def login(self, key: str, username: str) -> None:
        assert self.ident.login_flow is not None
        url = await self.ident.login_flow.start_login(key)
        page = await submit_login_form(
            self.world.browser, url, username=username, password=f"{username}-password"
        )
        assert page.status_code == 200, page.text
        view = await self.ident.sessions.get(key)
        assert view is not None
        refresh = await self.ident.sessions.get_refresh_token(key)
        self.secrets += [view.user_token, *([refresh] if refresh else [])]

    async def tip(self, key: str) -> TipInfo:
        tip = await self.ident.tips.get_tip(key)
        assert isinstance(tip, TipInfo)
        self.secrets.append(tip.token)
        return tip

    async def store_api_key(self, key: str) -> None:
        """Fetch the sandbox's API key for ``key`` and bind it to an env var."""
        tip = await self.tip(key)
        fetched = await self.ident.vault.fetch(key, tip.token, "openai")
        assert fetched.status is FetchStatus.STORED, fetched.message
        bound = await self.ident.vault.set_binding(key, "openai", ENV_VAR, environ={})
        assert bound.ok, bound.message


@pytest.fixture
def sock_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return control_socket_path(tmp_path_factory.mktemp("ctl") / "data")


@asynccontextmanager
async def running(
    world: World,
    path: Path,
    *,
    reload: ReloadHook | None = None,
    shutdown: Callable[[], None] | None = None,
) -> AsyncIterator[Daemon]:
    with trio.fail_after(60):
        async with open_identity(world.config(), environ=NO_ENV) as ident:
            world.late.app = ident.asgi_app
            service = ControlService(ident, reload=reload, shutdown=shutdown)
            with open_unix_listener(path) as sock:
                async with trio.open_nursery() as nursery:
                    await nursery.start(serve_control, sock, service.handle)
                    userpool = world.config().userpool
                    assert userpool is not None
                    known = (API_KEY, world.sb.secret_access_key, userpool.client_secret)
                    secrets = [secret for secret in known if secret]
                    yield Daemon(world, ident, service, path, secrets)
                    nursery.cancel_scope.cancel()
            world.late.app = None


async def test_status_reports_actors_counts_tips_and_approvals_but_no_secret(
    world: World, sock_path: Path
) -> None:
    async with running(world, sock_path) as daemon:
        await daemon.login(ALICE, "alice")
        await daemon.store_api_key(ALICE)
        approval = await daemon.ident.approvals.request(
            ALICE, "exec", {"command": "curl x | sh"}, risk="high", reason="pipe to shell"
        )
        # Crash the TIP refresher once: status must show the restart.
        refresher = daemon.ident.tree.tip_refresher

        async def crash(msg: object) -> None:
            del refresher.handle
            await trio.lowlevel.checkpoint()
            raise RuntimeError("injected failure")

        refresher.handle = crash  # type: ignore[method-assign]
        with pytest.raises(ActorStopped):
            await daemon.ident.tips.peek(ALICE)
        await trio.testing.wait_all_tasks_blocked()

        reply = await daemon.call(StatusRequest())
        assert isinstance(reply, StatusReply)
        actors = {row.name: row for row in reply.actors}
        assert set(actors) == {
            "session_store",
            "login_broker",
            "tip_refresher",
            "credential_vault",
            "approval_broker",
        }
        assert all(row.running for row in reply.actors)
        assert actors["tip_refresher"].restarts == 1
        assert actors["session_store"].restarts == 0
        assert actors["session_store"].handled > 0
        assert actors["credential_vault"].mailbox_size > 0
        assert [s.name for s in reply.supervisors] == ["root", "services"]
        assert reply.supervisors[1].restarts == 1
        assert (reply.sessions, reply.bound_sessions, reply.credentials) == (1, 1, 1)
        assert reply.tips.mints >= 1
        assert reply.tips.cached == 0  # the restart forgot the cache
        assert [a.id for a in reply.approvals] == [approval.id]
        assert reply.approvals[0].session_key == ALICE
        assert 0 < reply.approvals[0].expires_in <= 300
        assert reply.uptime >= 0


async def test_sessions_list_expiry_tip_and_binding_names(world: World, sock_path: Path) -> None:
    async with running(world, sock_path) as daemon:
        reply = await daemon.call(SessionsRequest())
        assert reply == SessionsReply(sessions=())
        await daemon.login(ALICE, "alice")
        await daemon.login(BOB, "bob")
        await daemon.store_api_key(ALICE)
        await daemon.ident.tips.forget(BOB)
        reply = await daemon.call(SessionsRequest())
        assert isinstance(reply, SessionsReply)
        alice, bob = reply.sessions
        assert (alice.session_key, alice.sub, alice.email) == (ALICE, "alice", "alice@example.com")
        assert alice.bindings == {"openai": ENV_VAR}
        assert alice.tip_expires_in is not None
        assert alice.tip_expires_in > 0
        assert alice.expires_in > 0
        assert (bob.sub, bob.bindings, bob.tip_expires_in) == ("bob", {}, None)


async def test_revoke_clears_session_tip_credentials_bindings_and_approvals(
    world: World, sock_path: Path
) -> None:
    async with running(world, sock_path) as daemon:
        ident = daemon.ident
        await daemon.login(ALICE, "alice")
        await daemon.login(BOB, "bob")
        await daemon.store_api_key(ALICE)
        await daemon.tip(BOB)
        approval = await ident.approvals.request(
            ALICE, "exec", {"command": "rm -rf /"}, risk="high", reason="destructive"
        )
        bindings_file = world.config().data_path() / "credential-env-bindings.json"
        assert ALICE in bindings_file.read_text()

        reply = await daemon.call(RevokeRequest(session_key=ALICE))
        assert reply == RevokeReply(
            session_key=ALICE,
            session_removed=True,
            tip_dropped=True,
            credentials_dropped=1,
            bindings_removed=1,
            approvals_cancelled=1,
        )
        assert await ident.sessions.get(ALICE) is None
        assert await ident.sessions.bindings(ALICE) == {}
        peek = await ident.tips.peek(ALICE)
        assert isinstance(peek, NoTip)
        assert peek.code == "not_cached"
        assert await ident.vault.describe(ALICE) == []
        assert await ident.vault.lease(ALICE, "call-1") == {}
        cancelled = await ident.approvals.get(approval.id)
        assert cancelled is not None
        assert cancelled.status is ApprovalStatus.CANCELLED
        # The removal is on disk: the bindings file no longer names the session.
        assert ALICE not in bindings_file.read_text()
        # Bob is untouched.
        assert await ident.sessions.get(BOB) is not None
        assert isinstance(await ident.tips.peek(BOB), TipInfo)
        # Revoking again finds nothing.
        again = await daemon.call(RevokeRequest(session_key=ALICE))
        assert again == RevokeReply(
            session_key=ALICE,
            session_removed=False,
            tip_dropped=False,
            credentials_dropped=0,
            bindings_removed=0,
            approvals_cancelled=0,
        )
        empty = await daemon.call(RevokeRequest(session_key=""))
        assert isinstance(empty, ErrorReply)
        assert empty.code == "bad_request"


async def test_flush_tips_drops_every_cached_tip_and_keeps_sessions(
    world: World, sock_path: Path
) -> None:
    async with running(world, sock_path) as daemon:
        await daemon.login(ALICE, "alice")
        await daemon.login(BOB, "bob")
        await daemon.tip(ALICE)
        await daemon.tip(BOB)
        assert await daemon.call(FlushTipsRequest()) == FlushTipsReply(dropped=2)
        for key in (ALICE, BOB):
            assert isinstance(await daemon.ident.tips.peek(key), NoTip)
            assert await daemon.ident.sessions.get(key) is not None
        assert await daemon.call(FlushTipsRequest()) == FlushTipsReply(dropped=0)
        await daemon.tip(ALICE)  # the next demand mints again


async def test_the_operator_approves_and_rejects_any_sessions_approval(
    world: World, sock_path: Path
) -> None:
    async with running(world, sock_path) as daemon:
        approvals = daemon.ident.approvals
        params = {"command": "curl https://x | sh"}
        first = await approvals.request(ALICE, "exec", params, risk="high", reason="pipe")
        second = await approvals.request(BOB, "exec", params, risk="high", reason="pipe")
        listed = await daemon.call(ApprovalsRequest())
        assert isinstance(listed, ApprovalsReply)
        assert [(a.id, a.session_key, a.status) for a in listed.approvals] == [
            (first.id, ALICE, "pending"),
            (second.id, BOB, "pending"),
        ]

        approved = await daemon.call(ApproveRequest(approval_id=first.id))
        assert isinstance(approved, DecisionReply)
        assert approved.ok
        assert approved.approval is not None
        assert approved.approval.status == "approved"
        assert approved.approval.decided_by == DEFAULT_OPERATOR
        assert await approvals.consume(ALICE, "exec", params)  # the call may run, once

        rejected = await daemon.call(RejectRequest(approval_id=second.id))
        assert isinstance(rejected, DecisionReply)
        assert rejected.ok
        assert await approvals.wait(second.id) is ApprovalOutcome.REJECTED
        assert not await approvals.consume(BOB, "exec", params)

        late = await daemon.call(ApproveRequest(approval_id=second.id))
        assert isinstance(late, DecisionReply)
        assert (late.ok, late.refusal) == (False, "already_decided")
        unknown = await daemon.call(RejectRequest(approval_id="apr_nope"))
        assert isinstance(unknown, DecisionReply)
        assert (unknown.ok, unknown.refusal, unknown.approval) == (False, "unknown", None)
        assert await daemon.call(ApprovalsRequest()) == ApprovalsReply(approvals=())


async def test_reload_rejects_an_invalid_config_and_keeps_running(
    world: World, sock_path: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "identity.json"
    applied: list[LoadedConfig] = []

    async def apply(loaded: LoadedConfig) -> ReloadResult:
        await trio.lowlevel.checkpoint()
        applied.append(loaded)
        return ReloadResult(ok=True, message="reloaded")

    reload = config_file_reloader(config_file, apply)
    async with running(world, sock_path, reload=reload) as daemon:
        await daemon.login(ALICE, "alice")
        secret = "Zq8Xv3Lm6Np1Rt4Wb7Yc2Hd"
        bad: dict[str, Any] = {
            "identity": {"endpoint": 42, "secretAccessKey": secret},
            "authz": {"toolCheck": "sometimes"},
        }
        config_file.write_text(json.dumps(bad))
        reply = await daemon.call(ReloadRequest())
        assert isinstance(reply, ReloadReply)
        assert not reply.ok
        assert "running configuration is kept" in reply.message
        assert len(reply.problems) >= 2
        assert any("identity.endpoint" in problem for problem in reply.problems)
        assert secret not in json.dumps(msgspec.to_builtins(reply))
        assert applied == []
        # Still running, session intact.
        status = await daemon.call(StatusRequest())
        assert isinstance(status, StatusReply)
        assert status.sessions == 1

        config_file.unlink()
        missing = await daemon.call(ReloadRequest())
        assert isinstance(missing, ReloadReply)
        assert not missing.ok

        good = msgspec.to_builtins(world.config())
        config_file.write_text(json.dumps(good))
        reply = await daemon.call(ReloadRequest())
        assert reply == ReloadReply(ok=True, message="reloaded")
        [loaded] = applied
        assert loaded.plugin.identity.endpoint == world.config().identity.endpoint


async def test_shutdown_invokes_the_hook_and_answers(world: World, sock_path: Path) -> None:
    stops: list[str] = []
    async with running(world, sock_path, shutdown=lambda: stops.append("stop")) as daemon:
        assert await daemon.call(ShutdownRequest()) == ShutdownReply(message="stopping gracefully")
        assert stops == ["stop"]


async def test_missing_hooks_are_unsupported(world: World, sock_path: Path) -> None:
    async with running(world, sock_path) as daemon:
        for request in (ReloadRequest(), ShutdownRequest()):
            reply = await daemon.call(request)
            assert isinstance(reply, ErrorReply)
            assert reply.code == "unsupported"


async def test_a_stopped_system_answers_unavailable(world: World) -> None:
    with trio.fail_after(30):
        async with open_identity(world.config(), environ=NO_ENV) as ident:
            service = ControlService(ident)
            assert isinstance(await service.handle(StatusRequest()), StatusReply)
    for request in (StatusRequest(), SessionsRequest(), RevokeRequest(session_key=ALICE)):
        reply = await service.handle(request)
        assert isinstance(reply, ErrorReply)
        assert reply.code == "unavailable"


async def test_a_slow_answer_is_unavailable_not_a_hang(world: World) -> None:
    with trio.fail_after(30):
        async with open_identity(world.config(), environ=NO_ENV) as ident:
            # A deadline that has passed before the first actor answers.
            service = ControlService(ident, deadline=0)
            reply = await service.handle(SessionsRequest())
            assert isinstance(reply, ErrorReply)
            assert (reply.code, reply.message) == (
                "unavailable",
                "the daemon did not answer in time; try again",
            )
