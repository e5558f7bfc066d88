"""CheckPermission (section 2.5): the request mapped onto Cedar entities and decided by Cedar.

``Principal``/``Operation``/``Resource`` are ``{Type, Id}``; types map case-insensitively onto
the namespace's schema (``user`` → ``Default::User``), ``Operation.Id`` names the Cedar action
(``invoke``, ``call``, ``read``). ``References`` become the entity store (an entity and its
parents, e.g. a user in a group). ``OriginalCallers``, ``PermissionPointId`` and ``Extra`` are
accepted and not evaluated.
"""

from __future__ import annotations

from agent_identity.sandbox.cedar import EntityRef
from agent_identity.sandbox.context import ActionContext, Handler, Result
from agent_identity.sandbox.envelope import Params, not_found

__all__ = ["HANDLERS"]


def _ref(params: Params, name: str) -> EntityRef:
    child = params.required_child(name)
    return EntityRef(child.required_text("Type"), child.required_text("Id"))


def _plain_ref(params: Params) -> EntityRef:
    return EntityRef(params.required_text("Type"), params.required_text("Id"))


def check_permission(ctx: ActionContext) -> Result:
    """``CheckPermission``: ``{Allowed, Message}``; allowed only on an explicit Allow."""
    namespace = ctx.params.required_text("NamespaceName")
    engine = ctx.state.engines.get(namespace)
    if engine is None:
        raise not_found("Namespace", namespace)
    principal = _ref(ctx.params, "Principal")
    operation = _ref(ctx.params, "Operation")
    resource = _ref(ctx.params, "Resource")
    references = [
        (
            _ref(reference, "Entity"),
            [_plain_ref(parent) for parent in reference.children("Parents")],
        )
        for reference in ctx.params.children("References")
    ]
    decision = engine.check(principal, operation, resource, references)
    return {"Allowed": decision.allowed, "Message": decision.message}


HANDLERS: dict[str, Handler] = {"CheckPermission": check_permission}
