"""``open_identity`` end to end against the sandbox on loopback: start, login, TIP, restart."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.kernel import ActorStopped, SupervisorStatistics
from agent_identity.system import Identity, IdentityTree, open_identity

from .conftest import MINT, World

KEY = "agent:main:main"
NO_ENV: dict[str, str] = {}


def _child(stats: SupervisorStatistics, child_id: str) -> tuple[bool, int]:
    found = next(c for c in stats.children if c.id == child_id)
    return found.running, found.restarts


async def _eventually(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (for effects of other tasks on real sockets)."""
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_starts_and_stops_cleanly_with_statistics(world: World) -> None:
    with trio.fail_after(30):
        async with open_identity(world.config(), environ=NO_ENV) as ident:
            stats = ident.statistics()
            assert stats.root.running
            assert [c.id for c in stats.root.children] == [
                "session_store",
                "login_broker",
                "login_sweeper",
                "services",
            ]
            assert [c.id for c in stats.services.children] == [
                "tip_refresher",
                "credential_vault",
                "approval_broker",
                "approval_sweeper",
            ]
            assert all(c.running and c.restarts == 0 for c in stats.root.children)
            assert all(c.running for c in stats.services.children)
            for actor in (
                stats.session_store.actor,
                stats.login_broker,
                stats.tip_refresher.actor,
                stats.credential_vault.actor,
                stats.approval_broker,
            ):
                assert actor.running
            assert stats.session_store.sessions == 0
            assert stats.oidc_opened is False  # discovery waits for the first login
            assert ident.asgi_app is not None
            assert await ident.sessions.get(KEY) is None
            assert (await ident.approvals.statistics()).pending == 0
            assert (await ident.login_broker.statistics()).pending == 0
            assert (await ident.vault.statistics()).sessions == 0
            tree = ident.tree
        # Stopped in reverse order; nothing is left running.
        after = tree.root.statistics()
        assert not after.running
        assert not tree.session_store.statistics().running
        assert not tree.tip_refresher.statistics().running
    # No network was used to start or stop (the OIDC client is lazy).
    assert world.sb.requests.count(MINT) == 0


async def test_without_userpool_there_is_no_login(world: World) -> None:
    config = world.config()
    bare = msgspec.structs.replace(config, userpool=None)
    with trio.fail_after(30):
        async with open_identity(bare, environ=NO_ENV) as ident:
            assert ident.login_flow is None
            assert ident.asgi_app is None
            assert ident.statistics().oidc_opened is None


async def _login(world: World, ident: Identity) -> None:
    assert ident.login_flow is not None
    world.late.app = ident.asgi_app
    url = await ident.login_flow.start_login(KEY, context={"channel": "webchat"})
    page = await world.browse(url)
    assert page.status_code == 200, page.text
    assert "Logged in as alice" in page.text
    assert world.late.calls  # the callback went through the system's ASGI app


async def test_full_login_mints_a_tip_and_survives_a_restart(world: World) -> None:
    config = world.config()
    with trio.fail_after(60):
        async with open_identity(config, environ=NO_ENV) as ident:
            mints = world.sb.requests.count(MINT)
            await _login(world, ident)
            # The acquire_tip hook minted a TIP during the login.
            assert world.sb.requests.count(MINT) == mints + 1
            view = await ident.sessions.get(KEY)
            assert view is not None
            assert view.sub == "alice"
            tip = await ident.tips.get_tip(KEY)
            assert isinstance(tip, TipInfo)
            assert world.sb.requests.count(MINT) == mints + 1  # served from the cache
            # The login event reached the notifier (webchat: no push, skipped).
            await _eventually(lambda: ident.statistics().login_listener.events >= 1)
            stats = ident.statistics()
            assert stats.login_listener.not_sent == 1
            assert stats.notifier.skipped == 1
            assert stats.oidc_opened is True
            assert stats.session_store.sessions == 1
            assert stats.tip_refresher.cached == 1
        world.late.app = None

        # A new system on the same data folder still has the session, and mints from it.
        async with open_identity(config, environ=NO_ENV) as again:
            view = await again.sessions.get(KEY)
            assert view is not None
            assert view.sub == "alice"
            before = world.sb.requests.count(MINT)
            tip = await again.tips.get_tip(KEY)
            assert isinstance(tip, TipInfo)
            assert world.sb.requests.count(MINT) == before + 1


async def test_a_crashing_tip_refresher_is_restarted_alone(world: World) -> None:
    with trio.fail_after(30):
        async with open_identity(world.config(), environ=NO_ENV) as ident:
            refresher = ident.tree.tip_refresher
            original = refresher.handle

            async def crash(msg: object) -> None:
                del refresher.handle  # the next run is healthy
                await trio.lowlevel.checkpoint()
                raise RuntimeError("injected failure")

            refresher.handle = crash  # type: ignore[method-assign]
            try:
                await ident.tips.get_tip(KEY)
            except ActorStopped:
                pass
            else:  # pragma: no cover - the crash must fail the caller
                raise AssertionError("the crash did not reach the caller")
            await _eventually(
                lambda: _child(ident.statistics().services, "tip_refresher") == (True, 1)
            )
            assert refresher.handle == original
            stats = ident.statistics()
            # one_for_one: the siblings and the root were not touched.
            assert _child(stats.services, "credential_vault") == (True, 0)
            assert _child(stats.root, "services") == (True, 0)
            assert stats.tip_refresher.actor.restarts == 1
            # The restarted refresher answers (no session: a value, not a crash).
            outcome = await ident.tips.get_tip(KEY)
            assert not isinstance(outcome, TipInfo)


async def test_an_error_in_the_body_stops_the_system_and_surfaces_as_itself(world: World) -> None:
    trees: list[IdentityTree] = []

    async def run() -> None:
        async with open_identity(world.config(), environ=NO_ENV) as ident:
            trees.append(ident.tree)
            raise LookupError("from the body")

    with trio.fail_after(30), pytest.raises(LookupError, match="from the body"):
        await run()
    [tree] = trees
    assert not tree.root.statistics().running
    assert not tree.session_store.statistics().running
