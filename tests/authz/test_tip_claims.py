"""TIP claims and the delegation chain, decoded without verification; malformed tokens."""

from __future__ import annotations

import base64
import datetime as dt
import gc
import json
from collections.abc import Callable
from typing import Any

import jwt
import msgspec
import pytest

from agent_identity.authz.tip_claims import (
    MAX_CHAIN_DEPTH,
    MAX_TIP_LENGTH,
    DelegationChain,
    TipClaims,
    TipClaimsError,
    decode_tip_claims,
    delegation_chain,
)

KEY = "k" * 48  # any key: the signature is not checked


def token(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, KEY, algorithm="HS256")


def raw_token(payload: bytes, header: bytes = b'{"alg":"RS256","typ":"JWT"}') -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(payload)}.{b64(b'signature')}"


def test_nested_act_gives_the_chain_outermost_first() -> None:
    claims = decode_tip_claims(
        token(
            {
                "sub": "alice",
                "iss": "https://auth.id.cn-beijing.volces.com/workloadpool/wp-1",
                "aud": ["https://api.example.com"],
                "iat": 1_700_000_000,
                "exp": 1_700_003_600,
                "act": {
                    "sub": "openclaw-agent",
                    "act": {"sub": "planner", "act": {"sub": "gateway"}},
                },
            }
        )
    )
    assert claims.sub == "alice"
    assert claims.chain == DelegationChain(("openclaw-agent", "planner", "gateway"))
    assert claims.agent == claims.chain.current == "openclaw-agent"
    assert claims.chain.callers == ("planner", "gateway")
    assert list(claims.chain) == claims.chain.to_list() == ["openclaw-agent", "planner", "gateway"]
    assert len(claims.chain) == 3
    assert claims.chain[-1] == "gateway"
    assert str(claims.chain) == "openclaw-agent <- planner <- gateway"
    assert claims.iss == "https://auth.id.cn-beijing.volces.com/workloadpool/wp-1"
    assert claims.aud == ("https://api.example.com",)
    assert (claims.iat, claims.exp) == (1_700_000_000, 1_700_003_600)
    assert claims.issued_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert claims.expires_at == dt.datetime(2023, 11, 14, 23, 13, 20, tzinfo=dt.UTC)
    assert claims.expires_in(1_700_003_000) == 600
    assert not claims.is_expired(1_700_003_599)
    assert claims.is_expired(1_700_003_600)
    assert claims.claims["act"]["sub"] == "openclaw-agent"
    assert "claims=" not in repr(claims)


def test_single_level_act_and_veadk_test_payload() -> None:
    claims = decode_tip_claims(token({"sub": "user123", "act": {"sub": "agent1"}}))
    assert claims.chain.actors == ("agent1",)
    assert claims.chain.callers == ()
    # Optional claims are simply absent.
    assert (claims.iss, claims.aud, claims.iat, claims.exp) == (None, (), None, None)
    assert claims.issued_at is None
    assert claims.expires_in(0) is None
    assert not claims.is_expired(10**12)


def test_a_tip_without_act_has_an_empty_chain() -> None:
    claims = decode_tip_claims(token({"sub": "alice", "aud": "single"}))
    assert claims.chain == DelegationChain()
    assert claims.agent is None
    assert not claims.chain
    assert str(claims.chain) == ""
    assert claims.aud == ("single",)


def test_float_timestamps_are_truncated_and_whitespace_is_ignored() -> None:
    claims = decode_tip_claims(f"  {token({'sub': 'a', 'iat': 10.9, 'exp': 20.5})}\n")
    assert (claims.iat, claims.exp) == (10, 20)


def test_out_of_range_timestamps_have_no_datetime() -> None:
    claims = decode_tip_claims(token({"sub": "a", "exp": 10**20}))
    assert claims.exp == 10**20
    assert claims.expires_at is None


def test_delegation_chain_from_already_decoded_claims() -> None:
    assert delegation_chain({"act": {"sub": "a", "act": {"sub": "b"}}}).actors == ("a", "b")
    assert delegation_chain({}).actors == ()


SECRET_MARKER = "SECRETMARKER"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (f"{SECRET_MARKER}-not-a-jwt", "not a compact JWT"),
        (f"a.b.c.{SECRET_MARKER}", "not a compact JWT"),
        (f"{SECRET_MARKER}!!.@@.##", "not valid base64url JSON"),
        (raw_token(b"[1, 2]"), "not valid base64url JSON"),
        (raw_token(f'{{"sub": "{SECRET_MARKER}"'.encode()), "not valid base64url JSON"),
        (raw_token(b'{"sub":"a"}', header=b"{bad"), "not valid base64url JSON"),
        (token({"act": {"sub": "x"}}), "no string sub"),
        (token({"sub": ""}), "no string sub"),
        (token({"sub": 42}), "no string sub"),
        (token({"sub": "a", "act": "agent"}), "act claim at depth 1 is not an object"),
        (token({"sub": "a", "act": {"sub": "x", "act": {"id": 1}}}), "depth 2 has no string sub"),
        (token({"sub": "a", "act": {"sub": ""}}), "depth 1 has no string sub"),
        (token({"sub": "a", "aud": 5}), "aud claim"),
        (token({"sub": "a", "aud": ["x", 5]}), "aud claim"),
        (raw_token(b'{"sub":"a","iss":5}'), "iss claim is not a string"),
        (token({"sub": "a", "exp": "soon"}), "exp claim is not a number"),
        (token({"sub": "a", "iat": True}), "iat claim is not a number"),
        (raw_token(b'{"sub":"a","exp":NaN}'), "exp claim is not a finite number"),
        (raw_token(b'{"sub":"a","iat":Infinity}'), "iat claim is not a finite number"),
    ],
)
def test_malformed_tokens_raise_a_clear_error_without_token_text(bad: str, message: str) -> None:
    with pytest.raises(TipClaimsError, match=message) as caught:
        decode_tip_claims(bad)
    text = str(caught.value)
    assert SECRET_MARKER not in text
    if bad.strip():
        assert bad.strip() not in text
    # No chained PyJWT error carries the token's pieces either.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_non_string_and_oversized_tokens_are_refused() -> None:
    with pytest.raises(TipClaimsError, match="must be a string"):
        decode_tip_claims(b"a.b.c")  # type: ignore[arg-type]
    with pytest.raises(TipClaimsError, match="longer than"):
        decode_tip_claims("a." + "b" * MAX_TIP_LENGTH + ".c")
    assert issubclass(TipClaimsError, ValueError)


def test_a_too_deep_chain_is_refused() -> None:
    act: dict[str, Any] = {"sub": "deepest"}
    for depth in range(MAX_CHAIN_DEPTH):
        act = {"sub": f"agent-{depth}", "act": act}
    with pytest.raises(TipClaimsError, match="deeper than"):
        decode_tip_claims(token({"sub": "a", "act": act}))
    # Exactly the limit is fine.
    assert len(decode_tip_claims(token({"sub": "a", "act": act["act"]})).chain) == MAX_CHAIN_DEPTH


def test_claims_can_be_built_directly() -> None:
    claims = TipClaims(sub="bob", chain=DelegationChain(("a",)))
    assert claims.agent == "a"
    assert json.dumps(claims.chain.to_list()) == '["a"]'


# ------------------------------------------------------------------ untracked by the collector


def test_claims_and_chain_are_never_tracked_by_the_garbage_collector() -> None:
    # The TIP refresher caches one TipClaims per session: tracked objects here are paid on
    # every full collection, per session (see scripts/bench/gc_pause.py).
    claims = decode_tip_claims(
        token(
            {
                "sub": "alice",
                "aud": ["https://api.example.com", "wp-1"],
                "act": {"sub": "openclaw-agent", "act": {"sub": "planner"}},
                "iat": 1,
                "exp": 2,
            }
        )
    )
    assert not gc.is_tracked(claims)
    assert not gc.is_tracked(claims.chain)
    assert not gc.is_tracked(TipClaims(sub="bob", chain=DelegationChain(("a",))))
    # Nothing held can be a container (the raw claims are bytes, decoded on demand).
    gc.collect()  # untracks the tuples of strings a first pass finds
    for name in msgspec.structs.fields(TipClaims):
        assert not gc.is_tracked(getattr(claims, name.name)), name.name
    assert not gc.is_tracked(claims.chain.actors)


def test_the_raw_claims_are_decoded_on_demand() -> None:
    raw = {"sub": "alice", "aud": ["x"], "act": {"sub": "agent"}, "jti": "j-1", "n": 1.5}
    claims = decode_tip_claims(token(raw))
    assert claims.claims == raw
    assert json.loads(claims.payload) == raw
    # A new dict each time: changing one changes nothing held.
    first = claims.claims
    assert isinstance(first, dict)
    first["sub"] = "mallory"
    assert claims.claims["sub"] == "alice"
    assert TipClaims(sub="bob", chain=DelegationChain()).claims == {}


def test_equality_hash_and_repr_leave_the_payload_out() -> None:
    one = decode_tip_claims(token({"sub": "alice", "act": {"sub": "a"}, "jti": "1"}))
    two = decode_tip_claims(token({"sub": "alice", "act": {"sub": "a"}, "jti": "2"}))
    assert one.payload != two.payload
    assert one == two
    assert hash(one) == hash(two)
    assert one != decode_tip_claims(token({"sub": "bob", "act": {"sub": "a"}}))
    assert one != ("alice",)
    assert repr(one) == (
        "TipClaims(sub='alice', chain=DelegationChain(actors=('a',)), iss=None, aud=(), "
        "iat=None, exp=None)"
    )
    assert "payload" not in repr(one)
    assert ("payload", one.payload) not in one.__rich_repr__()
    assert {DelegationChain(("a",)), DelegationChain(("a",))} == {DelegationChain(("a",))}


def test_claims_and_chain_are_frozen() -> None:
    claims = TipClaims(sub="bob", chain=DelegationChain(("a",)))
    with pytest.raises(AttributeError):
        claims.sub = "mallory"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        claims.chain.actors = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "build",
    [
        lambda: DelegationChain(["a"]),  # type: ignore[arg-type]
        lambda: DelegationChain(("a", ["b"])),  # type: ignore[arg-type]
        lambda: TipClaims(sub=["bob"], chain=DelegationChain()),  # type: ignore[arg-type]
        lambda: TipClaims(sub="bob", chain=("a",)),  # type: ignore[arg-type]
        lambda: TipClaims(sub="bob", chain=DelegationChain(), aud=["x"]),  # type: ignore[arg-type]
        lambda: TipClaims(sub="bob", chain=DelegationChain(), iss={"x": 1}),  # type: ignore[arg-type]
        lambda: TipClaims(sub="bob", chain=DelegationChain(), iat=[1]),  # type: ignore[arg-type]
        lambda: TipClaims(sub="bob", chain=DelegationChain(), payload=bytearray()),  # type: ignore[arg-type]
    ],
)
def test_fields_that_could_make_a_cycle_are_refused(build: Callable[[], object]) -> None:
    # Untracked objects in a reference cycle would never be freed: only plain values go in.
    with pytest.raises(TypeError, match="must be"):
        build()


def test_a_str_subclass_is_refused() -> None:
    class Text(str):  # instances have a __dict__: they could refer back to the claims
        pass

    with pytest.raises(TypeError, match="must be str, not Text"):
        TipClaims(sub=Text("bob"), chain=DelegationChain())
    with pytest.raises(TypeError, match="tuple of str"):
        DelegationChain((Text("a"),))
