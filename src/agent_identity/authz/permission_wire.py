"""How a permission check becomes a CheckPermission request, and its answer a decision.

The three checks of ``authz`` are mapped as veadk maps them (API spec 2.5):

============  ==================  ==================================  =======================
check         ``Operation.Id``    ``Resource``                        ``OriginalCallers``
============  ==================  ==================================  =======================
agentCheck    ``invoke``          ``agent`` / outermost TIP actor     deeper TIP actors
toolCheck     ``call``            ``tool`` / the tool name            every TIP actor
skillRead     ``read``            ``skill`` / the skill name          every TIP actor
============  ==================  ==================================  =======================

The principal is always ``{Type: user, Id: <TIP sub>}``; the operation type is ``Action``.
For an agent check the outermost actor is the resource, so only the deeper ones are callers;
for tools and skills the agent making the call is itself a caller and leads the list.

Reasons name the user, the action and the resource (clipped, quoted) and, for a failure, the
error code, the HTTP status and the request id, never a token: CheckPermission is only ever
sent the ``sub`` and the actors' names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from agent_identity.authz.permission_model import PermissionDecision
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import CheckPermissionRequest, EntityRef, PermissionExtra
from agent_identity.volcengine.models import PermissionDecision as WirePermissionDecision

__all__ = ["allowed_or_denied", "check_request", "describe", "extra_of", "failed_closed"]

_PRINCIPAL_TYPE: Final = "user"
_OPERATION_TYPE: Final = "Action"
_CALLER_TYPE: Final = "agent"
_MAX_SHOWN: Final = 128  # characters of an id shown in a reason
_MAX_MESSAGE: Final = 300  # characters of the control plane's message shown in a reason


def describe(sub: str, action: str, resource_type: str, resource_id: str) -> str:
    """What is checked, for reasons: ``user 'alice' call tool 'exec'``."""
    return f"user {_shown(sub)} {action} {resource_type} {_shown(resource_id)}"


def check_request(
    namespace: str,
    sub: str,
    action: str,
    resource_type: str,
    resource_id: str,
    callers: Sequence[str],
    extra: PermissionExtra | None,
) -> CheckPermissionRequest:
    """The CheckPermission request of one check."""
    return CheckPermissionRequest(
        namespace_name=namespace,
        principal=EntityRef(type=_PRINCIPAL_TYPE, id=sub),
        operation=EntityRef(type=_OPERATION_TYPE, id=action),
        resource=EntityRef(type=resource_type, id=resource_id),
        original_callers=[EntityRef(type=_CALLER_TYPE, id=actor) for actor in callers],
        extra=extra,
    )


def extra_of(run_id: str | None, session_id: str | None) -> PermissionExtra | None:
    """``Extra`` for the control plane's audit trail, if there is anything to put in it."""
    if run_id is None and session_id is None:
        return None
    return PermissionExtra(run_id=run_id, session_id=session_id)


def allowed_or_denied(answer: WirePermissionDecision, what: str) -> PermissionDecision:
    """The decision the control plane answered, with its message (clipped) in the reason."""
    verdict = "allowed" if answer.allowed else "denied"
    message = _clip(answer.message, _MAX_MESSAGE)
    reason = f"permission {verdict}: {what}" + (f" ({message})" if message else "")
    return PermissionDecision(allowed=answer.allowed, reason=reason)


def failed_closed(error: VolcengineError, what: str) -> PermissionDecision:
    """The deny of a check the control plane could not answer."""
    parts = [error.code]
    if error.status is not None:
        parts.append(f"HTTP {error.status}")
    if error.request_id:
        parts.append(f"request id {error.request_id}")
    return PermissionDecision(
        allowed=False,
        reason=(
            f"permission denied: CheckPermission for {what} failed ({', '.join(parts)}); "
            "denying until the permission service answers"
        ),
        failed=True,
    )


def _clip(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else f"{value[: limit - 3]}..."


def _shown(value: str) -> str:
    return repr(_clip(value, _MAX_SHOWN))
