"""Endpoint resolution (every branch, against the sandbox's metadata endpoint) and regions."""

from __future__ import annotations

import socket

import httpx
import pytest

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine.endpoint import (
    DEFAULT_ENDPOINT,
    endpoint_for_region,
    is_valid_region,
    resolve_endpoint,
    signing_region_for,
)


@pytest.mark.parametrize(
    "region", ["cn-beijing", "cn-shanghai", "cn-guangzhou", "ap-southeast-1", "cn-north-1"]
)
def test_valid_regions(region: str) -> None:
    assert is_valid_region(region)
    assert endpoint_for_region(region) == f"https://id.{region}.volcengineapi.com"


@pytest.mark.parametrize(
    "text",
    [
        "unknown",
        "",
        "CN-BEIJING",
        "cn_beijing",
        "cn-beijing-",
        "cn-beijing-x",
        "c-beijing",
        "cn-beijing.evil.com",
        "cn-beijing/x",
        "cn-beijing\n",
        " cn-beijing",
        "<html>",
        "a" * 70 + "-b",
    ],
)
def test_invalid_regions(text: str) -> None:
    assert not is_valid_region(text)
    with pytest.raises(ValueError, match="not a region id"):
        endpoint_for_region(text)


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("id.cn-shanghai.volcengineapi.com", "cn-shanghai"),
        ("https://id.ap-southeast-1.volcengineapi.com", "ap-southeast-1"),
        ("https://id.cn-guangzhou.volcengineapi.com:443/", "cn-guangzhou"),
        ("id.cn-shanghai.volcengineapi.com:8443", "cn-shanghai"),
        ("ID.CN-SHANGHAI.VOLCENGINEAPI.COM", "cn-shanghai"),
        ("open.volcengineapi.com", "cn-beijing"),
        ("id.cn-shanghai.byteplusapi.com", "cn-beijing"),
        ("id.unknown.volcengineapi.com", "cn-beijing"),
        ("http://127.0.0.1:8080", "cn-beijing"),
        ("127.0.0.1:8080", "cn-beijing"),
        ("", "cn-beijing"),
    ],
)
def test_signing_region_for(host: str, region: str) -> None:
    assert signing_region_for(host) == region


async def test_explicit_endpoint_wins(sb: Sandbox, http: httpx.AsyncClient) -> None:
    found = await resolve_endpoint("https://id.cn-shanghai.volcengineapi.com/", sb.region_url, http)
    assert found == "https://id.cn-shanghai.volcengineapi.com"
    assert sb.requests.count("/latest/region_id") == 0


async def test_region_from_metadata(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.metadata.region_body = "cn-shanghai\n"
    found = await resolve_endpoint(None, sb.region_url, http)
    assert found == "https://id.cn-shanghai.volcengineapi.com"
    assert signing_region_for(found) == "cn-shanghai"
    assert sb.requests.count("/latest/region_id") == 1


async def test_seeded_region(sb: Sandbox, http: httpx.AsyncClient) -> None:
    assert await resolve_endpoint("", sb.region_url, http) == (
        f"https://id.{sb.region}.volcengineapi.com"
    )


async def test_invalid_region_body_falls_back(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.metadata.region_body = "unknown"
    assert await resolve_endpoint(None, sb.region_url, http) == DEFAULT_ENDPOINT


async def test_non_2xx_falls_back(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.metadata.region_status = 500
    sb.metadata.region_body = "cn-shanghai"
    assert await resolve_endpoint(None, sb.region_url, http) == DEFAULT_ENDPOINT


async def test_injected_fault_falls_back(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.faults.add("/latest/region_id", status=503)
    assert await resolve_endpoint(None, sb.region_url, http) == DEFAULT_ENDPOINT


async def test_timeout_falls_back(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.faults.add("/latest/region_id", latency=5.0, count=1)
    found = await resolve_endpoint(None, sb.region_url, http, metadata_timeout=0.2)
    assert found == DEFAULT_ENDPOINT


async def test_connection_failure_falls_back(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # Bound but not listening: connecting is refused.
        found = await resolve_endpoint(None, f"http://127.0.0.1:{port}/latest/region_id", http)
    assert found == DEFAULT_ENDPOINT


async def test_nothing_configured_is_the_default(http: httpx.AsyncClient) -> None:
    assert await resolve_endpoint(None, None, http) == DEFAULT_ENDPOINT
    assert DEFAULT_ENDPOINT == "https://id.cn-beijing.volcengineapi.com"
