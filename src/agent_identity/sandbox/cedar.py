"""Cedar policy evaluation for CheckPermission, always against a schema.

One :class:`PolicyEngine` per permission namespace. The seed's policies are validated against
the schema when the engine is built, so a bad policy fails the sandbox at load instead of
silently denying at run time. Requests map the API's loose ``{Type, Id}`` pairs onto the
schema's entity types case-insensitively (``user`` → ``Default::User``) and decide with real
Cedar: allow only on an explicit Allow, deny by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cedarpy

__all__ = ["CedarError", "EntityRef", "PolicyDecision", "PolicyEngine"]

_NAMESPACE_RE = re.compile(r"^namespace\s+([A-Za-z_]\w*)\s*\{(.*?)^\}", re.MULTILINE | re.DOTALL)
_ENTITY_RE = re.compile(r"^\s*entity\s+([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)", re.MULTILINE)
_ACTION_RE = re.compile(
    r'^\s*action\s+((?:"[^"]*"|[A-Za-z_]\w*)(?:\s*,\s*(?:"[^"]*"|[A-Za-z_]\w*))*)', re.MULTILINE
)


class CedarError(ValueError):
    """A schema or policy set that Cedar refuses."""


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A ``{Type, Id}`` pair from a CheckPermission request."""

    type: str
    id: str


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The outcome of one check: ``Allowed`` and a ``Message`` saying why."""

    allowed: bool
    message: str


def _names(group: str) -> list[str]:
    return [part.strip().strip('"') for part in group.split(",") if part.strip()]


def _schema_shape(schema: cedarpy.Schema, namespace: str) -> tuple[dict[str, str], dict[str, str]]:
    # cedarpy has no schema introspection; its canonical rendering is regular enough to read
    # the entity types and actions of one namespace back out of it.
    rendered = str(schema)
    for match in _NAMESPACE_RE.finditer(rendered):
        if match.group(1) != namespace:
            continue
        body = match.group(2)
        entities = {
            name.lower(): name for found in _ENTITY_RE.findall(body) for name in _names(found)
        }
        actions = {
            name.lower(): name for found in _ACTION_RE.findall(body) for name in _names(found)
        }
        return entities, actions
    raise CedarError(f"the Cedar schema has no namespace {namespace!r}")


class PolicyEngine:
    """The validated policies of one permission namespace.

    Args:
        name: The API's ``NamespaceName`` (e.g. ``default``).
        cedar_namespace: The Cedar namespace its types live in (e.g. ``Default``).
        schema_text: The Cedar schema (human-readable syntax).
        policies_text: The Cedar policies.

    Raises:
        CedarError: The schema does not parse, lacks the namespace, or a policy fails
            validation against it; the message names the namespace and the problem.
    """

    def __init__(
        self, name: str, cedar_namespace: str, schema_text: str, policies_text: str
    ) -> None:
        self.name = name
        self.cedar_namespace = cedar_namespace
        try:
            self._schema = cedarpy.Schema.from_str(schema_text)
        except ValueError as exc:
            raise CedarError(f"the Cedar schema does not parse: {exc}") from exc
        self._entity_types, self._actions = _schema_shape(self._schema, cedar_namespace)
        result = cedarpy.validate_policies(policies_text, self._schema)
        if not result.validation_passed:
            problems = "; ".join(str(error) for error in result.errors)
            raise CedarError(f"namespace {name!r}: policies fail validation: {problems}")
        self._policies = cedarpy.PolicySet.from_str(policies_text)
        self.policies_text = policies_text

    @property
    def entity_types(self) -> list[str]:
        """The entity type names of the namespace (unqualified)."""
        return sorted(self._entity_types.values())

    @property
    def actions(self) -> list[str]:
        """The action ids of the namespace."""
        return sorted(self._actions.values())

    def _entity(self, ref: EntityRef) -> dict[str, str] | None:
        type_name = self._entity_types.get(ref.type.lower())
        if type_name is None:
            return None
        return {"type": f"{self.cedar_namespace}::{type_name}", "id": ref.id}

    def check(
        self,
        principal: EntityRef,
        operation: EntityRef,
        resource: EntityRef,
        references: Sequence[tuple[EntityRef, Sequence[EntityRef]]] = (),
    ) -> PolicyDecision:
        """Decide one request.

        Args:
            principal: Who acts (``user``/``agent``).
            operation: The action; its ``Id`` names the Cedar action (``invoke``, ``call``,
                ``read``), its ``Type`` is the API's constant ``Action``.
            resource: What is acted on (``agent``/``tool``/``skill``).
            references: Extra entities with their parents (group membership), passed to Cedar
                as the entity store.

        Returns:
            The decision; anything Cedar cannot evaluate is a deny that says why.
        """
        action_id = self._actions.get(operation.id.lower())
        if action_id is None:
            return PolicyDecision(False, f"unknown operation {operation.id!r}")
        mapped: list[dict[str, str]] = []
        for role, ref in (("principal", principal), ("resource", resource)):
            entity = self._entity(ref)
            if entity is None:
                return PolicyDecision(False, f"unknown {role} type {ref.type!r}")
            mapped.append(entity)
        entities: list[dict[str, object]] = []
        for entity_ref, parents in references:
            uid = self._entity(entity_ref)
            parent_uids = [self._entity(parent) for parent in parents]
            if uid is None or any(parent is None for parent in parent_uids):
                return PolicyDecision(False, f"unknown entity type in reference {entity_ref.id!r}")
            entities.append({"uid": uid, "attrs": {}, "parents": parent_uids})
        request = {
            "principal": mapped[0],
            "action": {"type": f"{self.cedar_namespace}::Action", "id": action_id},
            "resource": mapped[1],
            "context": {},
        }
        try:
            result = cedarpy.is_authorized(
                request, self._policies, json.dumps(entities), self._schema
            )
        except ValueError as exc:
            return PolicyDecision(False, f"the request cannot be evaluated: {exc}")
        diagnostics = result.diagnostics
        annotations = diagnostics.id_annotations_by_reason
        named = [annotations.get(reason, reason) for reason in diagnostics.reasons]
        if result.allowed:
            return PolicyDecision(True, f"allowed by policy {', '.join(named)}")
        if diagnostics.errors:
            return PolicyDecision(False, f"denied: {'; '.join(diagnostics.errors)}")
        if named:
            return PolicyDecision(False, f"denied by policy {', '.join(named)}")
        return PolicyDecision(False, "denied: no policy permits this request")
