"""Records, views and snapshots: masked reprs, no refresh token in views, pruning."""

from __future__ import annotations

from agent_identity.storage import SessionRecord, Snapshot

from .helpers import T0, record, token


def test_record_repr_masks_both_tokens() -> None:
    rec = record("agent:main:main")
    shown = repr(rec)
    assert token("id-agent:main:main") not in shown
    assert token("refresh-agent:main:main") not in shown
    assert "SECRET" not in shown
    assert "agent:main:main" in shown
    assert "user-agent:main:main" in shown
    assert str(rec) == shown
    assert "refresh_token=None" in repr(record("k", refresh=False))


def test_view_has_a_flag_instead_of_the_refresh_token() -> None:
    view = record("k").view()
    assert view.has_refresh_token
    assert not hasattr(view, "refresh_token")
    assert view.user_token == token("id-k")
    assert token("id-k") not in repr(view)
    assert not record("k", refresh=False).view().has_refresh_token


def test_expiry_is_inclusive() -> None:
    rec = record("k", expires_in=10)
    assert not rec.expired(T0 + 9.99)
    assert rec.expired(T0 + 10)


def test_pruned_drops_expired_sessions_and_keeps_bindings() -> None:
    snap = Snapshot(
        sessions={"old": record("old", expires_in=1, refresh=False), "new": record("new")},
        bindings={"old": {"google": "GOOGLE_TOKEN"}},
    )
    pruned, dropped = snap.pruned(T0 + 5)
    assert dropped == 1
    assert set(pruned.sessions) == {"new"}
    assert pruned.bindings == {"old": {"google": "GOOGLE_TOKEN"}}
    same, none = pruned.pruned(T0 + 5)
    assert same is pruned
    assert none == 0
    assert repr(snap) == "<Snapshot sessions=2 bindings=1>"


def test_empty_snapshot() -> None:
    snap = Snapshot()
    assert dict(snap.sessions) == {}
    assert dict(snap.bindings) == {}


def test_records_are_camel_case_on_the_wire() -> None:
    import msgspec

    encoded = msgspec.json.decode(msgspec.json.encode(record("k", refresh=False)))
    assert set(encoded) == {
        "sessionKey",
        "sub",
        "userToken",
        "expiresAt",
        "loginAt",
        "email",
        "name",
    }
    assert msgspec.json.decode(msgspec.json.encode(record("k")), type=SessionRecord) == record("k")
