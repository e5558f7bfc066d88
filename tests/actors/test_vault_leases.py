"""The pure parts of the vault: the lease table (on a mock clock), env rules and flow helpers."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from agent_identity.actors.vault_events import VaultEvents
from agent_identity.actors.vault_flows import (
    PollPolicy,
    PollVerdict,
    authorization_state,
    expiry_from_timestamp,
    infer_flow,
    judge_poll,
    listing_filter,
    oauth2_request,
    parse_flow,
    parse_scopes,
    role_info,
)
from agent_identity.actors.vault_leases import (
    LeaseTable,
    check_env_var,
    env_for,
    env_overlay,
    role_env_names,
)
from agent_identity.actors.vault_types import (
    MASK,
    BindingFailure,
    Credential,
    CredentialKind,
    FetchFlow,
    FetchResult,
    FetchStatus,
    RoleCredentialsView,
    mask_access_key_id,
)
from agent_identity.volcengine.models import (
    CredentialProvider,
    ResourceOauth2Token,
    RoleCredentialProvider,
)

# ------------------------------------------------------------------ the lease table


async def test_lease_table_expires_on_trio_time(autojump_clock: trio.testing.MockClock) -> None:
    table = LeaseTable(ttl=600)
    start = trio.current_time()
    assert table.next_expiry() == math.inf
    assert table.grant("run:1", "alice", ["B", "A"], trio.current_time())
    assert table.get("run:1", trio.current_time()) is not None
    await trio.sleep(300)
    assert table.grant("run:2", "alice", ["A"], trio.current_time())
    assert table.next_expiry() == start + 600
    await trio.sleep(300)
    assert table.get("run:1", trio.current_time()) is None  # expired, not yet swept
    assert table.sweep(trio.current_time()) == 1
    assert len(table) == 1
    lease = table.get("run:2", trio.current_time())
    assert lease is not None
    assert (lease.session_key, lease.names) == ("alice", ("A",))
    await trio.sleep(301)
    assert table.sweep(trio.current_time()) == 1
    assert (len(table), table.expired, table.next_expiry()) == (0, 2, math.inf)


async def test_lease_table_renew_release_refuse(autojump_clock: trio.testing.MockClock) -> None:
    table = LeaseTable(ttl=10)
    assert table.grant("id", "alice", ["X"], trio.current_time())
    await trio.sleep(8)
    # Renewal by the same session moves the expiry; the stale heap entry is skipped.
    assert table.grant("id", "alice", ["X"], trio.current_time())
    await trio.sleep(5)
    assert table.sweep(trio.current_time()) == 0
    assert table.get("id", trio.current_time()) is not None
    # Another session cannot take a live id.
    assert not table.grant("id", "bob", ["Y"], trio.current_time())
    assert table.refused == 1
    assert table.release("id")
    assert not table.release("id")
    assert table.next_expiry() == math.inf  # only stale entries were left
    # Once released, or expired, the id is free again.
    assert table.grant("id", "bob", ["Y"], trio.current_time())
    await trio.sleep(11)
    assert table.grant("id", "alice", ["X"], trio.current_time())
    assert table.sessions() == {"alice"}
    assert table.drop_session("alice") == 1
    assert (table.granted, table.released) == (4, 1)
    with pytest.raises(ValueError, match="ttl"):
        LeaseTable(ttl=0)


# ------------------------------------------------------------------- env rules


def test_check_env_var() -> None:
    assert check_env_var("OPENAI_API_KEY") is None
    assert check_env_var("_x1") is None
    for bad in ("", "1A", "A-B", "A B", "Ä", "A\n", "x" * 257):
        problem = check_env_var(bad)
        assert problem is not None
        assert problem[0] is BindingFailure.INVALID_NAME
    problem = check_env_var("x" * 300)
    assert problem is not None
    assert len(problem[1]) < 200
    problem = check_env_var("Path")
    assert problem is not None
    assert problem[0] is BindingFailure.RESERVED_NAME


def _credential(provider: str, value: str, **extra: object) -> Credential:
    return Credential(provider, CredentialKind.API_KEY, "apikey", value, **extra)  # type: ignore[arg-type]


def test_env_overlay_and_role_names() -> None:
    role = Credential(
        "demo-role",
        CredentialKind.ROLE,
        "role",
        "AKID0000EXAMPLE",
        secret_access_key="sk-role",
        session_token="tok-role",
    )
    assert role_env_names("VOLCENGINE") == role_env_names("VOLCENGINE_ACCESS_KEY")
    assert env_for(role, "AWS") == {
        "AWS_ACCESS_KEY": "AKID0000EXAMPLE",
        "AWS_SECRET_KEY": "sk-role",
        "AWS_SESSION_TOKEN": "tok-role",
    }
    assert role_env_names("_ACCESS_KEY")[0] == "_ACCESS_KEY_ACCESS_KEY"
    credentials = {
        "a": _credential("a", "va"),
        "b": _credential("b", "vb", expires_at=10.0),
        "c": _credential("c", "vc"),
        "demo-role": role,
    }
    bindings = {"a": "SAME", "b": "B", "c": "SAME", "missing": "M", "demo-role": "VOLCENGINE"}
    overlay = env_overlay(credentials, bindings, now=20.0)
    assert overlay == {
        "SAME": "vc",  # providers apply in name order: c after a
        "VOLCENGINE_ACCESS_KEY": "AKID0000EXAMPLE",
        "VOLCENGINE_SECRET_KEY": "sk-role",
        "VOLCENGINE_SESSION_TOKEN": "tok-role",
    }
    assert env_overlay(credentials, bindings, now=5.0)["B"] == "vb"
    bare = Credential("r", CredentialKind.ROLE, "role", "AKIDONLY")
    assert env_for(bare, "P") == {"P_ACCESS_KEY": "AKIDONLY"}


def test_credential_repr_and_expiry() -> None:
    credential = Credential(
        "p",
        CredentialKind.ROLE,
        "role",
        "AKID-SECRET-1",
        expires_at=100.0,
        secret_access_key="SECRET-2",
        session_token="SECRET-3",
    )
    shown = repr(credential)
    assert "SECRET" not in shown
    assert credential.secrets() == ("AKID-SECRET-1", "SECRET-2", "SECRET-3")
    assert credential.expires_in(40.0) == 60
    assert credential.expires_in(140.0) == 0
    assert credential.expired(100.0)
    assert _credential("x", "v").expires_in(0.0) is None
    view = RoleCredentialsView("p", True, "ok", "AKID-SECRET-1", "SECRET-2", "SECRET-3")
    assert "SECRET" not in repr(view)
    result = FetchResult(FetchStatus.STORED, "p", "stored", value="SECRET-4")
    assert "SECRET" not in repr(result)
    assert mask_access_key_id("AKLT1234567890abcd") == f"AKLT{MASK}abcd"
    assert mask_access_key_id("short") == MASK


# --------------------------------------------------------------------- flow helpers


def test_parse_flow_and_scopes() -> None:
    assert parse_flow(None) is None
    assert parse_flow("  ") is None
    assert parse_flow("oauth2-user") is FetchFlow.OAUTH2_USER
    assert parse_flow("M2M") is FetchFlow.OAUTH2_M2M
    assert parse_flow("api_key") is FetchFlow.APIKEY
    with pytest.raises(ValueError, match="Unknown flow"):
        parse_flow("implicit")
    assert parse_scopes(None) is None
    assert parse_scopes("a, b  c") == ("a", "b", "c")
    assert parse_scopes(["x", " ", "y"]) == ("x", "y")
    assert parse_scopes(" , ") is None


def test_infer_flow_and_filters() -> None:
    assert infer_flow(CredentialProvider(name="k", type="api_key")) is FetchFlow.APIKEY
    m2m = CredentialProvider(name="m", type="oauth2", flow="M2M")
    assert infer_flow(m2m) is FetchFlow.OAUTH2_M2M
    user = CredentialProvider(name="u", type="OAuth2", flow="USER_FEDERATION")
    assert infer_flow(user) is FetchFlow.OAUTH2_USER
    assert infer_flow(CredentialProvider(name="x", type="saml")) is None
    assert listing_filter(None, None, None) is None
    assert listing_filter(" ", "", " ") is None
    flt = listing_filter("demo", "oauth2-m2m", None)
    assert flt is not None
    assert (flt.name, flt.type, flt.flow) == ("demo", None, "M2M")
    flt = listing_filter(None, "apikey", "oauth2")
    assert flt is not None
    assert flt.type == "api_key"  # --flow=apikey means the api_key type
    with pytest.raises(ValueError, match="Unknown type"):
        listing_filter(None, None, "ssh")


def test_oauth2_request_and_state() -> None:
    request = oauth2_request(
        "p", "tip", FetchFlow.OAUTH2_USER, pool_name="default", redirect_url="", scopes=("a",)
    )
    assert (request.flow, request.scopes, request.redirect_url) == ("USER_FEDERATION", ["a"], None)
    assert authorization_state("https://x/authorize?state=abc&code=1") == "abc"
    assert authorization_state("https://x/authorize") is None


def test_judge_poll() -> None:
    first = ResourceOauth2Token(authorization_url="https://a?state=1", session_uri="urn:1")
    assert judge_poll(first, ResourceOauth2Token(access_token="t")) is PollVerdict.TOKEN
    assert judge_poll(first, first) is PollVerdict.WAIT
    other = ResourceOauth2Token(authorization_url="https://a?state=1", session_uri="urn:2")
    assert judge_poll(first, other) is PollVerdict.ABANDONED
    bare = ResourceOauth2Token(authorization_url="https://a?state=1")
    assert judge_poll(bare, bare) is PollVerdict.WAIT
    assert judge_poll(bare, ResourceOauth2Token(authorization_url="https://a?state=2")) is (
        PollVerdict.ABANDONED
    )


def test_poll_policy() -> None:
    delays = PollPolicy(initial=1.0, factor=2.0, maximum=5.0).delays()
    assert [next(delays) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="factor"):
        PollPolicy(factor=0.5)
    with pytest.raises(ValueError, match="> 0"):
        PollPolicy(timeout=0)


def test_expiry_and_role_info() -> None:
    wall = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    at = expiry_from_timestamp("2026-01-01T01:00:00Z", trio_now=10.0, wall_now=wall)
    assert at == pytest.approx(3610.0)
    assert expiry_from_timestamp("soon", trio_now=10.0, wall_now=wall) is None
    info = role_info(RoleCredentialProvider(name="bare"))
    assert (info.name, info.role_name, info.user_pool_name) == ("bare", "", "")


async def test_events_fan_out_never_blocks() -> None:
    events = VaultEvents()
    from agent_identity.actors.vault_events import CredentialAdded

    full = events.subscribe(buffer=1)
    gone = events.subscribe()
    gone.close()
    events.publish(CredentialAdded("k", "p"))
    events.publish(CredentialAdded("k", "q"))
    assert (events.subscribers, events.dropped) == (1, 1)
    assert (await full.receive()).provider == "p"
