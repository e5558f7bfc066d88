"""How one flight obtains a TIP: the user token, its renewal, the logout memory, the check.

This is the network half of a TIP refresher flight
(:mod:`agent_identity.actors.tip_flights` decides when a flight runs and what its outcome
does to the cache). :class:`TipObtainer` mints a session's own TIP from its user token, read
from the session store:

* A user token that expires within ``RefreshPolicy.user_token_margin`` is renewed first with
  the session's refresh token, when it has one. If that fails, the current token is used
  while it lasts.
* A user token the control plane refuses (expired, revoked) is renewed once (through the OIDC
  client, the renewed record written back to the store) and the mint tried again. Without a
  usable refresh token the session is
  :class:`~agent_identity.actors.tip_messages.LoggedOut`, remembered in ``RunState.dead`` by
  the token's fingerprint, so asking again costs no network call until the user logs in
  again (with a new user token).

A subagent's TIP is minted with its parent's TIP as the user token (one more ``act`` level),
got by asking the refresher for it like any caller would (so it is cached, shared and
refreshed the same way).

Whatever the control plane returns is checked: its claims must be readable, and it must be
servable, with its lifetime also counted from its arrival so that a control plane whose clock
runs ahead never gets an expired TIP served.

Failures come back as values (:class:`~agent_identity.actors.tip_messages.NoTip`), never as
exceptions. The only state changed here is ``RunState.dead``, synchronously between awaits,
like every change of the refresher's state.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import final

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.tip_messages import LoggedOut, NoTip, TipOutcome
from agent_identity.actors.tip_mint import MintedTip, TipMinter, is_user_token_rejected
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.actors.tip_session import (
    RenewFailed,
    SessionTokens,
    UserTokenRenewer,
    token_fingerprint,
)
from agent_identity.actors.tip_state import Flight, Minted, RunState
from agent_identity.authz.tip_claims import TipClaimsError, decode_tip_claims
from agent_identity.kernel import KernelError, Reply
from agent_identity.storage import SessionView
from agent_identity.volcengine import VolcengineError

__all__ = ["TipObtainer"]

# The refresher's logger: this is the refresher's work, wherever the code lives.
logger = logging.getLogger("agent_identity.tip")


@final
class TipObtainer:
    """Obtains the TIP of one flight: mints it, renewing the user token when needed.

    Args:
        minter: Mints TIPs.
        sessions: The session store, where user tokens are read (and renewed ones written).
        renewer: The OIDC client, to renew user tokens with refresh tokens; None: never renew.
        policy: When a user token is renewed early, and which TIPs are servable.
        wall: The wall clock, epoch seconds.
        ask: Asks the refresher for a session's TIP as a caller would, without counting a hit
            or a miss: how a subagent's flight gets its parent's TIP.
    """

    __slots__ = ("_ask", "_minter", "_policy", "_tokens", "_wall")

    def __init__(
        self,
        minter: TipMinter,
        sessions: SessionStoreClient,
        renewer: UserTokenRenewer | None,
        *,
        policy: RefreshPolicy,
        wall: Callable[[], float],
        ask: Callable[[RunState, Reply[TipOutcome], str], None],
    ) -> None:
        self._minter = minter
        self._tokens = SessionTokens(sessions, renewer)
        self._policy = policy
        self._wall = wall
        self._ask = ask

    def __repr__(self) -> str:
        return f"<TipObtainer tokens={self._tokens!r}>"

    @property
    def renewals(self) -> int:
        """Successful user token renewals, over the object's lifetime."""
        return self._tokens.renewals

    async def obtain(self, state: RunState, flight: Flight) -> Minted | NoTip:
        """Mint the TIP ``flight`` is for: a subagent's from its parent's, else its own."""
        if flight.parent_key is not None:
            return await self._obtain_child(state, flight, flight.parent_key)
        return await self._obtain_own(state, flight)

    async def _obtain_child(
        self, state: RunState, flight: Flight, parent_key: str
    ) -> Minted | NoTip:
        """Mint a subagent's TIP with its parent's as the user token."""
        # Asked through the refresher: the parent's TIP comes from its cache or its flight,
        # shared with the parent's own askers, never from a second mint of its own.
        reply: Reply[TipOutcome] = Reply()
        self._ask(state, reply, parent_key)
        parent = await reply.wait()
        if isinstance(parent, NoTip):
            reason = f"the parent session has no TIP: {parent.reason}"
            return dataclasses.replace(parent, reason=reason)
        try:
            minted = await self._minter.mint(parent.token, flight.workload)
        except VolcengineError as exc:
            return NoTip(f"minting the subagent's TIP failed: {exc}")
        return self._check(minted)

    async def _obtain_own(self, state: RunState, flight: Flight) -> Minted | NoTip:
        """Mint the TIP of a session from its user token (renewed when due or refused)."""
        key = flight.key
        try:
            view = await self._tokens.get(key)
        except KernelError:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            return NoTip("the session store is not available")
        if view is None:
            state.dead.pop(key, None)
            return NoTip("no user is logged in for the session", "no_session")
        dead = state.dead.get(key)
        if dead is not None and dead[0] == token_fingerprint(view.user_token):
            return LoggedOut(dead[1])
        renewed = False
        if (
            view.has_refresh_token
            and self._tokens.can_renew
            and view.expires_at - self._wall() <= self._policy.user_token_margin
        ):
            fresh = await self._tokens.renew(view)
            if isinstance(fresh, SessionView):
                view, renewed = fresh, True
            else:  # the current token is still valid: use it while it lasts
                logger.info("TIP refresher: early user token renewal failed: %s", fresh.reason)
        try:
            minted = await self._minter.mint(view.user_token, flight.workload)
        except VolcengineError as exc:
            if not is_user_token_rejected(exc):
                return NoTip(f"minting the TIP failed: {exc}")
            if renewed:
                return self._logged_out_by(
                    state, view, f"the renewed user token was refused: {exc}"
                )
            return await self._renew_and_mint(state, flight, view, exc)
        return self._check(minted)

    async def _renew_and_mint(
        self, state: RunState, flight: Flight, view: SessionView, refused: VolcengineError
    ) -> Minted | NoTip:
        """The control plane refused the user token: renew it once, then mint again."""
        fresh = await self._tokens.renew(view)
        if isinstance(fresh, RenewFailed):
            reason = (
                f"the control plane refused the user token ({refused.code}: {refused.message})"
                f" and {fresh.reason}"
            )
            if fresh.final:
                return self._logged_out_by(state, view, reason)
            return NoTip(reason)
        try:
            minted = await self._minter.mint(fresh.user_token, flight.workload)
        except VolcengineError as exc:
            if is_user_token_rejected(exc):
                return self._logged_out_by(
                    state, fresh, f"the renewed user token was refused: {exc}"
                )
            return NoTip(f"minting the TIP failed: {exc}")
        return self._check(minted)

    @staticmethod
    def _logged_out_by(state: RunState, view: SessionView, reason: str) -> LoggedOut:
        """Remember that the session's user token cannot mint, until another one is stored."""
        message = f"{reason}; log in again"
        state.dead[view.session_key] = (token_fingerprint(view.user_token), message)
        state.reported.pop(view.session_key, None)  # a new finding: logged at INFO once
        return LoggedOut(message)

    def _check(self, minted: MintedTip) -> Minted | NoTip:
        """Read a minted TIP's claims; refuse one that would not be servable."""
        try:
            claims = decode_tip_claims(minted.token)
        except TipClaimsError as exc:
            return NoTip(f"the control plane returned an unreadable TIP: {exc}")
        expires_at = minted.expires_at if claims.exp is None else min(minted.expires_at, claims.exp)
        now = self._wall()
        if claims.exp is not None and claims.iat is not None:
            # ``exp`` is on the control plane's clock. When that clock runs ahead of ours, the
            # TIP dies earlier than ``exp`` reads here: count its lifetime from its arrival
            # too, and keep the earlier end, so a skewed clock never gets an expired TIP served.
            expires_at = min(expires_at, now + (claims.exp - claims.iat))
        if not self._policy.servable(expires_at, now):
            left = expires_at - now
            return NoTip(f"the control plane returned a TIP that expires in {left:.0f}s")
        return Minted(token=minted.token, claims=claims, expires_at=expires_at)
