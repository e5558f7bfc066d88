"""Test helpers: a signing API client for the sandbox and a tiny HTML form reader."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine.signer import SigningCredentials, sign_request

ID_VERSION = "2025-10-30"
STS_VERSION = "2018-01-01"


@dataclass
class Api:
    """Signs requests the way the SDK does and sends them to a sandbox over loopback."""

    client: httpx.AsyncClient
    sb: Sandbox
    credentials: SigningCredentials | None = None
    region: str = "cn-beijing"

    @property
    def creds(self) -> SigningCredentials:
        return self.credentials or SigningCredentials(
            self.sb.access_key_id, self.sb.secret_access_key
        )

    def with_credentials(self, credentials: SigningCredentials) -> Api:
        return Api(self.client, self.sb, credentials, self.region)

    def signed(
        self,
        action: str,
        body: bytes,
        *,
        version: str = ID_VERSION,
        service: str | None = None,
        method: str = "POST",
        content_type: str = "application/json",
        credentials: SigningCredentials | None = None,
        moment: datetime | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        params = [("Action", action), ("Version", version), *(query or [])]
        headers = sign_request(
            method=method,
            host=self.sb.host,
            path="/",
            query=params,
            headers={"Content-Type": content_type, "X-Sdk-Request": "attempt=1; max=1"},
            body=body,
            credentials=credentials or self.creds,
            region=self.region,
            service=service or ("sts" if version == STS_VERSION else "id"),
            moment=moment or datetime.now(UTC),
        )
        return params, headers

    async def send(
        self,
        action: str,
        body: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        payload = raw if raw is not None else json.dumps(body or {}).encode()
        method = kwargs.get("method", "POST")
        params, headers = self.signed(action, payload, **kwargs)
        return await self.client.request(
            method,
            f"{self.sb.base_url}/",
            params=tuple(params),
            content=payload,
            headers=headers,
        )

    async def ok(self, action: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        response = await self.send(action, body, **kwargs)
        assert response.status_code == 200, response.text
        document = response.json()
        assert "Error" not in document["ResponseMetadata"], response.text
        return document["Result"]

    async def fail(
        self, action: str, body: dict[str, Any] | None, status: int, **kwargs: Any
    ) -> dict[str, Any]:
        response = await self.send(action, body, **kwargs)
        assert response.status_code == status, response.text
        document = response.json()
        assert "Result" not in document
        error: dict[str, Any] = document["ResponseMetadata"]["Error"]
        return error

    async def user_tip(
        self, sub: str = "alice", *, name: str | None = "openclaw-agent", **extra: Any
    ) -> str:
        body: dict[str, Any] = {
            "UserToken": self.sb.issue_user_token("agent-identity-dev", sub),
            "WorkloadPoolName": "default",
            **extra,
        }
        if name is not None:
            body["Name"] = name
        result = await self.ok("GetWorkloadAccessTokenForJWT", body)
        token: str = result["WorkloadAccessToken"]
        return token

    async def assume_role(self, role: str = "openclaw-agent", **extra: str) -> SigningCredentials:
        form = {
            "RoleTrn": f"trn:iam::{self.sb.state.account_id}:role/{role}",
            "RoleSessionName": "test-session",
            **extra,
        }
        raw = urlencode(form).encode()
        response = await self.send(
            "AssumeRole",
            raw=raw,
            version=STS_VERSION,
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200, response.text
        creds = response.json()["Result"]["Credentials"]
        return SigningCredentials(
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
        )


@dataclass
class Form:
    """An HTML form as a browser would post it."""

    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = Form()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.form.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden":
            self.form.fields[found["name"]] = found.get("value", "")
        elif tag == "button" and "name" in found:
            self.form.buttons.append((found["name"], found.get("value", "")))


def read_form(page: httpx.Response) -> Form:
    parser = _FormParser()
    parser.feed(page.text)
    parser.form.action = urljoin(str(page.url), parser.form.action)
    return parser.form
