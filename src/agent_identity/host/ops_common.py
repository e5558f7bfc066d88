"""What the operations share: the caller's TIP, or the error that tells them to log in.

Every operation that acts for the user needs a TIP first; :func:`require_tip` gets it (from
the cache, or minted now) and :func:`no_tip_error` turns a missing one into the same
:class:`OperationError` everywhere: ``not_logged_in`` (no session), ``logged_out`` (the login
expired or was revoked) or ``tip_unavailable`` (minting failed), each telling the user what
to do. No agent id is passed: the TIP is minted for the configured workload, as at login, so
commands, tools and hooks all share one cached TIP per session.
"""

from __future__ import annotations

from typing import Final

from agent_identity.actors.tip_messages import LoggedOut, NoTip, TipInfo
from agent_identity.host.caller import Caller
from agent_identity.host.deps import HostDeps
from agent_identity.host.outcome import OperationError

__all__ = ["NOT_LOGGED_IN", "no_tip_error", "require_tip", "require_tip_info"]

NOT_LOGGED_IN: Final = "You are not logged in. Run /identity login first."


def no_tip_error(outcome: NoTip) -> OperationError:
    """The error for a session without a TIP (see the module docstring)."""
    if isinstance(outcome, LoggedOut):
        return OperationError(
            "Your login has expired or was revoked. Run /identity login to sign in again.",
            code="logged_out",
        )
    if outcome.code == "no_session":
        return OperationError(NOT_LOGGED_IN, code="not_logged_in")
    return OperationError(
        f"No TIP is available right now: {outcome.reason}. Run /identity login to try again.",
        code="tip_unavailable",
    )


async def require_tip_info(deps: HostDeps, caller: Caller) -> TipInfo:
    """The caller's TIP with its claims.

    Raises:
        OperationError: No TIP (see :func:`no_tip_error`).
    """
    outcome = await deps.tips.get_tip(caller.session_key)
    if isinstance(outcome, NoTip):
        raise no_tip_error(outcome)
    return outcome


async def require_tip(deps: HostDeps, caller: Caller) -> str:
    """The caller's TIP token (a secret: pass it on, never show it).

    Raises:
        OperationError: No TIP (see :func:`no_tip_error`).
    """
    return (await require_tip_info(deps, caller)).token
