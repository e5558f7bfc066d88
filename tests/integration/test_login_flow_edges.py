"""Edges of the flow after the code exchange: the store, the TIP hook, the provider."""

from __future__ import annotations

import pytest
import trio

from agent_identity.actors.login_flow import LoginFailure, LoginFlow
from agent_identity.oidc import OidcClient, OidcError, OidcSettings
from agent_identity.storage import SessionRecord

from .conftest import LoginStack, make_oidc

pytestmark = pytest.mark.slow

KEY = "agent:main:feishu:direct:ou_alice"


def use_flow(stack: LoginStack, flow: LoginFlow) -> LoginFlow:
    stack.late.flow = flow
    return flow


async def test_a_failing_tip_hook_does_not_fail_the_login(
    stack: LoginStack, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(record: SessionRecord) -> None:
        await trio.lowlevel.checkpoint()
        raise RuntimeError(f"no TIP for {record.sub}")

    oidc = make_oidc(stack.sb, stack.http, stack.callback_url)
    flow = use_flow(stack, LoginFlow(stack.logins, oidc, stack.sessions, acquire_tip=broken))
    with trio.fail_after(30):
        page = await stack.browse(await flow.start_login(KEY))
    assert page.status_code == 200
    assert (await stack.sessions.get(KEY)) is not None
    assert "acquiring a TIP after the login of alice failed" in caplog.text
    assert "no TIP for alice" not in page.text


async def test_a_slow_tip_hook_is_abandoned(
    stack: LoginStack, caplog: pytest.LogCaptureFixture
) -> None:
    async def slow(record: SessionRecord) -> None:
        await trio.sleep_forever()

    oidc = make_oidc(stack.sb, stack.http, stack.callback_url)
    flow = use_flow(
        stack,
        LoginFlow(stack.logins, oidc, stack.sessions, acquire_tip=slow, tip_hook_timeout=0.2),
    )
    with trio.fail_after(30):
        page = await stack.browse(await flow.start_login(KEY))
    assert page.status_code == 200
    assert "timed out" in caplog.text


async def test_without_a_tip_hook(stack: LoginStack) -> None:
    oidc = make_oidc(stack.sb, stack.http, stack.callback_url)
    flow = use_flow(stack, LoginFlow(stack.logins, oidc, stack.sessions, now=lambda: 1234.0))
    with trio.fail_after(30):
        page = await stack.browse(await flow.start_login(KEY))
    assert page.status_code == 200
    view = await stack.sessions.get(KEY)
    assert view is not None
    assert view.login_at == 1234.0
    outcome = stack.late.outcomes[-1]
    assert (outcome.ok, outcome.sub, outcome.session_key) == (True, "alice", KEY)
    assert outcome.failure is None
    assert stack.tips == []


async def test_a_stopped_store_fails_the_login_with_no_session(stack: LoginStack) -> None:
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY)
        await stack.store.stop()
        page = await stack.browse(url)
    assert page.status_code == 400
    assert "could not be saved" in page.text
    outcome = stack.late.outcomes[-1]
    assert outcome.failure is LoginFailure.STORE_FAILED
    assert stack.tips == []


async def test_start_login_reports_an_unreachable_provider(stack: LoginStack) -> None:
    oidc = OidcClient(
        OidcSettings(
            discovery_url=f"{stack.sb.base_url}/userpool/up-missing",
            client_id="client",
            redirect_uri=stack.callback_url,
        ),
        stack.http,
    )
    flow = LoginFlow(stack.logins, oidc, stack.sessions)
    with trio.fail_after(30), pytest.raises(OidcError) as info:
        await flow.start_login(KEY)
    assert info.value.reason_code.startswith("discovery")
    # Nothing was left pending for a login that never got a URL.
    assert (await stack.logins.statistics()).pending == 0
