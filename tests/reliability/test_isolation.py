"""``scripts/soak/isolation.py``: 1,000 concurrent sessions never see each other's identity.

The quick mode runs as CI runs it (1,000 sessions against the sandbox in one process). The
checks it relies on are tested on their own too: a leak must be reported as a violation.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from agent_identity.host.results import BeforeToolCallResult

from .test_crash_support import load_script, run_script


@pytest.mark.slow
def test_quick_mode_has_no_violation_among_1000_sessions() -> None:
    run = run_script("isolation", "--quick")
    figures = run.summary
    assert run.returncode == 0, run.explain()
    assert figures["sessions"] == 1000
    assert figures["violations"] == 0, run.explain()
    assert figures["missing"] == 0, run.explain()
    assert figures["errors"] == 0, run.explain()
    # Every session called tools, most had credentials, and the mix really ran.
    assert figures["tool_calls"] >= figures["sessions"]
    assert figures["bindings"] >= figures["sessions"] // 2
    assert figures["tip_checks"] > 0
    assert figures["logouts"] > 0
    assert figures["logins"] == figures["sessions"] + figures["logouts"]


def _run_with(sessions: list[Any]) -> Any:
    soak = load_script("isolation")
    # The checks need no system: only the bookkeeping of who bound what.
    return soak.Run(None, None, sessions, random.Random(1))


def _overlay(env: dict[str, str]) -> BeforeToolCallResult:
    return BeforeToolCallResult(params={"env": env})


def test_another_sessions_value_in_an_overlay_is_a_violation() -> None:
    soak = load_script("isolation")
    alice, bob = soak.make_sessions(2)
    run = _run_with([alice, bob])
    alice.bound = {soak.API_VAR: "sk-alice"}
    bob.bound = {soak.API_VAR: "sk-bob"}
    run.owners = {"sk-alice": (alice.index, 1), "sk-bob": (bob.index, 1)}
    run.check_overlay(alice, _overlay({soak.API_VAR: "sk-alice"}), expect_nothing=False)
    run.check_overlay(bob, None, expect_nothing=True)  # logged out: nothing is right
    assert (run.tally.violations, run.tally.missing) == (0, 0)
    run.check_overlay(alice, _overlay({soak.API_VAR: "sk-bob"}), expect_nothing=False)
    assert run.tally.violations == 1
    assert run.tally.missing == 1  # and alice's own value did not arrive
    assert "session 1 generation 1" in run.tally.examples[0]
    # A value of the session's own previous user after a logout is a violation too.
    run.check_overlay(alice, _overlay({soak.API_VAR: "sk-alice"}), expect_nothing=True)
    assert run.tally.violations == 2


def test_the_models_own_env_value_passes_through_only_without_a_binding() -> None:
    soak = load_script("isolation")
    (carol,) = soak.make_sessions(1)
    run = _run_with([carol])
    run.check_overlay(carol, _overlay({soak.API_VAR: soak.MODEL_VALUE}), expect_nothing=False)
    assert run.tally.violations == run.tally.missing == 0
    carol.bound = {soak.API_VAR: "sk-carol"}
    run.check_overlay(carol, _overlay({soak.API_VAR: soak.MODEL_VALUE}), expect_nothing=False)
    assert run.tally.violations == 1  # the model's value won over the user's binding
    assert run.tally.missing == 1


def test_a_tip_of_another_user_is_a_violation() -> None:
    soak = load_script("isolation")
    alice, bob = soak.make_sessions(2)
    run = _run_with([alice, bob])
    alice.sub, bob.sub = "user-a", "user-b"
    run.subs = {"user-a": alice.index, "user-b": bob.index}
    run.check_sub(alice, "user-a", "TIP")
    assert run.tally.violations == 0
    run.check_sub(alice, "user-b", "TIP")
    run.check_sub(alice, "stranger", "TIP")
    assert run.tally.violations == 2
    assert "the user of session 1" in run.tally.examples[0]
    assert "an unknown user" in run.tally.examples[1]


def test_a_blocked_tool_call_is_an_error_not_a_pass() -> None:
    soak = load_script("isolation")
    (dave,) = soak.make_sessions(1)
    run = _run_with([dave])
    blocked = BeforeToolCallResult(block=True, block_reason="could not check it")
    run.check_overlay(dave, blocked, expect_nothing=False)
    assert run.tally.errors == 1


def test_sessions_alternate_shared_main_key_and_direct_messages() -> None:
    soak = load_script("isolation")
    webchat, telegram = soak.make_sessions(2)
    assert webchat.channel is None
    assert telegram.channel == "telegram"
    # Both hand the host's shared key; only the trusted sender tells them apart.
    assert webchat.tool_hook_ctx()["sessionKey"] == telegram.tool_hook_ctx()["sessionKey"]
    assert webchat.tool_hook_ctx()["requester"]["senderId"] != telegram.sender
