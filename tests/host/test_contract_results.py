"""Hook results, approvals, replies, tool results and gateway responses on the wire."""

from __future__ import annotations

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given

from agent_identity.host.contract import PayloadError, decode_as, to_wire, utf16_len
from agent_identity.host.results import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    APPROVAL_DECISIONS,
    APPROVAL_DESCRIPTION_MAX,
    APPROVAL_TITLE_MAX,
    CANCELLED,
    DEFAULT_APPROVAL_TIMEOUT_MS,
    DENY,
    MAX_APPROVAL_TIMEOUT_MS,
    TIMEOUT,
    BeforeAgentStartResult,
    BeforeDispatchResult,
    BeforeToolCallResult,
    GatewayError,
    GatewayErrorCode,
    ReplyPayload,
    RequireApproval,
    SessionGetResult,
    SessionPutResult,
    TextContent,
    ToolResult,
    approval_request,
    clip_approval_text,
    text_result,
)

GRIN = "\U0001f600"


def test_decisions_and_limits() -> None:
    assert (ALLOW_ONCE, ALLOW_ALWAYS, DENY, TIMEOUT, CANCELLED) == APPROVAL_DECISIONS
    assert APPROVAL_DECISIONS == ("allow-once", "allow-always", "deny", "timeout", "cancelled")
    assert (APPROVAL_TITLE_MAX, APPROVAL_DESCRIPTION_MAX) == (80, 256)
    assert (DEFAULT_APPROVAL_TIMEOUT_MS, MAX_APPROVAL_TIMEOUT_MS) == (120_000, 600_000)


@pytest.mark.parametrize(
    ("result", "wire"),
    [
        (
            BeforeDispatchResult(handled=True, text="Please log in"),
            {"handled": True, "text": "Please log in"},
        ),
        (BeforeDispatchResult(handled=False), {"handled": False}),
        (BeforeAgentStartResult(), {}),
        (
            BeforeAgentStartResult(prepend_context="ctx", model_override="m"),
            {"prependContext": "ctx", "modelOverride": "m"},
        ),
        (
            BeforeAgentStartResult(
                system_prompt="s",
                append_context="a",
                prepend_system_context="ps",
                append_system_context="as",
                provider_override="p",
            ),
            {
                "systemPrompt": "s",
                "appendContext": "a",
                "prependSystemContext": "ps",
                "appendSystemContext": "as",
                "providerOverride": "p",
            },
        ),
        (BeforeToolCallResult(), {}),
        (
            BeforeToolCallResult(block=True, block_reason="Not logged in"),
            {"block": True, "blockReason": "Not logged in"},
        ),
        (BeforeToolCallResult(block=False), {"block": False}),
        (
            BeforeToolCallResult(params={"env": {"OPENAI_API_KEY": "sk"}}),
            {"params": {"env": {"OPENAI_API_KEY": "sk"}}},
        ),
        (
            BeforeToolCallResult(
                require_approval=RequireApproval(
                    title="High-risk command",
                    description="rm -rf /",
                    severity="critical",
                    timeout_ms=300_000,
                    timeout_behavior="deny",
                    allowed_decisions=["allow-once", "deny"],
                )
            ),
            {
                "requireApproval": {
                    "title": "High-risk command",
                    "description": "rm -rf /",
                    "severity": "critical",
                    "timeoutMs": 300_000,
                    "timeoutBehavior": "deny",
                    "allowedDecisions": ["allow-once", "deny"],
                }
            },
        ),
        (ReplyPayload(text="hi"), {"text": "hi"}),
        (
            ReplyPayload(text="no", is_error=True, continue_agent=True, media_urls=["u"]),
            {"text": "no", "isError": True, "continueAgent": True, "mediaUrls": ["u"]},
        ),
        (
            ToolResult(content=[TextContent(text="ok")], details={}),
            {"content": [{"type": "text", "text": "ok"}], "details": {}},
        ),
        (
            GatewayError(code=GatewayErrorCode.FORBIDDEN, message="webchat only"),
            {"code": "FORBIDDEN", "message": "webchat only"},
        ),
        (
            GatewayError(
                code="UNAVAILABLE",
                message="m",
                details={"x": None},
                retryable=True,
                retry_after_ms=500,
            ),
            {
                "code": "UNAVAILABLE",
                "message": "m",
                "details": {"x": None},
                "retryable": True,
                "retryAfterMs": 500,
            },
        ),
        (
            SessionPutResult(
                sub="u1", expires_at=1767225600000, effective_session_key="k", has_tip=False
            ),
            {"sub": "u1", "expiresAt": 1767225600000, "effectiveSessionKey": "k", "hasTip": False},
        ),
        (
            SessionGetResult(
                user_token="eyJ",
                sub="u1",
                expires_at=1,
                effective_session_key="k",
                has_refresh_token=True,
            ),
            {
                "userToken": "eyJ",
                "sub": "u1",
                "expiresAt": 1,
                "effectiveSessionKey": "k",
                "hasRefreshToken": True,
            },
        ),
    ],
)
def test_wire_shapes(result: msgspec.Struct, wire: dict[str, object]) -> None:
    assert to_wire(result) == wire
    assert msgspec.json.decode(msgspec.json.encode(result)) == wire
    assert decode_as(type(result), wire) == result


def test_text_result() -> None:
    details = {"sub": None, "loggedIn": False}
    result = text_result("Not logged in.", details)
    assert to_wire(result) == {
        "content": [{"type": "text", "text": "Not logged in."}],
        "details": {"sub": None, "loggedIn": False},
    }
    details["loggedIn"] = True  # the result holds its own copy
    assert result.details == {"sub": None, "loggedIn": False}
    assert text_result("x").details == {}


def test_tool_result_from_the_wire_checks_block_types() -> None:
    bad = decode_as(ToolResult, {"content": [{"type": "image", "data": "…"}], "details": {}})
    assert isinstance(bad, PayloadError)


# ---------------------------------------------------------------- approvals


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 80, "short"),
        ("x" * 80, 80, "x" * 80),
        ("x" * 81, 80, "x" * 79 + "…"),
        (GRIN * 40, 80, GRIN * 40),
        (GRIN * 41, 80, GRIN * 39 + "…"),  # 39 emoji = 78 units, + ellipsis = 79
        ("abc", 1, "…"),
        ("abc", 0, ""),
        ("", 0, ""),
    ],
)
def test_clip_approval_text(text: str, limit: int, expected: str) -> None:
    assert clip_approval_text(text, limit) == expected


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_clipped_text_always_fits(text: str, limit: int) -> None:
    clipped = clip_approval_text(text, limit)
    assert utf16_len(clipped) <= limit
    if utf16_len(text) <= limit:
        assert clipped == text
    else:
        assert text.startswith(clipped.removesuffix("…"))


def test_approval_request_fits_the_host_schema() -> None:
    approval = approval_request(
        "T" * 100, "rm -rf " + "/very/long/path" * 40, severity="critical", timeout_ms=10**9
    )
    assert utf16_len(approval.title) == APPROVAL_TITLE_MAX
    assert utf16_len(approval.description) == APPROVAL_DESCRIPTION_MAX
    assert approval.timeout_ms == MAX_APPROVAL_TIMEOUT_MS
    assert approval.severity == "critical"


@pytest.mark.parametrize(
    ("title", "description", "expected"),
    [("Run exec?", "", "Run exec?"), ("", "", "-"), ("t", "d", "d")],
)
def test_approval_description_is_never_empty(title: str, description: str, expected: str) -> None:
    assert approval_request(title, description).description == expected


@pytest.mark.parametrize(
    ("timeout_ms", "expected"),
    [(None, None), (0, 1), (-5, 1), (120_000, 120_000), (600_001, 600_000)],
)
def test_approval_timeout_is_clamped(timeout_ms: int | None, expected: int | None) -> None:
    assert approval_request("t", "d", timeout_ms=timeout_ms).timeout_ms == expected


def test_approval_request_passes_options_through() -> None:
    approval = approval_request(
        "t", "d", timeout_behavior="allow", allowed_decisions=[ALLOW_ONCE, DENY]
    )
    assert to_wire(approval) == {
        "title": "t",
        "description": "d",
        "timeoutBehavior": "allow",
        "allowedDecisions": ["allow-once", "deny"],
    }
