"""The tool gate's memo of decoded TIPs: one decode per TIP, bounded, never stale."""

from __future__ import annotations

import jwt

from agent_identity.authz import TipClaims
from agent_identity.host.hook_tools import _ClaimsMemo


def tip(sub: str, n: int = 0) -> str:
    claims = {"sub": sub, "act": {"sub": "openclaw-agent"}, "iat": 1_800_000_000 + n}
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def test_a_tip_is_decoded_once_and_again_when_the_session_has_another() -> None:
    memo = _ClaimsMemo()
    first = memo.claims("s", tip("alice"))
    assert isinstance(first, TipClaims)
    assert first.sub == "alice"
    assert first.chain.actors == ("openclaw-agent",)
    assert memo.claims("s", tip("alice")) is first  # an equal token: the same claims
    second = memo.claims("s", tip("alice", 1))  # refreshed
    assert isinstance(second, TipClaims)
    assert second is not first
    assert second.iat == 1_800_000_001


def test_an_undecodable_tip_is_handed_on_as_is() -> None:
    memo = _ClaimsMemo()
    assert memo.claims("s", "not-a-jwt") == "not-a-jwt"
    assert memo.claims("s", "not-a-jwt") == "not-a-jwt"


def test_the_memo_is_bounded_and_forgets_sessions() -> None:
    memo = _ClaimsMemo(capacity=2)
    tokens = {key: tip(key) for key in ("a", "b", "c")}
    claims = {key: memo.claims(key, token) for key, token in tokens.items()}
    assert memo.claims("b", tokens["b"]) is claims["b"]
    assert memo.claims("c", tokens["c"]) is claims["c"]
    assert memo.claims("a", tokens["a"]) is not claims["a"]  # "a" went first
    memo.forget("a")
    memo.forget("missing")
    assert memo.claims("a", tokens["a"]) is not claims["a"]
