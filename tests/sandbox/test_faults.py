"""Fault injection: status errors, 429 with Retry-After, latency, malformed bodies, count, rate."""

from __future__ import annotations

import random

import httpx
import pytest
import trio

from agent_identity.sandbox import Sandbox

from .helpers import Api

WHO = {"Name": "openclaw-agent"}


async def test_status_fault_uses_the_envelope(api: Api, sb: Sandbox) -> None:
    rule = sb.faults.add("GetWorkloadIdentity")
    error = await api.fail("GetWorkloadIdentity", WHO, 503)
    assert error["Code"] == "ServiceUnavailable"
    # Other actions are untouched; removing the rule restores the real answer.
    assert await api.ok("GetWorkloadPool", {})
    sb.faults.remove(rule)
    sb.faults.remove(rule)
    assert await api.ok("GetWorkloadIdentity", WHO)
    assert sb.requests.count("GetWorkloadIdentity") == 2
    assert rule.hits == 1


async def test_throttling_with_retry_after(api: Api, sb: Sandbox) -> None:
    sb.faults.add(None, status=429, retry_after=7)
    response = await api.send("GetWorkloadIdentity", WHO)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "RequestLimitExceeded"


async def test_custom_code(api: Api, sb: Sandbox) -> None:
    sb.faults.add("GetWorkloadIdentity", status=500, code="InternalServiceError")
    error = await api.fail("GetWorkloadIdentity", WHO, 500)
    assert error["Code"] == "InternalServiceError"


async def test_latency_only_rule_delays_the_real_answer(api: Api, sb: Sandbox) -> None:
    sb.faults.add("GetWorkloadIdentity", latency=0.3)
    start = trio.current_time()
    assert (await api.ok("GetWorkloadIdentity", WHO))["Name"] == "openclaw-agent"
    assert trio.current_time() - start >= 0.3


async def test_latency_with_status(api: Api, sb: Sandbox) -> None:
    sb.faults.add("GetWorkloadIdentity", latency=0.2, status=504)
    start = trio.current_time()
    error = await api.fail("GetWorkloadIdentity", WHO, 504)
    assert error["Code"] == "GatewayTimeout"
    assert trio.current_time() - start >= 0.2


async def test_latency_trips_a_client_timeout(sb: Sandbox) -> None:
    sb.faults.add("/latest/region_id", latency=1.0)
    async with httpx.AsyncClient(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(sb.region_url)


@pytest.mark.parametrize("malformed", [True, "text"])
async def test_malformed_non_json(api: Api, sb: Sandbox, malformed: bool | str) -> None:
    sb.faults.add("GetWorkloadIdentity", malformed=malformed)  # type: ignore[arg-type]
    response = await api.send("GetWorkloadIdentity", WHO)
    assert response.status_code == 200
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()


async def test_malformed_without_envelope(api: Api, sb: Sandbox) -> None:
    sb.faults.add("GetWorkloadIdentity", malformed="envelope")
    response = await api.send("GetWorkloadIdentity", WHO)
    assert response.status_code == 200
    assert "ResponseMetadata" not in response.json()


async def test_count_expiry(api: Api, sb: Sandbox) -> None:
    rule = sb.faults.add("GetWorkloadIdentity", status=500, count=2)
    await api.fail("GetWorkloadIdentity", WHO, 500)
    await api.fail("GetWorkloadIdentity", WHO, 500)
    assert await api.ok("GetWorkloadIdentity", WHO)
    assert rule not in sb.faults.rules
    assert sb.requests.count("GetWorkloadIdentity") == 3


async def test_rate_follows_the_seeded_random(api: Api, sb: Sandbox) -> None:
    sb.faults.rng = random.Random(7)
    sb.faults.add("GetWorkloadIdentity", rate=0.5)
    outcomes = [(await api.send("GetWorkloadIdentity", WHO)).status_code for _ in range(12)]
    replay = random.Random(7)
    expected = [503 if replay.random() < 0.5 else 200 for _ in range(12)]
    assert outcomes == expected
    assert 0 < outcomes.count(503) < 12


async def test_first_matching_rule_wins_and_clear(api: Api, sb: Sandbox) -> None:
    sb.faults.add("GetWorkloadIdentity", status=502)
    sb.faults.add(None, status=503)
    assert (await api.fail("GetWorkloadIdentity", WHO, 502))["Code"] == "BadGateway"
    assert (await api.fail("GetWorkloadPool", {}, 503))["Code"] == "ServiceUnavailable"
    sb.faults.clear()
    assert await api.ok("GetWorkloadPool", {})


async def test_path_rules_hit_pages_but_none_does_not(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.faults.add(None, status=503)
    assert (await http.get(sb.region_url)).status_code == 200
    sb.faults.add("/latest/", status=404, code="NotFound")
    assert (await http.get(sb.region_url)).status_code == 404
    assert sb.requests.count("/latest/region_id") == 2


@pytest.mark.parametrize("kwargs", [{"rate": 1.5}, {"count": 0}, {"latency": -1.0}])
async def test_bad_rules_are_refused(sb: Sandbox, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        sb.faults.add("X", **kwargs)  # type: ignore[arg-type]
