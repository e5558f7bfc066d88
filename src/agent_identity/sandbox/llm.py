"""A stand-in for the remote LLM that reviews medium-risk tool calls.

Two endpoints, one behaviour:

* ``POST /v1/chat/completions`` — OpenAI-compatible chat completions. The key comes as
  ``Authorization: Bearer <key>``; the answer is a ``chat.completion`` object whose
  ``choices[0].message.content`` is the verdict JSON. Errors use OpenAI's shape
  ``{"error": {"message", "type", "param", "code"}}``.
* ``POST /v1/messages`` — Anthropic Messages. The key comes as ``x-api-key`` and an
  ``anthropic-version`` header is required; the answer is a ``message`` object whose
  ``content[0].text`` is the verdict JSON. Errors use ``{"type": "error", "error": {"type",
  "message"}}``.

So with the sandbox at ``http://127.0.0.1:PORT``, the plugin's ``llmRiskCheck.endpoint`` is
``http://127.0.0.1:PORT/v1``.

Accepted keys are :attr:`LlmSettings.api_keys`: the fixed dev key ``sk-sandbox-llm`` unless a
test replaces the set. A missing or wrong key is 401 (the key is never echoed).

The verdict is a careful reviewer's, reduced to a deterministic heuristic over the last user
message (the tool call as the plugin describes it):

1. network fetch piped to a shell (``curl … | sh``) → ``high`` "Pipe-to-shell: network fetch
   piped to shell execution";
2. a local file uploaded (``curl -T``, ``--data-binary @file``, ``-F f=@file``, ``scp file
   host:``) → ``high`` "Data exfiltration: local file uploaded to a remote host";
3. a package install from a well-known public registry (pip, npm, yarn, pnpm, apt, brew,
   cargo, gem, go) without a custom index, URL or git source → ``low``;
4. anything else → ``medium``.

:attr:`LlmSettings.verdict` overrides the heuristic. Always answered as the JSON content the
plugin's prompt asks for: ``{"risk": "...", "reason": "..."}``.

Run-time knobs (``sb.llm``): ``mode`` — ``normal``; ``garbage`` (200 with non-JSON content);
``error`` (500 in the provider's error shape); ``slow`` (sleeps ``delay`` seconds, then answers
normally). ``reject_response_format`` makes chat completions answer 400 when the request has
``response_format`` (a server without JSON mode). ``calls`` counts every request to either
endpoint (401s included); ``requests`` keeps the decoded bodies of the accepted ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
import trio

from agent_identity.sandbox.asgi import Request, Response, json_response
from agent_identity.sandbox.secrets import record_secret

__all__ = [
    "CHAT_PATH",
    "DEV_API_KEY",
    "MESSAGES_PATH",
    "PATHS",
    "LlmMode",
    "LlmSettings",
    "SandboxLlm",
    "review",
]

CHAT_PATH: Final = "/v1/chat/completions"
MESSAGES_PATH: Final = "/v1/messages"
PATHS: Final = frozenset({CHAT_PATH, MESSAGES_PATH})
DEV_API_KEY: Final = "sk-sandbox-llm"
MODEL_FALLBACK: Final = "sandbox-reviewer"

LlmMode = Literal["normal", "garbage", "error", "slow"]

PIPE_TO_SHELL: Final = "Pipe-to-shell: network fetch piped to shell execution"
EXFILTRATION: Final = "Data exfiltration: local file uploaded to a remote host"
REGISTRY_INSTALL: Final = "Package install from a well-known public registry"
NEEDS_REVIEW: Final = "Side effects are unclear from the call alone; a person should review it"

_PIPE_TO_SHELL_RE: Final = re.compile(
    r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:\S*/)?(?:ba|da|z|k)?sh\b"
)
_UPLOAD_RE: Final = re.compile(
    r"\bcurl\b.*(?:\s-T\s|--upload-file|--data-binary\s+@|-d\s+@|-F\s+\S+=@)"
    r"|\bscp\b\s+\S+\s+\S+:",
)
_INSTALL_RE: Final = re.compile(
    r"\b(?:pip3?|npm|pnpm|yarn|apt-get|apt|brew|cargo|gem|go)\s+(?:install|add|get|i)\b"
)
_CUSTOM_SOURCE_RE: Final = re.compile(
    r"--index-url|--extra-index-url|--registry|\s-i\s+http|git\+|https?://|\.tgz|\.whl"
)


@dataclass
class LlmSettings:
    """The sandbox LLM's run-time settings (``sb.llm``).

    Attributes:
        mode: ``normal``, ``garbage``, ``error`` or ``slow``.
        delay: Seconds a ``slow`` answer waits.
        api_keys: Keys accepted (default: the dev key).
        verdict: ``(risk, reason)`` answered instead of the heuristic's.
        reject_response_format: Answer 400 to chat requests carrying ``response_format``.
        calls: Requests received on the LLM endpoints.
        requests: Decoded bodies of the authenticated requests, oldest first.
    """

    mode: LlmMode = "normal"
    delay: float = 5.0
    api_keys: set[str] = field(default_factory=lambda: {DEV_API_KEY})
    verdict: tuple[str, str] | None = None
    reject_response_format: bool = False
    calls: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


def review(text: str) -> tuple[str, str]:
    """The heuristic verdict ``(risk, reason)`` on a described tool call."""
    if _PIPE_TO_SHELL_RE.search(text):
        return "high", PIPE_TO_SHELL
    if _UPLOAD_RE.search(text):
        return "high", EXFILTRATION
    if _INSTALL_RE.search(text) and not _CUSTOM_SOURCE_RE.search(text):
        return "low", REGISTRY_INSTALL
    return "medium", NEEDS_REVIEW


def _last_user_text(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    part.get("text", "")
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
    return ""


class SandboxLlm:
    """Serves the two LLM endpoints.

    Args:
        settings: The run-time settings (shared with the test through ``sb.llm``).
    """

    def __init__(self, settings: LlmSettings | None = None) -> None:
        self.settings = settings if settings is not None else LlmSettings()

    async def handle(self, request: Request) -> Response:
        """Answer one request to :data:`CHAT_PATH` or :data:`MESSAGES_PATH`."""
        # Every path checkpoints, so a hot client loop cannot starve the other requests.
        await trio.lowlevel.checkpoint()
        settings = self.settings
        settings.calls += 1
        # Tests swap the accepted keys at run time, so they are recorded as they are used.
        for key in settings.api_keys:
            record_secret(key)
        anthropic = request.path == MESSAGES_PATH
        if request.method != "POST":
            return _error(anthropic, 405, "invalid_request_error", "Only POST is supported.")
        if self._key(request, anthropic) not in settings.api_keys:
            kind = "authentication_error" if anthropic else "invalid_request_error"
            message = "invalid x-api-key" if anthropic else "Incorrect API key provided."
            return _error(anthropic, 401, kind, message, code="invalid_api_key")
        try:
            body = msgspec.json.decode(request.body)
        except msgspec.DecodeError:
            return _error(anthropic, 400, "invalid_request_error", "The body is not JSON.")
        problem = _invalid(body, request, anthropic)
        if problem is not None:
            return _error(anthropic, 400, "invalid_request_error", problem)
        settings.requests.append(body)
        if not anthropic and settings.reject_response_format and "response_format" in body:
            return _error(False, 400, "invalid_request_error", "response_format is not supported.")
        if settings.mode == "error":
            kind = "api_error" if anthropic else "server_error"
            return _error(anthropic, 500, kind, "The sandbox LLM failed (mode=error).")
        if settings.mode == "slow":
            await trio.sleep(settings.delay)
        risk, reason = settings.verdict or review(_last_user_text(body["messages"]))
        content = (
            "Sure! I think this looks fine, probably."
            if settings.mode == "garbage"
            else msgspec.json.encode({"risk": risk, "reason": reason}).decode()
        )
        model = body.get("model") or MODEL_FALLBACK
        return json_response(200, _answer(anthropic, model, content, len(settings.requests)))

    @staticmethod
    def _key(request: Request, anthropic: bool) -> str | None:
        if anthropic:
            return request.headers.get("x-api-key")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None


def _invalid(body: object, request: Request, anthropic: bool) -> str | None:
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: a non-empty string is required."
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: a non-empty array is required."
    if anthropic and "anthropic-version" not in request.headers:
        return "anthropic-version: header is required."
    if anthropic and not isinstance(body.get("max_tokens"), int):
        return "max_tokens: an integer is required."
    return None


def _answer(anthropic: bool, model: str, content: str, serial: int) -> dict[str, Any]:
    if anthropic:
        return {
            "id": f"msg_sandbox_{serial:06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    return {
        "id": f"chatcmpl-sandbox-{serial:06d}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _error(
    anthropic: bool, status: int, kind: str, message: str, *, code: str | None = None
) -> Response:
    if anthropic:
        return json_response(status, {"type": "error", "error": {"type": kind, "message": message}})
    return json_response(
        status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )
