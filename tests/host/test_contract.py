"""Host contract base: decoding, wire form, UTF-16 helpers, WebChat test, gateway params."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given

from agent_identity.host.contract import (
    COMMAND_NAMES,
    CREDENTIAL_FLOWS,
    SESSION_GET_METHOD,
    SESSION_PUT_METHOD,
    ConnectParams,
    Fetch,
    GatewayClient,
    GatewayClientInfo,
    GatewayRequest,
    PayloadError,
    SessionGetParams,
    SessionPutParams,
    Whoami,
    decode_as,
    is_webchat_connect,
    to_wire,
    truncate_utf16,
    utf16_len,
)
from agent_identity.host.session_keys import MAX_SENDER_ID_LENGTH

GRIN = "\U0001f600"  # outside the BMP: two UTF-16 units


def test_names() -> None:
    assert COMMAND_NAMES == ("identity", "id")
    assert SESSION_PUT_METHOD == "identity.session.put"
    assert SESSION_GET_METHOD == "identity.session.get"
    assert CREDENTIAL_FLOWS == ("oauth2-user", "oauth2-m2m", "apikey")


# ---------------------------------------------------------------- decode_as


def test_decode_mapping_with_camel_case_keys_and_unknown_fields() -> None:
    params = decode_as(
        SessionPutParams,
        {"sessionKey": "main", "idToken": "eyJ", "senderId": "u1", "addedIn2027": {"x": 1}},
    )
    assert params == SessionPutParams(session_key="main", id_token="eyJ", sender_id="u1")


def test_decode_returns_an_instance_unchanged() -> None:
    params = SessionGetParams(session_key="main")
    assert decode_as(SessionGetParams, params) is params


@pytest.mark.parametrize(
    "obj",
    [
        SimpleNamespace(session_key="k", sender_id="s"),
        SimpleNamespace(sessionKey="k", senderId="s"),
        SessionPutParams(session_key="k", id_token="t", sender_id="s"),
    ],
)
def test_decode_from_attributes(obj: object) -> None:
    assert decode_as(SessionGetParams, obj) == SessionGetParams(session_key="k", sender_id="s")


def test_decode_nested_structs_and_free_form_params() -> None:
    client = decode_as(
        GatewayClient,
        {"connect": {"client": {"id": "x", "mode": "webchat"}, "minProtocol": 3}, "connId": "c"},
    )
    assert client == GatewayClient(
        connect=ConnectParams(client=GatewayClientInfo(id="x", mode="webchat")), conn_id="c"
    )
    request = decode_as(GatewayRequest, {"id": "7", "method": "m", "params": {"a": None}})
    assert request == GatewayRequest(id="7", method="m", params={"a": None})


def test_numbers_are_not_turned_into_strings() -> None:
    # Lax mode parses numeric strings into numbers, never the other way round.
    assert isinstance(decode_as(GatewayRequest, {"id": 7, "method": "m"}), PayloadError)


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"sessionKey": 1, "idToken": "t"}, "$.sessionKey"),
        ({"idToken": "t"}, "sessionKey"),
        ({"sessionKey": "k", "idToken": ""}, "$.idToken"),
        (
            {"sessionKey": "k", "idToken": "t", "senderId": "x" * (MAX_SENDER_ID_LENGTH + 1)},
            "$.senderId",
        ),
        (None, "object"),
        ("text", "object"),
        ([1, 2], "object"),
    ],
)
def test_decode_errors_are_values(obj: object, fragment: str) -> None:
    error = decode_as(SessionPutParams, obj)
    assert isinstance(error, PayloadError)
    assert error.kind == "SessionPutParams"
    assert fragment in error.message
    assert str(error).startswith("invalid SessionPutParams payload: ")


def test_decode_error_kind_can_be_named() -> None:
    error = decode_as(SessionGetParams, {}, kind="identity.session.get params")
    assert isinstance(error, PayloadError)
    assert error.kind == "identity.session.get params"


def test_sender_id_at_the_limit_is_accepted() -> None:
    sender = "x" * MAX_SENDER_ID_LENGTH
    params = decode_as(SessionGetParams, {"sessionKey": "main", "senderId": sender})
    assert isinstance(params, SessionGetParams)
    assert params.sender_id == sender


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_decode_never_raises(obj: object) -> None:
    result = decode_as(SessionPutParams, obj)
    assert isinstance(result, SessionPutParams | PayloadError)


# ---------------------------------------------------------------- to_wire


def test_to_wire_is_camel_case_and_omits_unset_fields() -> None:
    params = SessionPutParams(session_key="main", id_token="t", refresh_token="r")
    assert to_wire(params) == {"sessionKey": "main", "idToken": "t", "refreshToken": "r"}


def test_to_wire_keeps_nulls_inside_free_form_values() -> None:
    request = GatewayRequest(id="1", method="m", params={"senderId": None, "n": [None]})
    assert to_wire(request) == {"id": "1", "method": "m", "params": {"senderId": None, "n": [None]}}


def test_to_wire_round_trips() -> None:
    connect = ConnectParams(
        client=GatewayClientInfo(id="openclaw-control-ui", mode="webchat", display_name="UI"),
        scopes=["operator.write"],
    )
    wire = to_wire(connect)
    assert wire == {
        "client": {"id": "openclaw-control-ui", "displayName": "UI", "mode": "webchat"},
        "scopes": ["operator.write"],
    }
    assert decode_as(ConnectParams, wire) == connect
    assert msgspec.json.decode(msgspec.json.encode(connect)) == wire


# ---------------------------------------------------------------- UTF-16


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("中文", 2), (GRIN, 2), (f"a{GRIN}b", 4), ("\ud800", 1)],
)
def test_utf16_len(text: str, units: int) -> None:
    assert utf16_len(text) == units


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdef", 3, "abc"),
        ("abc", 3, "abc"),
        ("abc", 10, "abc"),
        (f"ab{GRIN}", 3, "ab"),  # the emoji would straddle the limit: dropped whole
        (f"ab{GRIN}", 4, f"ab{GRIN}"),
        (f"{GRIN}{GRIN}{GRIN}", 5, f"{GRIN}{GRIN}"),
        ("abc", 0, ""),
        ("abc", -1, ""),
    ],
)
def test_truncate_utf16(text: str, limit: int, expected: str) -> None:
    assert truncate_utf16(text, limit) == expected


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_truncate_utf16_properties(text: str, limit: int) -> None:
    cut = truncate_utf16(text, limit)
    assert text.startswith(cut)
    assert utf16_len(cut) <= limit
    if utf16_len(text) <= limit:
        assert cut == text
    else:  # the longest fitting prefix: one more character would not fit
        assert utf16_len(text[: len(cut) + 1]) > limit


# ---------------------------------------------------------------- WebChat test


@pytest.mark.parametrize(
    ("connect", "expected"),
    [
        ({"client": {"id": "openclaw-control-ui", "mode": "webchat", "version": "1"}}, True),
        ({"client": {"id": "anything", "mode": " WebChat "}}, True),
        ({"client": {"id": "webchat-ui", "mode": "ui"}}, True),
        ({"client": {"id": " WEBCHAT-UI ", "mode": "backend"}}, True),
        ({"client": {"id": "openclaw-tui", "mode": "ui"}}, False),
        ({"client": {"id": "cli", "mode": "cli"}}, False),
        ({"client": {"id": "node-host", "mode": "node"}}, False),
        ({"client": {"id": "webchat", "mode": "backend"}}, False),
        ({"client": {}}, False),
        ({"client": None}, False),
        ({"client": 5}, False),
        ({"client": {"mode": 5, "id": "webchat-ui"}}, False),
        ({"role": "operator"}, False),
        ({}, False),
        (None, False),
        ({"client": {"mode": "webchat"}, "scopes": "not-a-list"}, True),
        (ConnectParams(client=GatewayClientInfo(mode="webchat")), True),
        (ConnectParams(client=GatewayClientInfo(mode="ui")), False),
        (ConnectParams(), False),
        (SimpleNamespace(client=SimpleNamespace(id="webchat-ui", mode=None)), True),
        (SimpleNamespace(client={"mode": "webchat"}), True),
        (SimpleNamespace(other=1), False),
    ],
)
def test_is_webchat_connect(connect: object, expected: bool) -> None:
    assert is_webchat_connect(connect) is expected


# ---------------------------------------------------------------- command values


def test_commands_are_frozen_values() -> None:
    fetch = Fetch("google", flow="oauth2-m2m", scopes=("a",))
    assert fetch == Fetch("google", "oauth2-m2m", None, ("a",))
    assert hash(fetch) == hash(Fetch("google", "oauth2-m2m", None, ("a",)))
    assert Whoami() == Whoami()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fetch.provider = "x"  # type: ignore[misc]
