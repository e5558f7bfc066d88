"""CheckPermission decided by real Cedar policies from the seed."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Api


def _check(
    principal: str, operation: str, kind: str, resource: str, **extra: Any
) -> dict[str, Any]:
    return {
        "NamespaceName": "default",
        "Principal": {"Type": "user", "Id": principal},
        "Operation": {"Type": "Action", "Id": operation},
        "Resource": {"Type": kind, "Id": resource},
        **extra,
    }


@pytest.mark.parametrize(
    ("principal", "operation", "kind", "resource", "allowed", "why"),
    [
        ("alice", "invoke", "agent", "openclaw-agent", True, "alice-invokes-openclaw-agent"),
        ("bob", "invoke", "Agent", "openclaw-agent", True, "bob-invokes-openclaw-agent"),
        ("mallory", "invoke", "agent", "openclaw-agent", False, "no policy permits"),
        ("alice", "invoke", "agent", "other-agent", False, "no policy permits"),
        ("alice", "call", "tool", "exec", True, "users-call-tools"),
        ("bob", "call", "tool", "web_search", True, "users-call-tools"),
        ("bob", "call", "TOOL", "exec", False, "bob-never-execs"),
        ("alice", "read", "skill", "weather", True, "users-read-skills"),
        ("alice", "delete", "tool", "exec", False, "unknown operation"),
        ("alice", "call", "printer", "x", False, "unknown resource type"),
        ("alice", "invoke", "tool", "exec", False, "not valid"),
    ],
)
async def test_check_permission(
    api: Api, principal: str, operation: str, kind: str, resource: str, allowed: bool, why: str
) -> None:
    result = await api.ok("CheckPermission", _check(principal, operation, kind, resource))
    assert result["Allowed"] is allowed
    assert why in result["Message"]


async def test_references_become_cedar_entities(api: Api) -> None:
    body = _check(
        "alice",
        "call",
        "tool",
        "exec",
        References=[
            {"Entity": {"Type": "user", "Id": "alice"}, "Parents": [{"Type": "group", "Id": "ops"}]}
        ],
        OriginalCallers=[{"Type": "agent", "Id": "openclaw-agent"}],
        Extra={"runID": "r1", "sessionID": "s1"},
    )
    assert (await api.ok("CheckPermission", body))["Allowed"] is True
    body["References"] = [{"Entity": {"Type": "ghost", "Id": "x"}, "Parents": []}]
    result = await api.ok("CheckPermission", body)
    assert result["Allowed"] is False
    assert "unknown entity type" in result["Message"]


async def test_check_permission_errors(api: Api) -> None:
    error = await api.fail("CheckPermission", {"NamespaceName": "nope"}, 404)
    assert error["Code"] == "ResourceNotFound.Namespace"
    body = _check("alice", "invoke", "agent", "a")
    del body["Principal"]
    error = await api.fail("CheckPermission", body, 400)
    assert error["Code"] == "MissingParameter"
    assert "Principal" in error["Message"]
    body = _check("alice", "invoke", "agent", "a")
    body["Resource"] = {"Type": "agent"}
    error = await api.fail("CheckPermission", body, 400)
    assert "Resource.Id" in error["Message"]
