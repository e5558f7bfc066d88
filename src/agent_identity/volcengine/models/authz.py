"""``CheckPermission`` (section 2.5): Cedar policies decided by the service."""

from __future__ import annotations

import msgspec

from agent_identity.volcengine.models._base import WireModel

__all__ = [
    "CheckPermissionRequest",
    "EntityRef",
    "EntityReference",
    "PermissionDecision",
    "PermissionExtra",
]


class EntityRef(WireModel):
    """A ``{Type, Id}`` entity, e.g. ``user``/``alice`` or ``agent``/``openclaw-agent``."""

    type: str
    id: str


class EntityReference(WireModel):
    """An entity with its parents (e.g. a user in a group), for the entity store."""

    entity: EntityRef
    parents: list[EntityRef] = msgspec.field(default_factory=list)


class PermissionExtra(WireModel):
    """``Extra``: the one object whose keys are lower camel case (``runID``, ``sessionID``)."""

    run_id: str | None = msgspec.field(default=None, name="runID")
    session_id: str | None = msgspec.field(default=None, name="sessionID")


class CheckPermissionRequest(WireModel):
    """``CheckPermission``: may ``principal`` perform ``operation`` on ``resource``?

    Attributes:
        namespace_name: The policy namespace (``default`` in the plugin).
        principal: Who acts, e.g. ``{Type: user, Id: <TIP sub>}``.
        operation: What, e.g. ``{Type: Action, Id: invoke}`` (the doc's ``Action`` is wrong).
        resource: On what, e.g. ``{Type: agent, Id: <TIP act.sub>}``.
        original_callers: The earlier agents of the delegation chain.
        references: Entities with their parents.
        permission_point_id: A permission point, when policies are scoped to one.
        extra: Run and session ids, for the audit trail.
    """

    namespace_name: str
    principal: EntityRef | None = None
    operation: EntityRef | None = None
    resource: EntityRef | None = None
    original_callers: list[EntityRef] | None = None
    references: list[EntityReference] | None = None
    permission_point_id: str | None = None
    extra: PermissionExtra | None = None


class PermissionDecision(WireModel):
    """``{Allowed, Message}``; anything but an explicit allow is a deny."""

    allowed: bool = False
    message: str = ""
