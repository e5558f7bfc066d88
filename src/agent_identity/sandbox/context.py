"""What an action handler gets, and the shapes shared by the action modules.

A handler is a plain function from :class:`ActionContext` to the ``Result`` object; expected
failures are raised as :class:`~agent_identity.sandbox.envelope.ApiError`. Handlers never do
I/O, so they are synchronous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_identity.sandbox.auth import Caller
from agent_identity.sandbox.envelope import Params, invalid, missing
from agent_identity.sandbox.oauth_demo import DemoOAuthProvider
from agent_identity.sandbox.state import SandboxState
from agent_identity.sandbox.tokens import TokenError, VerifiedToken, verify_tip

__all__ = ["ActionContext", "Handler", "Result", "identity_token", "paginate"]

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActionContext:
    """One API call: the world, the params, who asked, and the demo OAuth2 provider."""

    state: SandboxState
    params: Params
    caller: Caller
    action: str
    demo: DemoOAuthProvider


Handler = Callable[[ActionContext], Result]


def identity_token(ctx: ActionContext, name: str = "IdentityToken") -> VerifiedToken:
    """Read and check a TIP parameter; its ``sub`` scopes per-user state.

    Raises:
        ApiError: 400 ``MissingParameter`` or ``InvalidParameter.<name>`` saying why.
    """
    token = ctx.params.text(name)
    if token is None:
        raise missing(name)
    try:
        return verify_tip(ctx.state, token)
    except TokenError as exc:
        raise invalid(name, f"It is not a valid workload access token: {exc}.") from exc


def paginate(
    items: Sequence[Mapping[str, Any]], number: int, size: int, key: str
) -> dict[str, Any]:
    """Slice one page and wrap it with the paging fields.

    Args:
        items: All matching items, already sorted.
        number: The 1-based page number.
        size: The page size.
        key: The result key the list goes under (``Data``, ``CredentialProviders``, ...).

    Returns:
        ``{PageNumber, PageSize, TotalCount, <key>: [...]}``.
    """
    start = (number - 1) * size
    return {
        "PageNumber": number,
        "PageSize": size,
        "TotalCount": len(items),
        key: list(items[start : start + size]),
    }
