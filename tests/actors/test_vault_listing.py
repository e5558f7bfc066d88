"""Listings and role credentials against the sandbox over loopback.

``list [page]`` paging and filters with the session's stored/bound status, ``list-roles``
prefix filter, ``get-role`` masked vs ``--show-secrets`` and the role keys' env injection.
"""

from __future__ import annotations

from agent_identity.actors.vault_leases import role_env_names
from agent_identity.actors.vault_types import MASK, FetchFlow
from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import IdentityClient

from .vault_support import Running, running_vault

KEY = "agent:main:feishu:direct:alice"


# --------------------------------------------------------------------------------- list


async def test_list_pages_with_session_status(client: IdentityClient, tip: str) -> None:
    async with running_vault(client, page_size=2) as vault:
        assert (await vault.creds.fetch(KEY, tip, "openai")).success
        bound = await vault.creds.set_binding(KEY, "openai", "OPENAI_API_KEY", environ={})
        assert bound.ok
        first = await vault.creds.list_credentials(KEY, tip)
        assert first.ok
        assert (first.page, first.has_more, first.total) == (1, True, 3)
        assert [p.name for p in first.providers] == ["demo-m2m", "demo-oauth"]
        assert [p.flow for p in first.providers] == [FetchFlow.OAUTH2_M2M, FetchFlow.OAUTH2_USER]
        assert not any(p.stored for p in first.providers)
        assert first.stored_only == []  # openai is a control-plane provider (on page 2)
        second = await vault.creds.list_credentials(KEY, tip, 2)
        assert (second.page, second.has_more) == (2, False)
        [openai] = second.providers
        assert (openai.name, openai.type, openai.stored, openai.env_var) == (
            "openai",
            "api_key",
            True,
            "OPENAI_API_KEY",
        )
        assert second.stored_only == []
        beyond = await vault.creds.list_credentials(KEY, tip, 3)
        assert (beyond.providers, beyond.has_more) == ([], False)
        bad = await vault.creds.list_credentials(KEY, tip, 0)
        assert not bad.ok
        assert "numbered from 1" in bad.message


async def test_list_filters(vault: Running, tip: str) -> None:
    only_keys = await vault.creds.list_credentials(KEY, tip, type="api_key")
    assert [p.name for p in only_keys.providers] == ["openai"]
    m2m = await vault.creds.list_credentials(KEY, tip, flow="oauth2-m2m")
    assert [p.name for p in m2m.providers] == ["demo-m2m"]
    user = await vault.creds.list_credentials(KEY, tip, flow="USER_FEDERATION")
    assert [p.name for p in user.providers] == ["demo-oauth"]
    keys = await vault.creds.list_credentials(KEY, tip, flow="apikey")
    assert [p.name for p in keys.providers] == ["openai"]
    demo = await vault.creds.list_credentials(KEY, tip, name="DEMO")
    assert [p.name for p in demo.providers] == ["demo-m2m", "demo-oauth"]
    wrong = await vault.creds.list_credentials(KEY, tip, type="ssh")
    assert not wrong.ok
    assert "api_key or oauth2" in wrong.message
    wrong = await vault.creds.list_credentials(KEY, tip, flow="implicit")
    assert not wrong.ok
    no_tip = await vault.creds.list_credentials(KEY, "")
    assert not no_tip.ok
    assert "Log in" in no_tip.message


async def test_stored_only_lists_what_the_control_plane_lacks(
    client: IdentityClient, tip: str
) -> None:
    environ = {"GITHUB_TOKEN": "ghp-imported-value-0001"}
    for page_size in (20, 2):
        async with running_vault(client, page_size=page_size) as vault:
            imported = await vault.creds.set_binding(KEY, "github", "GITHUB_TOKEN", environ=environ)
            assert imported.imported
            role = await vault.creds.get_role(KEY, tip, "demo-role")
            assert role.ok
            listing = await vault.creds.list_credentials(KEY, tip)
            shown = {p.name: p for p in listing.stored_only}
            assert sorted(shown) == ["demo-role", "github"], page_size
            assert (shown["github"].type, shown["github"].source) == ("api_key", "environment")
            assert shown["github"].env_var == "GITHUB_TOKEN"
            assert (shown["demo-role"].type, shown["demo-role"].stored) == ("role", True)
            by_name = await vault.creds.list_credentials(KEY, tip, name="git")
            assert [p.name for p in by_name.stored_only] == ["github"]
            typed = await vault.creds.list_credentials(KEY, tip, type="oauth2")
            assert typed.stored_only == []


async def test_list_reports_service_errors(vault: Running, sb: Sandbox, tip: str) -> None:
    sb.faults.add("ListCredentialProviders", status=403, count=1)
    failed = await vault.creds.list_credentials(KEY, tip)
    assert not failed.ok
    assert "AccessDenied" in failed.message


# ---------------------------------------------------------------------------- roles


async def test_list_roles_prefix_filter(vault: Running, tip: str, sb: Sandbox) -> None:
    everything = await vault.creds.list_roles(tip)
    assert everything.ok
    [role] = everything.roles
    assert (role.name, role.role_name, role.pool_name, role.user_pool_name) == (
        "demo-role",
        "demo-readonly",
        "default",
        "agent-identity-dev",
    )
    assert role.trn
    assert [r.name for r in (await vault.creds.list_roles(tip, "DEMO-R")).roles] == ["demo-role"]
    # The service matches substrings; list-roles keeps name prefixes only.
    assert (await vault.creds.list_roles(tip, "role")).roles == []
    assert (await vault.creds.list_roles(tip, "zz")).roles == []
    no_tip = await vault.creds.list_roles("")
    assert not no_tip.ok
    sb.faults.add("ListRoleCredentialProviders", status=403, count=1)
    failed = await vault.creds.list_roles(tip)
    assert not failed.ok
    assert "AccessDenied" in failed.message


async def test_list_roles_keeps_the_configured_user_pool(client: IdentityClient, tip: str) -> None:
    async with running_vault(client, user_pool_name="agent-identity-dev") as vault:
        assert [r.name for r in (await vault.creds.list_roles(tip)).roles] == ["demo-role"]
    async with running_vault(client, user_pool_name="another-pool") as vault:
        assert (await vault.creds.list_roles(tip)).roles == []


async def test_get_role_masked_and_shown(vault: Running, tip: str) -> None:
    masked = await vault.creds.get_role(KEY, tip, "demo-role")
    assert masked.ok
    assert MASK in masked.access_key_id
    assert (masked.secret_access_key, masked.session_token) == (MASK, MASK)
    assert masked.expiration.endswith("Z") or "+" in masked.expiration
    assert "demo-readonly" in masked.role_trn
    assert masked.oidc_subject == ""
    assert masked.env_vars == ()
    bound = await vault.creds.set_binding(KEY, "demo-role", "VOLCENGINE", environ={})
    assert bound.ok
    assert not bound.imported
    shown = await vault.creds.get_role(KEY, tip, "demo-role", use_tip=True, show_secrets=True)
    assert shown.ok
    assert MASK not in shown.access_key_id
    assert shown.access_key_id[:4] == masked.access_key_id[:4]
    assert shown.secret_access_key not in {"", MASK}
    assert shown.session_token not in {"", MASK}
    assert shown.oidc_subject == "alice"  # the service read the TIP (WithOIDC)
    assert shown.env_vars == role_env_names("VOLCENGINE")
    for secret in (shown.access_key_id, shown.secret_access_key, shown.session_token):
        assert secret not in repr(shown)
    # The newest keys are what tools get.
    overlay = await vault.creds.lease(KEY, "run-1:call-1")
    assert overlay == {
        "VOLCENGINE_ACCESS_KEY": shown.access_key_id,
        "VOLCENGINE_SECRET_KEY": shown.secret_access_key,
        "VOLCENGINE_SESSION_TOKEN": shown.session_token,
    }
    [status] = await vault.creds.describe(KEY)
    assert (status.type, status.source, status.env_var) == ("role", "role", "VOLCENGINE")
    assert status.expires_in is not None
    assert status.expires_in > 0
    assert (await vault.creds.statistics()).credentials_by_kind == {"role": 1}


async def test_get_role_refusals(vault: Running, tip: str, sb: Sandbox) -> None:
    unknown = await vault.creds.get_role(KEY, tip, "nope")
    assert not unknown.ok
    assert "no role credential provider named 'nope'" in unknown.message
    assert not (await vault.creds.get_role(KEY, "", "demo-role")).ok
    assert not (await vault.creds.get_role(KEY, tip, " ")).ok
    sb.faults.add("GetRoleCredentials", status=403, count=1)
    denied = await vault.creds.get_role(KEY, tip, "demo-role")
    assert not denied.ok
    assert "AccessDenied" in denied.message
    sb.faults.add("GetRoleCredentials", status=200, malformed="envelope", count=2)
    assert not (await vault.creds.get_role(KEY, tip, "demo-role")).ok
    assert await vault.creds.describe(KEY) == []
