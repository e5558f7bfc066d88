"""The credential vault's fetch flows against the sandbox over real loopback.

API key, M2M, 3LO through the demo OAuth2 provider (approve, deny, the Oauth2Callback path,
timeout, logout), flow inference and ``--flow`` overrides.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio

from agent_identity.actors.vault_events import CredentialAdded, CredentialFlowFailed
from agent_identity.actors.vault_flows import PollPolicy
from agent_identity.actors.vault_types import FetchFailure, FetchFlow, FetchResult, FetchStatus
from agent_identity.sandbox import Sandbox
from agent_identity.sandbox.app import ID_VERSION
from agent_identity.sandbox.state import ApiKeyProvider
from agent_identity.volcengine import IdentityClient

from .vault_support import (
    APP_CALLBACK,
    Running,
    consent,
    running_vault,
)

KEY = "agent:main:telegram:direct:alice"
OTHER = "agent:main:telegram:direct:bob"
OPENAI_KEY = "sk-sandbox-openai-0000000000000000"


# ------------------------------------------------------------------- API key and M2M


async def test_api_key_is_stored_and_returned_only_on_request(vault: Running, tip: str) -> None:
    result = await vault.creds.fetch(KEY, tip, "openai")
    assert result.status is FetchStatus.STORED
    assert result.success
    assert result.flow is FetchFlow.APIKEY  # inferred from Type=api_key
    assert result.value is None
    assert result.to_tool_result() == {"success": True, "message": "API key for openai stored."}
    shown = await vault.creds.fetch(KEY, tip, "openai", return_value=True)
    assert shown.value == OPENAI_KEY
    assert shown.to_tool_result()["value"] == OPENAI_KEY
    assert OPENAI_KEY not in repr(shown)
    [status] = await vault.creds.describe(KEY)
    assert (status.name, status.type, status.stored, status.source) == (
        "openai",
        "api_key",
        True,
        "apikey",
    )
    assert status.flow is FetchFlow.APIKEY
    assert status.expires_in is None
    stats = await vault.creds.statistics()
    assert stats.credentials_by_kind == {"api_key": 1}
    assert (stats.sessions, stats.fetches, stats.flows_running) == (1, 2, 0)
    assert await vault.creds.describe(OTHER) == []


async def test_m2m_token_is_stored_directly(vault: Running, tip: str) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-m2m", return_value=True)
    assert result.status is FetchStatus.STORED
    assert result.flow is FetchFlow.OAUTH2_M2M
    assert result.value is not None
    assert result.value.startswith("demo-at-")
    assert result.expires_in is not None
    assert 3590 <= result.expires_in <= 3600
    assert result.message == "Access token for demo-m2m stored."
    [status] = await vault.creds.describe(KEY)
    assert (status.type, status.source, status.expired) == ("oauth2", "oauth2-m2m", False)


async def test_flow_override(vault: Running, tip: str) -> None:
    # demo-oauth is a 3LO provider, but --flow=oauth2-m2m asks for client credentials.
    forced = await vault.creds.fetch(KEY, tip, "demo-oauth", flow="oauth2-m2m")
    assert (forced.status, forced.flow) == (FetchStatus.STORED, FetchFlow.OAUTH2_M2M)
    # An API-key provider cannot be fetched as OAuth2, and the reverse.
    wrong = await vault.creds.fetch(KEY, tip, "openai", flow="m2m")
    assert (wrong.status, wrong.failure) == (FetchStatus.FAILED, FetchFailure.SERVICE_ERROR)
    assert "InvalidParameter.ProviderName" in wrong.message
    wrong = await vault.creds.fetch(KEY, tip, "demo-m2m", flow="apikey")
    assert wrong.failure is FetchFailure.SERVICE_ERROR
    bogus = await vault.creds.fetch(KEY, tip, "openai", flow="implicit")
    assert bogus.failure is FetchFailure.INVALID_FLOW
    assert "oauth2-user, oauth2-m2m or apikey" in bogus.message
    api = await vault.creds.fetch(KEY, tip, "openai", flow="API_KEY")
    assert api.success


async def test_fetch_refusals(vault: Running, tip: str) -> None:
    no_tip = await vault.creds.fetch(KEY, "", "openai")
    assert no_tip.failure is FetchFailure.NOT_LOGGED_IN
    assert no_tip.to_tool_result() == {"success": False, "message": no_tip.message}
    unknown = await vault.creds.fetch(KEY, tip, "github")
    assert unknown.failure is FetchFailure.UNKNOWN_PROVIDER
    assert "'github'" in unknown.message
    forced = await vault.creds.fetch(KEY, tip, "github", flow="apikey")
    assert forced.failure is FetchFailure.UNKNOWN_PROVIDER  # the service's 404
    blank = await vault.creds.fetch(KEY, tip, "  ")
    assert blank.failure is FetchFailure.INVALID_REQUEST
    assert await vault.creds.describe(KEY) == []


async def test_service_errors_are_values(vault: Running, sb: Sandbox, tip: str) -> None:
    sb.faults.add("ListCredentialProviders", status=403, count=1)
    denied = await vault.creds.fetch(KEY, tip, "openai")
    assert denied.failure is FetchFailure.SERVICE_ERROR
    assert "AccessDenied" in denied.message
    sb.faults.add("GetResourceApiKey", status=200, malformed=True, count=2)
    garbled = await vault.creds.fetch(KEY, tip, "openai", flow="apikey")
    assert garbled.failure is FetchFailure.SERVICE_ERROR


# ------------------------------------------------------------------------------- 3LO


async def test_three_legged_flow_completes_in_the_background(
    vault: Running, tip: str, http: httpx.AsyncClient, sb: Sandbox
) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth", context={"chat": "42"})
    assert result.status is FetchStatus.AUTHORIZE
    assert result.flow is FetchFlow.OAUTH2_USER
    assert result.auth_url is not None
    assert result.auth_url.startswith(f"{sb.base_url}/demo-oauth/authorize?")
    assert result.to_tool_result() == {"authUrl": result.auth_url, "message": result.message}
    assert (await vault.creds.statistics()).flows_running == 1
    assert await vault.creds.describe(KEY) == []
    http.follow_redirects = True
    page = await consent(http, result.auth_url, "approve")
    assert "Authorization complete" in page.text
    event = await vault.next_event()
    assert event == CredentialAdded(KEY, "demo-oauth", {"chat": "42"})
    [status] = await vault.creds.describe(KEY)
    assert (status.name, status.stored, status.flow) == ("demo-oauth", True, FetchFlow.OAUTH2_USER)
    assert status.expires_in is not None
    assert 3500 <= status.expires_in <= 3600
    stats = await vault.creds.statistics()
    assert (stats.flows_running, stats.flows_completed, stats.flows_failed) == (0, 1, 0)
    assert stats.polls >= 1
    # The service keeps the user's token: the next fetch stores it at once.
    again = await vault.creds.fetch(KEY, tip, "demo-oauth", return_value=True)
    assert again.status is FetchStatus.STORED
    assert again.value is not None
    assert again.value.startswith("demo-at-")


async def test_three_legged_deny_ends_without_a_credential(
    vault: Running, tip: str, http: httpx.AsyncClient
) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth")
    assert result.auth_url is not None
    http.follow_redirects = True
    page = await consent(http, result.auth_url, "deny")
    assert "Authorization denied" in page.text
    event = await vault.next_event()
    assert isinstance(event, CredentialFlowFailed)
    assert (event.session_key, event.provider, event.failure) == (
        KEY,
        "demo-oauth",
        FetchFailure.DENIED,
    )
    assert "denied" in event.message
    assert await vault.creds.describe(KEY) == []
    stats = await vault.creds.statistics()
    assert (stats.flows_running, stats.flows_failed, stats.credentials) == (0, 1, 0)


async def _app_callback(http: httpx.AsyncClient, auth_url: str, decision: str) -> dict[str, str]:
    """Consent without following: the provider redirects to the app's own callback."""
    redirect = await consent(http, auth_url, decision)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == APP_CALLBACK
    return {key: values[0] for key, values in parse_qs(location.query).items()}


async def test_oauth2_callback_completes_the_flow(
    vault: Running, tip: str, http: httpx.AsyncClient
) -> None:
    result = await vault.creds.fetch(
        KEY, tip, "demo-oauth", redirect_url=APP_CALLBACK, scopes="profile, repo:read"
    )
    assert result.auth_url is not None
    query = parse_qs(urlsplit(result.auth_url).query)
    assert query["redirect_uri"] == [APP_CALLBACK]
    assert query["scope"] == ["profile repo:read"]
    params = await _app_callback(http, result.auth_url, "approve")
    # Another session cannot complete this session's flow with the same state.
    other = await vault.creds.complete_oauth2_callback(OTHER, tip, params["state"], params["code"])
    assert other.failure is FetchFailure.UNKNOWN_STATE
    missing = await vault.creds.complete_oauth2_callback(KEY, tip, params["state"])
    assert missing.failure is FetchFailure.INVALID_REQUEST
    no_tip = await vault.creds.complete_oauth2_callback(KEY, "", params["state"], params["code"])
    assert no_tip.failure is FetchFailure.NOT_LOGGED_IN
    done = await vault.creds.complete_oauth2_callback(
        KEY, tip, params["state"], params["code"], return_value=True
    )
    assert done.status is FetchStatus.STORED
    assert done.value is not None
    assert done.value.startswith("demo-at-")
    assert await vault.next_event() == CredentialAdded(KEY, "demo-oauth", {})
    [status] = await vault.creds.describe(KEY)
    assert status.stored
    assert (await vault.creds.statistics()).flows_running == 0
    replay = await vault.creds.complete_oauth2_callback(KEY, tip, params["state"], params["code"])
    assert replay.failure is FetchFailure.UNKNOWN_STATE


async def test_oauth2_callback_with_an_error_fails_the_flow(
    vault: Running, tip: str, http: httpx.AsyncClient
) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth", redirect_url=APP_CALLBACK)
    assert result.auth_url is not None
    params = await _app_callback(http, result.auth_url, "deny")
    assert params["error"] == "access_denied"
    denied = await vault.creds.complete_oauth2_callback(
        KEY, tip, params["state"], error=params["error"]
    )
    assert (denied.status, denied.failure) == (FetchStatus.FAILED, FetchFailure.DENIED)
    event = await vault.next_event()
    assert isinstance(event, CredentialFlowFailed)
    assert event.failure is FetchFailure.DENIED
    assert await vault.creds.describe(KEY) == []


async def test_oauth2_callback_with_a_bad_code_fails_the_flow(
    vault: Running, tip: str, http: httpx.AsyncClient
) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth", redirect_url=APP_CALLBACK)
    assert result.auth_url is not None
    params = await _app_callback(http, result.auth_url, "approve")
    bad = await vault.creds.complete_oauth2_callback(KEY, tip, params["state"], "forged-code")
    assert bad.failure is FetchFailure.SERVICE_ERROR
    assert "InvalidParameter.Code" in bad.message
    event = await vault.next_event()
    assert isinstance(event, CredentialFlowFailed)
    assert event.failure is FetchFailure.SERVICE_ERROR


async def test_flow_times_out(client: IdentityClient, tip: str) -> None:
    policy = PollPolicy(initial=0.02, factor=2.0, maximum=0.05, timeout=0.3)
    async with running_vault(client, poll=policy) as vault:
        result = await vault.creds.fetch(KEY, tip, "demo-oauth")
        assert result.status is FetchStatus.AUTHORIZE
        event = await vault.next_event()
        assert isinstance(event, CredentialFlowFailed)
        assert event.failure is FetchFailure.TIMEOUT
        assert "not completed within" in event.message
        assert (await vault.creds.statistics()).flows_running == 0


async def test_logout_cancels_a_running_poll(
    vault: Running, tip: str, http: httpx.AsyncClient
) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth")
    assert result.auth_url is not None
    other = await vault.creds.fetch(OTHER, tip, "openai")
    assert other.success
    assert (await vault.creds.statistics()).flows_running == 1
    assert await vault.creds.clear(KEY) == 0
    stats = await vault.creds.statistics()
    assert (stats.flows_running, stats.flows_failed, stats.credentials) == (0, 0, 1)
    polls = stats.polls
    # The user approves after logging out: nothing is stored, nothing is published.
    http.follow_redirects = True
    await consent(http, result.auth_url, "approve")
    await trio.sleep(0.3)  # several poll intervals of real time
    with pytest.raises(trio.WouldBlock):
        vault.events.receive_nowait()
    assert await vault.creds.describe(KEY) == []
    assert (await vault.creds.statistics()).polls == polls
    assert len(await vault.creds.describe(OTHER)) == 1  # other sessions are untouched


async def test_a_new_fetch_replaces_the_running_flow(vault: Running, tip: str) -> None:
    first = await vault.creds.fetch(KEY, tip, "demo-oauth")
    second = await vault.creds.fetch(KEY, tip, "demo-oauth")
    assert first.auth_url == second.auth_url  # the service continues the same session
    assert (await vault.creds.statistics()).flows_running == 1


async def test_retryable_poll_errors_are_retried(
    vault: Running, tip: str, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth")
    assert result.auth_url is not None
    # Two polls fail (each after the client's own two attempts), then the rule expires.
    rule = sb.faults.add("GetResourceOauth2Token", status=503, count=4)
    http.follow_redirects = True
    await consent(http, result.auth_url, "approve")
    assert isinstance(await vault.next_event(), CredentialAdded)
    assert rule.hits == 4
    assert (await vault.creds.statistics()).polls >= 3


async def test_a_failing_poll_ends_the_flow(vault: Running, tip: str, sb: Sandbox) -> None:
    result = await vault.creds.fetch(KEY, tip, "demo-oauth")
    assert result.status is FetchStatus.AUTHORIZE
    sb.faults.add("GetResourceOauth2Token", status=400, code="InvalidParameter.IdentityToken")
    event = await vault.next_event()
    assert isinstance(event, CredentialFlowFailed)
    assert event.failure is FetchFailure.SERVICE_ERROR
    assert "InvalidParameter.IdentityToken" in event.message


# -------------------------------------------------------------------------- edge cases


def _answer_with(sb: Sandbox, action: str, result: dict[str, object]) -> None:
    def handler(_ctx: object) -> dict[str, object]:
        return result

    sb.app.handlers[(ID_VERSION, action)] = handler


async def test_empty_answers_are_failures(
    vault: Running, tip: str, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    _answer_with(sb, "GetResourceApiKey", {})
    assert (await vault.creds.fetch(KEY, tip, "openai")).failure is FetchFailure.NO_TOKEN
    started = await vault.creds.fetch(KEY, tip, "demo-oauth", redirect_url=APP_CALLBACK)
    assert started.auth_url is not None
    params = await _app_callback(http, started.auth_url, "approve")
    _answer_with(sb, "Oauth2Callback", {})
    empty = await vault.creds.complete_oauth2_callback(KEY, tip, params["state"], params["code"])
    assert empty.failure is FetchFailure.NO_TOKEN
    event = await vault.next_event()
    assert isinstance(event, CredentialFlowFailed)
    assert event.failure is FetchFailure.NO_TOKEN
    _answer_with(sb, "GetResourceOauth2Token", {})
    assert (await vault.creds.fetch(KEY, tip, "demo-m2m")).failure is FetchFailure.NO_TOKEN
    _answer_with(sb, "GetRoleCredentials", {})
    role = await vault.creds.get_role(KEY, tip, "demo-role")
    assert not role.ok
    assert "no role credentials" in role.message
    assert await vault.creds.describe(KEY) == []


async def _fetch_during_logout(vault: Running, tip: str, provider: str) -> FetchResult:
    found: list[FetchResult] = []

    async def fetch() -> None:
        found.append(await vault.creds.fetch(KEY, tip, provider))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fetch)
        await trio.sleep(0.1)  # the call is in flight (the sandbox answers after 0.4 s)
        assert (await vault.creds.statistics()).calls_running == 1
        await vault.creds.clear(KEY)
    return found[0]


async def test_logout_during_a_fetch_stores_nothing(vault: Running, tip: str, sb: Sandbox) -> None:
    sb.faults.add("GetResourceApiKey", latency=0.4)
    sb.faults.add("GetResourceOauth2Token", latency=0.4)
    for provider in ("openai", "demo-oauth"):
        result = await _fetch_during_logout(vault, tip, provider)
        assert result.failure is FetchFailure.LOGGED_OUT, provider
    assert await vault.creds.describe(KEY) == []
    stats = await vault.creds.statistics()
    assert (stats.credentials, stats.flows_running) == (0, 0)


async def test_provider_lookup_pages_through_the_control_plane(
    vault: Running, tip: str, sb: Sandbox
) -> None:
    template = sb.state.providers[("default", "openai")]
    assert isinstance(template, ApiKeyProvider)
    # 150 providers whose names contain "k" and sort before it: "k" is on page 2.
    for number in range(150):
        name = f"bulk-{number:03d}"
        sb.state.providers[("default", name)] = replace(template, name=name)
    sb.state.providers[("default", "k")] = replace(template, name="k", api_key="sk-k-0001")
    result = await vault.creds.fetch(KEY, tip, "k", return_value=True)
    assert (result.flow, result.value) == (FetchFlow.APIKEY, "sk-k-0001")
    listing = await vault.creds.list_credentials(KEY, tip, 8)
    names = [p.name for p in listing.providers]
    assert names == [f"bulk-{n}" for n in range(140, 150)] + [
        "demo-m2m",
        "demo-oauth",
        "k",
        "openai",
    ]
    assert [p.name for p in listing.providers if p.stored] == ["k"]
    assert (listing.total, listing.has_more) == (154, False)
