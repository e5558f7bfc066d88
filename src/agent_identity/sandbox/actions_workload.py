"""Workload identities and TIP minting (section 2.1, 2.2 of the API notes).

``GetWorkloadAccessTokenForJWT`` is the heart of the system: a user token (a user pool
id_token, or an incoming TIP for agent-to-agent delegation) goes in, a TIP for the named
workload comes out. When ``Name`` is omitted the caller's STS role name is used, emulating the
gateway's ``X-Top-Role-Id`` header.
"""

from __future__ import annotations

import re
from typing import Any

from agent_identity.sandbox.context import ActionContext, Handler, Result
from agent_identity.sandbox.envelope import (
    ApiError,
    already_exists,
    invalid,
    not_found,
)
from agent_identity.sandbox.state import Workload, WorkloadPool, iso_z
from agent_identity.sandbox.tokens import (
    TokenError,
    VerifiedToken,
    mint_tip,
    verify_user_token,
)

__all__ = ["HANDLERS"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DEFAULT_DURATION = 3600
_MAX_DURATION = 43200


def _pool(ctx: ActionContext, param: str = "WorkloadPoolName") -> WorkloadPool:
    name = ctx.params.text(param, "default") or "default"
    pool = ctx.state.workload_pools.get(name)
    if pool is None:
        raise not_found("WorkloadPool", name)
    return pool


def _workload_json(workload: Workload) -> Result:
    return {
        "Name": workload.name,
        "WorkloadPoolName": workload.pool_name,
        "Trn": workload.trn,
        "Category": workload.category,
        "Description": workload.description,
        "Source": workload.source,
        "AllowedResourceOauth2ReturnUrls": list(workload.allowed_return_urls),
        "MetaData": [dict(entry) for entry in workload.metadata],
        "CreatedAt": iso_z(workload.created_at),
        "UpdatedAt": iso_z(workload.updated_at),
    }


def _workload_name(ctx: ActionContext) -> str:
    name = ctx.params.text("Name")
    if name is not None:
        return name
    if ctx.caller.role is None:
        raise ApiError(
            400,
            "MissingParameter",
            "The parameter Name is required: the caller is not an assumed role, so there is "
            "no role name (X-Top-Role-Id) to use instead.",
            100002,
        )
    return ctx.caller.role.name


def _mint(ctx: ActionContext, incoming: VerifiedToken) -> Result:
    pool = _pool(ctx)
    name = _workload_name(ctx)
    if name not in pool.workloads:
        raise not_found("WorkloadIdentity", name)
    duration = ctx.params.integer("DurationSeconds")
    if duration is None:
        duration = _DEFAULT_DURATION
    if not 1 <= duration <= _MAX_DURATION:
        raise invalid("DurationSeconds", f"It must be between 1 and {_MAX_DURATION}.")
    minted = mint_tip(
        ctx.state,
        pool,
        name,
        incoming,
        audience=ctx.params.texts("Audience"),
        duration=duration,
    )
    return {"WorkloadAccessToken": minted.token, "ExpiresAt": iso_z(minted.expires_at)}


def get_workload_access_token_for_jwt(ctx: ActionContext) -> Result:
    """``GetWorkloadAccessTokenForJWT``: a user token (id_token or TIP) in, a TIP out."""
    token = ctx.params.required_text("UserToken")
    try:
        incoming = verify_user_token(ctx.state, token)
    except TokenError as exc:
        reason = str(exc)
        raise invalid("UserToken", f"{reason[:1].upper()}{reason[1:]}.") from exc
    return _mint(ctx, incoming)


def get_workload_access_token_for_user_id(ctx: ActionContext) -> Result:
    """``GetWorkloadAccessTokenForUserId``: UserId* stands in for a verified user token."""
    user_id = ctx.params.required_text("UserId")
    exp = ctx.state.now() + _MAX_DURATION
    return _mint(ctx, VerifiedToken({"sub": user_id, "exp": exp}, "user_id"))


def _metadata(ctx: ActionContext) -> list[dict[str, Any]]:
    return [
        {"Key": entry.required_text("Key"), "Values": entry.texts("Values") or []}
        for entry in ctx.params.children("MetaData")
    ]


def create_workload_identity(ctx: ActionContext) -> Result:
    """``CreateWorkloadIdentity``: 409 when the name exists in the pool."""
    name = ctx.params.required_text("Name")
    if not _NAME_RE.match(name):
        raise invalid("Name", "Use up to 128 characters of [A-Za-z0-9_.-].")
    pool = _pool(ctx)
    if name in pool.workloads:
        raise already_exists("WorkloadIdentity", name)
    now = ctx.state.now()
    workload = Workload(
        name=name,
        pool_name=pool.name,
        trn=ctx.state.workload_trn(pool.name, name),
        category=ctx.params.text("Category", "Agent") or "Agent",
        description=ctx.params.text("Description", "") or "",
        allowed_return_urls=ctx.params.texts("AllowedResourceOauth2ReturnUrls") or [],
        metadata=_metadata(ctx),
        created_at=now,
        updated_at=now,
    )
    pool.workloads[name] = workload
    return _workload_json(workload)


def get_workload_identity(ctx: ActionContext) -> Result:
    """``GetWorkloadIdentity``: 404 when absent."""
    name = ctx.params.required_text("Name")
    workload = _pool(ctx).workloads.get(name)
    if workload is None:
        raise not_found("WorkloadIdentity", name)
    return _workload_json(workload)


def delete_workload_identity(ctx: ActionContext) -> Result:
    """``DeleteWorkloadIdentity``: empty result; 404 when absent."""
    name = ctx.params.required_text("Name")
    pool = _pool(ctx)
    if pool.workloads.pop(name, None) is None:
        raise not_found("WorkloadIdentity", name)
    return {}


def get_workload_pool(ctx: ActionContext) -> Result:
    """``GetWorkloadPool``: the pool with its ``DiscoveryUrl`` (the TIP issuer's discovery)."""
    pool = _pool(ctx)
    issuer = ctx.state.tip_issuer(pool)
    return {
        "WorkloadPoolId": pool.id,
        "WorkloadPoolName": pool.name,
        "Trn": pool.trn,
        "Description": pool.description,
        "DiscoveryUrl": f"{issuer}/.well-known/openid-configuration",
        "Url": issuer,
        "AllowAutoCreateIdentity": False,
        "TrustAnchors": [],
        "TotalWorkloads": len(pool.workloads),
        "TotalCredentials": sum(1 for key in ctx.state.providers if key[0] == pool.name),
        "CreatedAt": iso_z(pool.created_at),
        "UpdatedAt": iso_z(pool.created_at),
    }


HANDLERS: dict[str, Handler] = {
    "GetWorkloadAccessTokenForJWT": get_workload_access_token_for_jwt,
    "GetWorkloadAccessTokenForUserId": get_workload_access_token_for_user_id,
    "CreateWorkloadIdentity": create_workload_identity,
    "GetWorkloadIdentity": get_workload_identity,
    "DeleteWorkloadIdentity": delete_workload_identity,
    "GetWorkloadPool": get_workload_pool,
}
