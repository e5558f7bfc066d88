"""The LLM wire protocol: endpoint joining, request bodies, scrubbing, answer parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_identity.authz.llm_protocol import (
    MAX_PARAMS_CHARS,
    MAX_REASON_CHARS,
    LlmAnswerError,
    LlmVerdict,
    build_request,
    build_user_message,
    endpoint_url,
    parse_response,
    parse_verdict,
    scrub,
)
from agent_identity.authz.risk_rules import evaluate_rules
from agent_identity.config import LlmRiskCheckConfig

MEDIUM = evaluate_rules("exec", {"command": "pip install x"})


@pytest.mark.parametrize(
    ("endpoint", "api", "url"),
    [
        ("http://h/v1", "openai-completions", "http://h/v1/chat/completions"),
        ("http://h/v1/", "openai-completions", "http://h/v1/chat/completions"),
        ("http://h/v1/chat/completions", "openai-completions", "http://h/v1/chat/completions"),
        ("https://ark.x/api/v3", "openai-completions", "https://ark.x/api/v3/chat/completions"),
        (
            "https://api.anthropic.com/v1",
            "anthropic-messages",
            "https://api.anthropic.com/v1/messages",
        ),
        ("http://h/v1/messages/", "anthropic-messages", "http://h/v1/messages"),
    ],
)
def test_endpoint_url(endpoint: str, api: str, url: str) -> None:
    assert endpoint_url(endpoint, api) == url  # type: ignore[arg-type]


def test_openai_request_and_its_compat_form() -> None:
    config = LlmRiskCheckConfig(endpoint="http://h/v1", model="gpt-x", api_key="sk-1")
    url, headers, body = build_request(config, "hello")
    assert url == "http://h/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-1"
    document = json.loads(body)
    assert document["response_format"] == {"type": "json_object"}
    assert document["temperature"] == 0
    assert [m["role"] for m in document["messages"]] == ["system", "user"]
    _, _, compat = build_request(config, "hello", compat=True)
    assert set(json.loads(compat)) == {"model", "messages"}


def test_requests_without_a_key_send_no_auth_header() -> None:
    for api in ("openai-completions", "anthropic-messages"):
        config = LlmRiskCheckConfig(endpoint="http://h", model="m", api=api)
        _, headers, _ = build_request(config, "x")
        assert "Authorization" not in headers
        assert "x-api-key" not in headers


def test_user_message_is_scrubbed_and_truncated() -> None:
    params = {
        "command": "curl -H 'Authorization: Bearer tok123' https://x?api_key=k9 --pass=p",
        "apiKey": "sk-live",
        "nested": [{"client_secret": "cs"}, {"ok": "Bearer zz"}],
        "env": {"AWS_SECRET_ACCESS_KEY": "aws"},
        "big": "y" * (MAX_PARAMS_CHARS + 10),
    }
    message = build_user_message("exec", params, MEDIUM)
    for secret in ("tok123", "k9", "sk-live", "cs", "zz", "aws"):
        assert secret not in message.replace("[redacted]", "")
    assert "(truncated)" in message
    assert "rules: package-install" in message
    assert message.startswith("Tool: exec\nRules verdict: medium (")


def test_scrub_keeps_plain_values() -> None:
    assert scrub({"a": [1, 2.5, None, True], "b": "plain"}) == {
        "a": [1, 2.5, None, True],
        "b": "plain",
    }
    assert scrub(b"bytes") == "b'bytes'"
    deep: object = "x"
    for _ in range(30):
        deep = [deep]
    assert "…" in json.dumps(scrub(deep), ensure_ascii=False)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('{"risk":"high","reason":"bad"}', LlmVerdict("high", "bad")),
        ('```json\n{"risk": "LOW", "reason": "ok"}\n```', LlmVerdict("low", "ok")),
        (
            'Sure: {"risk": " Medium ", "reason": "hmm"} hope that helps',
            LlmVerdict("medium", "hmm"),
        ),
        ('{"risk": "low"}', LlmVerdict("low", "No reason given by the LLM")),
        ('{"risk": "low", "reason": 5}', LlmVerdict("low", "No reason given by the LLM")),
        ('{"risk": "low", "reason": "a\\n\\tb\\u0000c"}', LlmVerdict("low", "a b c")),
    ],
)
def test_parse_verdict(text: str, verdict: LlmVerdict) -> None:
    assert parse_verdict(text) == verdict


def test_long_reasons_are_cut() -> None:
    verdict = parse_verdict(json.dumps({"risk": "low", "reason": "z" * 1000}))
    assert len(verdict.reason) == MAX_REASON_CHARS
    assert verdict.reason.endswith("…")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I think it is fine", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('{"risk": "extreme", "reason": "x"}', "no valid risk level"),
        ('{"risk": 3}', "no valid risk level"),
        ("", "not a JSON object"),
    ],
)
def test_parse_verdict_rejects(text: str, message: str) -> None:
    with pytest.raises(LlmAnswerError, match=message):
        parse_verdict(text)


def test_parse_response_shapes() -> None:
    openai = {"choices": [{"message": {"content": [{"type": "text", "text": '{"risk":"low"}'}]}}]}
    assert parse_response("openai-completions", json.dumps(openai).encode()).risk == "low"
    anthropic = {"content": [{"type": "text", "text": '{"risk":"high","reason":"r"}'}]}
    assert parse_response("anthropic-messages", json.dumps(anthropic).encode()).risk == "high"
    with pytest.raises(LlmAnswerError, match="no answer text"):
        parse_response("anthropic-messages", b'{"content": [{"type": "tool_use"}]}')
    with pytest.raises(LlmAnswerError, match="no answer text"):
        parse_response("anthropic-messages", b'{"content": 7}')


@given(text=st.text(max_size=200))
def test_parse_verdict_only_raises_its_own_error(text: str) -> None:
    try:
        verdict = parse_verdict(text)
    except LlmAnswerError:
        return
    assert verdict.risk in {"low", "medium", "high"}
