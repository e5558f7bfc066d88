"""Renewal after downtime: the store keeps expired sessions whose refresh token may renew them.

A gateway that was down longer than an id token lives must still renew its sessions silently
on restart. The store therefore keeps such sessions (on disk too), hides them from ordinary
reads, and hands them and their refresh token to the renewal path; dead sessions (expired,
no refresh token, or past the renewal window) are still pruned.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.tip_session import SessionTokens
from agent_identity.sandbox import open_sandbox
from agent_identity.storage import RENEWAL_WINDOW_SECONDS, FileBackend, SessionRecord, SessionView

from .test_session_store import KEY, WallClock, file_backend, record, start
from .test_tip_support import Env, claims_of, tip
from .test_tip_support import WallClock as RealWallClock

SESSION = "agent:main:main:user:openclaw-control-ui"


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "identity"


# ------------------------------------------------------------------ the store alone


async def test_an_expired_renewable_session_is_hidden_but_kept_for_renewal(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    client = store.client
    await client.put(record("renewable", expires_in=60))
    await client.put(record("dead", expires_in=60, refresh=False))
    clock.now += 120
    # Ordinary readers never see an expired user token ...
    assert await client.get("renewable") is None
    assert await client.list() == []
    # ... the renewal path does, with the refresh token.
    view = await client.get("renewable", renewable=True)
    assert view is not None
    assert view.expired(clock.now)
    assert view.has_refresh_token
    assert await client.get_refresh_token("renewable") == "refresh-renewable-SECRET-TOKEN"
    assert await client.get("dead", renewable=True) is None
    assert await client.get_refresh_token("dead") is None
    stats = await client.statistics()
    assert (stats.sessions, stats.renewable_sessions) == (0, 1)
    # A write prunes the dead session only, on disk too.
    await client.put(record("other"))
    assert set((await file_backend(data_dir, clock).load()).sessions) == {"renewable", "other"}


async def test_a_restart_after_long_downtime_keeps_the_renewable_session(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    first = await start(nursery, file_backend(data_dir, clock), clock)
    await first.client.put(record("s", expires_in=3600))
    await first.stop()
    clock.now += 6 * 3600  # the gateway was down far longer than the token lived
    second = await start(nursery, file_backend(data_dir, clock), clock)
    assert await second.client.get("s") is None
    assert await second.client.get("s", renewable=True) is not None
    assert await second.client.get_refresh_token("s") == "refresh-s-SECRET-TOKEN"


async def test_past_the_renewal_window_the_session_is_pruned(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    await store.client.put(record("s", expires_in=60))
    clock.now += 60 + RENEWAL_WINDOW_SECONDS
    assert await store.client.get("s", renewable=True) is None
    assert await store.client.get_refresh_token("s") is None
    assert (await store.client.statistics()).renewable_sessions == 0
    await store.client.put(record("other"))
    assert set((await file_backend(data_dir, clock).load()).sessions) == {"other"}


async def test_logging_out_of_a_renewable_session_removes_it(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    await store.client.put(record("s", expires_in=60))
    clock.now += 120
    assert await store.client.delete("s") is True
    assert await store.client.get_refresh_token("s") is None
    assert await store.client.get("s", renewable=True) is None


# ------------------------------------------------------------------ renewal with the sandbox


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """The TIP test environment, but with the store on real files so it can restart."""
    wall = RealWallClock()
    async with (
        open_sandbox(rng=random.Random(20261129), clock=wall) as sb,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        running = Env(sb, http, wall, _file_store(tmp_path, wall), nursery)
        await nursery.start(running.store.run)
        try:
            yield running
        finally:
            with trio.move_on_after(10, shield=True):
                for refresher in running.refreshers:
                    await refresher.stop()
                await running.store.stop()
            nursery.cancel_scope.cancel()


def _file_store(tmp_path: Path, wall: RealWallClock) -> SessionStore:
    return SessionStore(FileBackend(tmp_path / "identity", key=KEY, now=wall), now=wall)


async def _restart_after_downtime(env: Env, tmp_path: Path, seconds: float) -> None:
    """Stop the store, let ``seconds`` of wall-clock time pass, start a new one on its files."""
    await env.store.stop()
    env.wall.advance(seconds)
    env.store = _file_store(tmp_path, env.wall)
    await env.nursery.start(env.store.run)


async def _logged_in(env: Env) -> tuple[SessionRecord, str]:
    """A real authorization-code login stored under SESSION; returns it and its id token."""
    oidc = env.oidc()
    tokens = await env.oidc_login(oidc)
    assert tokens.id_token is not None
    assert tokens.refresh_token is not None
    stored = SessionRecord(
        session_key=SESSION,
        sub="alice",
        user_token=tokens.id_token,
        expires_at=float(claims_of(tokens.id_token)["exp"]),
        login_at=env.wall(),
        refresh_token=tokens.refresh_token,
    )
    await env.sessions.put(stored)
    return stored, tokens.id_token


async def test_the_renewal_path_renews_a_session_expired_during_downtime(
    env: Env, tmp_path: Path
) -> None:
    stored, id_token = await _logged_in(env)
    lifetime = stored.expires_at - env.wall()
    await _restart_after_downtime(env, tmp_path, lifetime + 2 * 3600)
    assert await env.sessions.get(SESSION) is None
    view = await env.sessions.get(SESSION, renewable=True)
    assert view is not None
    assert view.expired(env.wall())
    renewed = await SessionTokens(env.sessions, env.oidc()).renew(view)
    assert isinstance(renewed, SessionView), renewed
    assert renewed.user_token != id_token
    assert renewed.expires_at > env.wall() + 600
    live = await env.sessions.get(SESSION)
    assert live is not None
    assert live.user_token == renewed.user_token
    # The provider rotated the refresh token; the store kept the new one.
    assert await env.sessions.get_refresh_token(SESSION) not in (None, stored.refresh_token)


async def test_the_tip_refresher_renews_after_downtime(env: Env, tmp_path: Path) -> None:
    stored, id_token = await _logged_in(env)
    await _restart_after_downtime(env, tmp_path, stored.expires_at - env.wall() + 2 * 3600)
    _, tips = await env.start(renewer=env.oidc())
    info = tip(await tips.get_tip(SESSION))
    assert info.sub == "alice"
    live = await env.sessions.get(SESSION)
    assert live is not None
    assert live.user_token != id_token
    assert (await tips.statistics()).renewals == 1
