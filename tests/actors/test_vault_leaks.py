"""No credential value in any log record, message, repr or exception text.

Every flow runs against the sandbox over loopback with logging at DEBUG; afterwards every
secret the vault ever held or was given (API keys, access tokens, STS keys, imported values,
the TIP, the OAuth2 code) is searched for in the captured records, in every result's message
and repr, and in the text of every exception a failing call produced.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent_identity.actors.vault_messages import (
    CompleteCallback,
    Fetch,
    GetRole,
    SetBinding,
)
from agent_identity.actors.vault_types import FetchStatus
from agent_identity.kernel import ActorStopped, Reply
from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import IdentityClient

from .vault_support import (
    APP_CALLBACK,
    consent,
    leaked,
    mint_tip,
    record_texts,
    running_vault,
)

KEY = "agent:main:discord:direct:alice"


async def test_no_secret_in_logs_results_or_errors(
    caplog: pytest.LogCaptureFixture, sb: Sandbox, http: httpx.AsyncClient, client: IdentityClient
) -> None:
    caplog.set_level(logging.DEBUG)
    tip = await mint_tip(client, sb, "alice")
    secrets: list[str] = [tip]
    texts: list[str] = []
    imported = "imported-secret-value-0042"
    secrets.append(imported)
    async with running_vault(client) as vault:
        creds = vault.creds
        results: list[object] = [
            await creds.fetch(KEY, tip, "openai", return_value=True),
            await creds.fetch(KEY, tip, "demo-m2m", return_value=True),
            await creds.set_binding(KEY, "openai", "OPENAI_API_KEY", environ={}),
            await creds.set_binding(KEY, "github", "GH_TOKEN", environ={"GH_TOKEN": imported}),
            await creds.get_role(KEY, tip, "demo-role", show_secrets=True),
            await creds.set_binding(KEY, "demo-role", "VOLCENGINE", environ={}),
            await creds.fetch(KEY, tip, "nope", flow="apikey"),
        ]
        started = await creds.fetch(KEY, tip, "demo-oauth", redirect_url=APP_CALLBACK)
        assert started.auth_url is not None
        # The test's "browser" sees the code in its redirect; keep its header dump out.
        with caplog.at_level(logging.INFO, logger="httpcore"):
            redirect = await consent(http, started.auth_url, "approve")
        query = parse_qs(urlsplit(redirect.headers["location"]).query)
        state, code = query["state"][0], query["code"][0]
        secrets.append(code)
        done = await creds.complete_oauth2_callback(KEY, tip, state, code, return_value=True)
        assert done.status is FetchStatus.STORED
        results += [started, done, await creds.list_credentials(KEY, tip)]
        results.append(await creds.describe(KEY))
        overlay = await creds.lease(KEY, "run:call")
        assert set(overlay) >= {"OPENAI_API_KEY", "GH_TOKEN", "VOLCENGINE_SECRET_KEY"}
        state_obj = vault.vault._state  # every credential the vault holds
        assert state_obj is not None
        for credentials in state_obj.credentials.values():
            for credential in credentials.values():
                secrets.extend(credential.secrets())
                texts.append(repr(credential))
        secrets.extend(overlay.values())
        texts.append(repr(await creds.statistics()))
        # Envelopes never show what they carry.
        reply: Reply[object] = Reply()
        texts += [
            repr(Fetch(reply, KEY, tip, "openai")),  # type: ignore[arg-type]
            repr(CompleteCallback(reply, KEY, tip, state, code)),  # type: ignore[arg-type]
            repr(GetRole(reply, KEY, tip, "demo-role")),  # type: ignore[arg-type]
            repr(SetBinding(reply, KEY, "github", "GH_TOKEN", imported)),  # type: ignore[arg-type]
        ]
        # Failing calls: the exception texts too.
        await vault.store.stop()
        with pytest.raises(ActorStopped) as stopped:
            await creds.set_binding(KEY, "x", "X_TOKEN", environ={"X_TOKEN": imported})
        texts += [str(stopped.value), repr(stopped.value)]
    for result in results:
        texts.append(repr(result))
        message = getattr(result, "message", None)
        if isinstance(message, str):
            texts.append(message)
    texts += record_texts(caplog.records)
    assert len(secrets) >= 8
    found = leaked(secrets, texts)
    where = [text[:300] for text in texts if any(secret in text for secret in found)]
    assert found == [], where
    # The checked texts are not empty: the vault did log what it did.
    assert any("stored a openai credential" in text for text in texts)
