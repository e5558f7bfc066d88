"""Seeds: the default one, custom ones from a dict or a file, and bad ones with clear errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_identity.sandbox import SeedError, load_seed, open_sandbox

from .helpers import Api


def _default() -> dict[str, Any]:
    path = Path(__file__).parents[2] / "src/agent_identity/sandbox/default_seed.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_default_seed_is_the_documented_world() -> None:
    seed = load_seed()
    assert seed.region == "cn-beijing"
    assert [w.name for w in seed.workload_pools[0].workloads] == ["openclaw-agent"]
    assert {p.name for p in seed.credential_providers} == {"demo-oauth", "demo-m2m", "openai"}
    pool = seed.user_pools[0]
    assert pool.name == "agent-identity-dev"
    assert pool.clients[0].allowed_callback_urls == [
        "http://127.0.0.1:18789/identity/oauth/callback"
    ]
    assert {u.username for u in pool.users} == {"alice", "bob"}


def test_seed_from_a_file(tmp_path: Path) -> None:
    data = _default()
    data["region"] = "cn-shanghai"
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(data))
    assert load_seed(path).region == "cn-shanghai"
    assert load_seed(str(path)).region == "cn-shanghai"


def _mutated(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(_default())
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="blue"), "unknown field `colour`"),
        (lambda d: d["userPools"][0].update(secret="x"), "$.userPools[0]"),
        (lambda d: d["account"].pop("accessKeyId"), "accessKeyId"),
        (lambda d: d["credentialProviders"][0].update(type="saml"), "saml"),
        (
            lambda d: d["authz"]["namespaces"][0]["policies"].append(
                'permit(principal == Default::Robot::"r2", action, resource);'
            ),
            "Default::Robot",
        ),
        (
            lambda d: d["authz"]["namespaces"][0]["policies"].append("permit(principal,"),
            "policies fail validation",
        ),
        (lambda d: d["authz"].update(schema="namespace {"), "schema does not parse"),
        (
            lambda d: d["authz"]["namespaces"][0].update(cedarNamespace="Other"),
            "no namespace 'Other'",
        ),
        (lambda d: d["roles"].append({"name": "openclaw-agent"}), "duplicate role names"),
        (lambda d: d["roleCredentialProviders"][0].update(role="ghost"), "unknown role 'ghost'"),
        (lambda d: d["roleCredentialProviders"][0].update(userPool="ghost"), "unknown user pool"),
        (
            lambda d: d["roleCredentialProviders"][0].update(userPoolClient="ghost"),
            "unknown client",
        ),
        (lambda d: d["credentialProviders"][0].update(poolName="ghost"), "unknown workload pool"),
        (lambda d: d["metadata"].update(credentialsRole="ghost"), "credentialsRole"),
    ],
)
def test_bad_seeds_name_the_problem(change: Any, message: str) -> None:
    with pytest.raises(SeedError, match="invalid") as caught:
        load_seed(_mutated(change))
    assert message in str(caught.value)


def test_unreadable_and_non_json_seed_files(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="cannot read"):
        load_seed(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SeedError, match="not valid JSON"):
        load_seed(broken)


STRICT_SCHEMA = """
namespace Strict {
  entity User;
  entity Tool;
  action call appliesTo { principal: [User], resource: [Tool] };
}
"""


async def test_open_sandbox_with_a_custom_seed(http: httpx.AsyncClient) -> None:
    def change(d: dict[str, Any]) -> None:
        authz = d["authz"]
        authz["schema"] = "\n".join(authz["schema"]) + STRICT_SCHEMA
        authz["namespaces"][0]["policies"] = [
            'permit(principal, action == Default::Action::"call", resource);'
        ]
        authz["namespaces"].append({"name": "strict", "policies": []})

    seed = load_seed(_mutated(change))
    async with open_sandbox(seed, port=0) as sb:
        api = Api(http, sb)
        body: dict[str, Any] = {
            "NamespaceName": "default",
            "Principal": {"Type": "user", "Id": "bob"},
            "Operation": {"Type": "Action", "Id": "call"},
            "Resource": {"Type": "tool", "Id": "exec"},
        }
        assert (await api.ok("CheckPermission", body))["Allowed"] is True
        body["NamespaceName"] = "strict"
        result = await api.ok("CheckPermission", body)
        assert result == {"Allowed": False, "Message": "denied: no policy permits this request"}
