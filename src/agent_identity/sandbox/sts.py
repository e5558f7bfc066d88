"""STS (Version 2018-01-01): AssumeRole, and the temporary keys every other part hands out.

Temporary keys are real: they are recorded in the state with their session token and expiry,
and the signature check accepts them until they expire. GetRoleCredentials and the credentials
metadata endpoint issue keys through :func:`issue_temporary_key` too.

Times are RFC 3339 with the +08:00 offset, as the cn-beijing STS answers
(``2021-04-12T11:57:09+08:00``).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone

from agent_identity.sandbox.context import ActionContext, Result
from agent_identity.sandbox.envelope import invalid, not_found
from agent_identity.sandbox.state import Role, SandboxState, TemporaryKey

__all__ = [
    "HANDLERS",
    "STS_VERSION",
    "assume_role",
    "credentials_json",
    "get_caller_identity",
    "issue_temporary_key",
    "rfc3339",
    "sts_duration",
]

STS_VERSION = "2018-01-01"
_CHINA = timezone(timedelta(hours=8))
_ROLE_TRN_RE = re.compile(r"^trn:iam::(?P<account>\d+):role/(?P<name>[\w+=,.@-]{1,64})$")
_SESSION_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_MIN_DURATION = 900
_MAX_DURATION = 43200
_DEFAULT_DURATION = 3600


def rfc3339(moment: float) -> str:
    """Format wall-clock seconds as RFC 3339 with the +08:00 offset."""
    return datetime.fromtimestamp(int(moment), _CHINA).isoformat()


def sts_duration(value: int | None) -> int:
    """Apply section 4's rules: unset or < 900 → 3600; > 43200 → 43200."""
    if value is None or value < _MIN_DURATION:
        return _DEFAULT_DURATION
    return min(value, _MAX_DURATION)


def issue_temporary_key(
    state: SandboxState, role: Role, session_name: str, duration: int
) -> TemporaryKey:
    """Create an STS key for ``role`` that the sandbox accepts for ``duration`` seconds."""
    key = TemporaryKey(
        access_key_id=f"AKTP{secrets.token_hex(14)}",
        secret_access_key=secrets.token_urlsafe(30),
        session_token=f"STS2{secrets.token_urlsafe(48)}",
        role=role,
        session_name=session_name,
        expires_at=state.now() + duration,
    )
    state.temporary_keys[key.access_key_id] = key
    return key


def assumed_role_user(state: SandboxState, key: TemporaryKey) -> Result:
    """The ``AssumedRoleUser`` object of a temporary key."""
    return {
        "Trn": f"trn:sts::{state.account_id}:assumed-role/{key.role.name}/{key.session_name}",
        "AssumedRoleId": f"{key.role.role_id}:{key.session_name}",
    }


def credentials_json(state: SandboxState, key: TemporaryKey, *, expiry_field: str) -> Result:
    """The ``Credentials`` object, with the expiry under ``ExpiredTime`` or ``Expiration``."""
    return {
        "AccessKeyId": key.access_key_id,
        "SecretAccessKey": key.secret_access_key,
        "SessionToken": key.session_token,
        "CurrentTime": rfc3339(state.now()),
        expiry_field: rfc3339(key.expires_at),
    }


def role_from_trn(state: SandboxState, trn: str, param: str) -> Role:
    """Resolve a role TRN of this account.

    Raises:
        ApiError: 400 for a malformed TRN, 404 for an unknown role.
    """
    match = _ROLE_TRN_RE.match(trn)
    if match is None:
        raise invalid(param, "Expected trn:iam::<AccountId>:role/<RoleName>.")
    role = state.roles.get(match["name"])
    if match["account"] != state.account_id or role is None:
        raise not_found("Role", trn)
    return role


def assume_role(ctx: ActionContext) -> Result:
    """``AssumeRole``: RoleTrn*, RoleSessionName*, DurationSeconds → temporary keys."""
    params = ctx.params
    role = role_from_trn(ctx.state, params.required_text("RoleTrn"), "RoleTrn")
    session_name = params.required_text("RoleSessionName")
    if not _SESSION_RE.match(session_name):
        raise invalid("RoleSessionName", "Use 2-64 characters of [A-Za-z0-9_+=,.@-].")
    duration = sts_duration(params.integer("DurationSeconds"))
    key = issue_temporary_key(ctx.state, role, session_name, duration)
    return {
        "Credentials": credentials_json(ctx.state, key, expiry_field="ExpiredTime"),
        "AssumedRoleUser": assumed_role_user(ctx.state, key),
    }


def get_caller_identity(ctx: ActionContext) -> Result:
    """``GetCallerIdentity``: who signed the request (the root account or an assumed role)."""
    state, caller = ctx.state, ctx.caller
    if caller.role is None:
        return {
            "AccountId": state.account_id,
            "IdentityType": "Account",
            "IdentityId": state.account_id,
            "Trn": f"trn:iam::{state.account_id}:root",
        }
    return {
        "AccountId": state.account_id,
        "IdentityType": "AssumedRole",
        "IdentityId": f"{caller.role.role_id}:{caller.session_name}",
        "Trn": f"trn:sts::{state.account_id}:assumed-role/{caller.role.name}/{caller.session_name}",
    }


HANDLERS = {"AssumeRole": assume_role, "GetCallerIdentity": get_caller_identity}
