"""LlmRiskChecker without sockets: cache TTL on Trio's MockClock, eviction, single flight."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from agent_identity.authz.llm_risk import LlmRiskChecker, call_digest
from agent_identity.authz.risk_rules import evaluate_rules
from agent_identity.config import LlmRiskCheckConfig

ENDPOINT = "http://llm.test/v1"
MEDIUM = evaluate_rules("exec", {"command": "pip install x"})


def answer(risk: str = "low", reason: str = "fine") -> httpx.Response:
    content = json.dumps({"risk": risk, "reason": reason})
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


class Recorder:
    """A mock LLM: counts requests and answers with ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.respond = respond or (lambda _request: answer())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


def checker(
    recorder: Recorder | httpx.AsyncBaseTransport, **settings: object
) -> tuple[LlmRiskChecker, httpx.AsyncClient]:
    transport = (
        recorder
        if isinstance(recorder, httpx.AsyncBaseTransport)
        else httpx.MockTransport(recorder)
    )
    http = httpx.AsyncClient(transport=transport)
    config = LlmRiskCheckConfig(
        endpoint=ENDPOINT,
        model="m",
        api_key="k",
        **settings,  # type: ignore[arg-type]
    )
    return LlmRiskChecker(config, http, max_cache_entries=2), http


async def test_cache_ttl_expires_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    llm, http = checker(recorder, cache_ttl_ms=1000)
    async with http:
        assert (await llm.reevaluate("exec", {"command": "a"}, MEDIUM)).source == "llm"
        await trio.sleep(0.9)
        await llm.reevaluate("exec", {"command": "a"}, MEDIUM)
        assert len(recorder.requests) == 1
        await trio.sleep(0.2)
        await llm.reevaluate("exec", {"command": "a"}, MEDIUM)
        assert len(recorder.requests) == 2
    stats = llm.statistics()
    assert (stats.calls, stats.cache_hits, stats.successes) == (2, 1, 2)


async def test_zero_ttl_disables_the_cache() -> None:
    recorder = Recorder()
    llm, http = checker(recorder, cache_ttl_ms=0)
    async with http:
        for _ in range(3):
            await llm.reevaluate("exec", {"command": "a"}, MEDIUM)
    assert len(recorder.requests) == 3
    assert llm.statistics().cached == 0


async def test_the_cache_is_bounded_and_can_be_cleared() -> None:
    recorder = Recorder()
    llm, http = checker(recorder)
    async with http:
        for command in ("a", "b", "c", "a"):
            await llm.reevaluate("exec", {"command": command}, MEDIUM)
        # "a" was evicted as the oldest when "c" came in.
        assert len(recorder.requests) == 4
        assert llm.statistics().cached == 2
        llm.clear_cache()
        assert llm.statistics().cached == 0


async def test_expired_entries_go_first(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    llm, http = checker(recorder, cache_ttl_ms=1000)
    async with http:
        await llm.reevaluate("exec", {"command": "old"}, MEDIUM)
        await trio.sleep(2)
        await llm.reevaluate("exec", {"command": "b"}, MEDIUM)
        await llm.reevaluate("exec", {"command": "c"}, MEDIUM)
        assert llm.statistics().cached == 2
        await llm.reevaluate("exec", {"command": "b"}, MEDIUM)
        assert len(recorder.requests) == 3


class BlockingTransport(httpx.AsyncBaseTransport):
    """Answers only when released; counts requests."""

    def __init__(self) -> None:
        self.count = 0
        self.release = trio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        await self.release.wait()
        return answer("high", "blocked then answered")


async def test_a_cancelled_leader_lets_the_waiter_call_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = BlockingTransport()
    llm, http = checker(transport, timeout_ms=60_000)
    outcomes: list[str] = []

    async def call() -> None:
        outcomes.append((await llm.reevaluate("exec", {"command": "x"}, MEDIUM)).risk)

    async with http, trio.open_nursery() as nursery:
        leader = trio.CancelScope()

        async def lead() -> None:
            with leader:
                await call()

        nursery.start_soon(lead)
        await trio.sleep(0.1)
        nursery.start_soon(call)  # waits on the leader's flight
        await trio.sleep(0.1)
        leader.cancel()
        await trio.sleep(0.1)
        assert transport.count == 2  # the waiter took over with a request of its own
        transport.release.set()
    assert outcomes == ["high"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="<html>"), "response is not JSON"),
        (httpx.Response(200, json={"choices": []}), "response has no answer text"),
        (httpx.Response(200, json=["x"]), "response has no answer text"),
        (httpx.Response(200, json={"choices": [{"message": None}]}), "response has no answer text"),
        (answer("extreme"), "answer has no valid risk level (low, medium or high)"),
        (httpx.Response(200, content=b"x" * 300_000), "response too large"),
        (httpx.Response(429, json={"error": {}}), "HTTP 429"),
    ],
)
async def test_unusable_responses(response: httpx.Response, error: str) -> None:
    llm, http = checker(Recorder(lambda _request: response))
    async with http:
        assessment = await llm.reevaluate("exec", {"command": "a"}, MEDIUM)
    assert (assessment.source, assessment.llm_error) == ("rules", error)


async def test_anthropic_400_is_not_retried() -> None:
    recorder = Recorder(lambda _request: httpx.Response(400, json={}))
    llm, http = checker(recorder, api="anthropic-messages")
    async with http:
        assessment = await llm.reevaluate("exec", {"command": "a"}, MEDIUM)
    assert assessment.llm_error == "HTTP 400"
    assert len(recorder.requests) == 1
    assert recorder.requests[0].url == "http://llm.test/v1/messages"
    assert recorder.requests[0].headers["x-api-key"] == "k"
    assert recorder.requests[0].headers["anthropic-version"] == "2023-06-01"


async def test_openai_headers_and_url() -> None:
    recorder = Recorder()
    llm, http = checker(recorder)
    async with http:
        await llm.reevaluate("exec", {"command": "a"}, MEDIUM)
    [request] = recorder.requests
    assert request.url == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["content-type"] == "application/json"


def test_call_digest_is_order_independent_and_total() -> None:
    assert call_digest("exec", {"a": 1, "b": 2}) == call_digest("exec", {"b": 2, "a": 1})
    assert call_digest("exec", {"a": 1}) != call_digest("write", {"a": 1})
    odd = {"when": object(), 1: "int key"}
    assert len(call_digest("exec", odd)) == 64  # type: ignore[arg-type]
