"""The verifier accepts every signed request and rejects any change (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_identity.volcengine.signer import SigningCredentials, sign_request
from agent_identity.volcengine.verifier import (
    KnownKey,
    SignatureError,
    parse_authorization,
    verify_request,
)

AK = "AKLTPROPERTYKEY"
SK = "property-secret-key/+=="
TOKEN = "STS-PROPERTY-TOKEN"
NOW = datetime(2026, 11, 29, 5, 0, 0, tzinfo=UTC)

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
queries = st.lists(st.tuples(st.text(min_size=1, max_size=10), texts), max_size=5)
bodies = st.binary(max_size=200)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])


def _lookup(ak: str) -> KnownKey | None:
    if ak == AK:
        return KnownKey(SK)
    if ak == "AKTEMP":
        return KnownKey(SK, TOKEN)
    return None


def _sign(
    method: str,
    query: list[tuple[str, str]],
    body: bytes,
    creds: SigningCredentials | None = None,
    moment: datetime = NOW,
) -> dict[str, str]:
    return sign_request(
        method=method,
        host="127.0.0.1:8443",
        path="/",
        query=query,
        headers={"Content-Type": "application/json", "X-Sdk-Request": "attempt=1; max=4"},
        body=body,
        credentials=creds or SigningCredentials(AK, SK),
        region="cn-beijing",
        service="id",
        moment=moment,
    )


def _verify(
    method: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    now: datetime = NOW,
) -> None:
    verify_request(
        method=method, path="/", query=query, headers=headers, body=body, lookup=_lookup, now=now
    )


@settings(max_examples=150)
@given(method=methods, query=queries, body=bodies)
def test_every_signed_request_verifies(
    method: str, query: list[tuple[str, str]], body: bytes
) -> None:
    headers = _sign(method, query, body)
    _verify(method, query, headers, body)
    # The receiver sees header names in any case.
    _verify(method, query, {k.lower(): v for k, v in headers.items()}, body)


@settings(max_examples=100)
@given(method=methods, query=queries, body=bodies, data=st.data())
def test_any_change_is_rejected(
    method: str, query: list[tuple[str, str]], body: bytes, data: st.DataObject
) -> None:
    headers = _sign(method, query, body)
    change = data.draw(st.sampled_from(["method", "query", "header", "body", "time"]))
    if change == "method":
        other = data.draw(methods.filter(lambda m: m != method))
        args = (other, query, headers, body, NOW)
    elif change == "query":
        extra = data.draw(st.tuples(st.text(min_size=1, max_size=5), texts))
        args = (method, [*query, extra], headers, body, NOW)
    elif change == "header":
        name = data.draw(st.sampled_from(["Content-Type", "X-Sdk-Request", "Host"]))
        altered = dict(headers)
        altered[name] = headers[name] + "x"
        args = (method, query, altered, body, NOW)
    elif change == "body":
        args = (method, query, headers, body + b"!", NOW)
    else:
        skewed = NOW + timedelta(seconds=1)
        altered = dict(headers)
        altered["X-Date"] = skewed.strftime("%Y%m%dT%H%M%SZ")
        args = (method, query, altered, body, NOW)
    with pytest.raises(SignatureError) as info:
        _verify(*args)
    assert info.value.status == 401
    assert info.value.code == "SignatureDoesNotMatch"


def test_wrong_secret_is_signature_mismatch() -> None:
    headers = _sign("POST", [], b"{}", SigningCredentials(AK, "not-the-secret"))
    with pytest.raises(SignatureError) as info:
        _verify("POST", [], headers, b"{}")
    assert (info.value.code, info.value.code_n, info.value.status) == (
        "SignatureDoesNotMatch",
        100010,
        401,
    )


def test_unknown_access_key() -> None:
    headers = _sign("POST", [], b"{}", SigningCredentials("AKUNKNOWN", SK))
    with pytest.raises(SignatureError) as info:
        _verify("POST", [], headers, b"{}")
    assert (info.value.code, info.value.code_n) == ("InvalidAccessKey", 100009)


def test_stale_x_date_is_invalid_timestamp() -> None:
    old = NOW - timedelta(minutes=16)
    headers = _sign("POST", [], b"{}", moment=old)
    with pytest.raises(SignatureError) as info:
        _verify("POST", [], headers, b"{}")
    assert (info.value.code, info.value.code_n, info.value.status) == (
        "InvalidTimestamp",
        100006,
        400,
    )
    _verify("POST", [], headers, b"{}", now=old + timedelta(minutes=14))


def test_temporary_keys_need_their_token() -> None:
    good = _sign("POST", [], b"{}", SigningCredentials("AKTEMP", SK, TOKEN))
    _verify("POST", [], good, b"{}")
    without = _sign("POST", [], b"{}", SigningCredentials("AKTEMP", SK))
    with pytest.raises(SignatureError) as info:
        _verify("POST", [], without, b"{}")
    assert info.value.code == "InvalidAccessKey"


def test_missing_and_malformed_authorization() -> None:
    with pytest.raises(SignatureError) as info:
        _verify("POST", [], {"Host": "h", "X-Date": "20261129T050000Z"}, b"")
    assert info.value.code == "MissingAuthenticationToken"
    with pytest.raises(SignatureError) as info:
        parse_authorization("Bearer abc")
    assert info.value.code == "MissingSignature"


def test_signed_header_list_must_cover_host_and_date() -> None:
    headers = _sign("POST", [], b"{}")
    auth = headers["Authorization"].replace("host;", "")
    with pytest.raises(SignatureError, match="host must be a signed header"):
        _verify("POST", [], {**headers, "Authorization": auth}, b"{}")


def test_malformed_x_date() -> None:
    headers = _sign("POST", [], b"{}")
    with pytest.raises(SignatureError) as info:
        _verify("POST", [], {**headers, "X-Date": "yesterday"}, b"{}")
    assert info.value.code == "InvalidTimestamp"
