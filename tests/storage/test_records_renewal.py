"""Live, renewable and dead sessions: what a record says, and what pruning keeps."""

from __future__ import annotations

from agent_identity.storage import RENEWAL_WINDOW_SECONDS, Snapshot

from .helpers import T0, record


def test_an_expired_session_with_a_refresh_token_stays_renewable_for_the_window() -> None:
    rec = record("k", expires_in=10)
    assert rec.renewable(T0)
    assert rec.expired(T0 + 10)
    assert rec.renewable(T0 + 10)
    assert not rec.prunable(T0 + 10)
    end = T0 + 10 + RENEWAL_WINDOW_SECONDS
    assert rec.renewable(end - 0.01)
    assert not rec.renewable(end)
    assert rec.prunable(end)


def test_without_a_refresh_token_expired_means_dead() -> None:
    rec = record("k", expires_in=10, refresh=False)
    assert not rec.renewable(T0)
    assert not rec.prunable(T0 + 9.99)
    assert rec.prunable(T0 + 10)


def test_a_view_knows_whether_its_user_token_has_expired() -> None:
    view = record("k", expires_in=10).view()
    assert not view.expired(T0 + 9.99)
    assert view.expired(T0 + 10)


def test_pruning_keeps_renewable_sessions_and_drops_dead_ones() -> None:
    snap = Snapshot(
        sessions={
            "renewable": record("renewable", expires_in=1),
            "dead": record("dead", expires_in=1, refresh=False),
            "live": record("live"),
        }
    )
    pruned, dropped = snap.pruned(T0 + 5)
    assert dropped == 1
    assert set(pruned.sessions) == {"renewable", "live"}
    # The window counts from each session's own expiry ("live" expires an hour later).
    later, dropped_later = pruned.pruned(T0 + 1 + RENEWAL_WINDOW_SECONDS)
    assert dropped_later == 1
    assert set(later.sessions) == {"live"}
