"""The host test stack itself: a login through the form gives the session a TIP."""

from __future__ import annotations

from agent_identity.actors.tip_messages import TipInfo

from .conftest import MAIN, Stack


async def test_login_through_the_form_stores_a_session_with_a_tip(stack: Stack) -> None:
    await stack.login(MAIN)
    view = await stack.deps.sessions.get(MAIN)
    assert view is not None
    assert view.sub
    tip = await stack.deps.tips.get_tip(MAIN)
    assert isinstance(tip, TipInfo)
    assert tip.sub == view.sub
