"""open_sandbox: loopback serving, clean shutdown, errors raised as themselves."""

from __future__ import annotations

import httpx
import pytest

from agent_identity.sandbox import open_sandbox


async def test_serves_on_an_ephemeral_loopback_port_and_stops(http: httpx.AsyncClient) -> None:
    async with open_sandbox() as sb:
        assert sb.base_url == f"http://{sb.host}"
        assert sb.host.startswith("127.0.0.1:")
        assert sb.region == "cn-beijing"
        assert sb.access_key_id.startswith("AKLT")
        assert (await http.get(sb.region_url)).text == "cn-beijing"
        url = sb.region_url
    async with httpx.AsyncClient() as fresh:
        with pytest.raises(httpx.ConnectError):
            await fresh.get(url)


async def test_an_error_in_the_body_is_raised_as_itself() -> None:
    with pytest.raises(LookupError, match="mine"):
        async with open_sandbox():
            raise LookupError("mine")


async def test_a_busy_port_is_an_os_error() -> None:
    async with open_sandbox() as first:
        port = int(first.host.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="ddress"):
            async with open_sandbox(port=port):
                pass  # pragma: no cover - never reached
