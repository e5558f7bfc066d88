"""Envelope parsing of every shape, from raw bytes, and the error type's text and helpers."""

from __future__ import annotations

import json

import msgspec
import pytest

from agent_identity.volcengine.envelope import parse_response
from agent_identity.volcengine.errors import (
    CredentialsError,
    VolcengineError,
    VolcengineTransportError,
    is_conflict,
    is_not_found,
    is_retryable_status,
)
from agent_identity.volcengine.models import EmptyResult, ResourceOauth2Token

from .helpers import LeakWatch

META = {
    "RequestId": "20251127102956244151133166425FB8",
    "Action": "GetResourceOauth2Token",
    "Version": "2025-10-30",
    "Service": "id",
    "Region": "cn-beijing",
}
SECRET_TOKEN = "at-supersecret-0123456789"


def _body(document: object) -> bytes:
    return json.dumps(document).encode()


def _parse(status: int, body: bytes) -> ResourceOauth2Token:
    return parse_response(
        status, body, action="GetResourceOauth2Token", result_type=ResourceOauth2Token
    )


def test_success_decodes_result_and_ignores_unknown_fields() -> None:
    body = _body(
        {
            "ResponseMetadata": META,
            "Result": {"AccessToken": SECRET_TOKEN, "ExpiresIn": 3600, "NewField": [1, 2]},
        }
    )
    result = _parse(200, body)
    assert result.access_token == SECRET_TOKEN
    assert result.expires_in == 3600
    assert result.authorization_url is None


@pytest.mark.parametrize("result", [{}, None, "absent"])
def test_empty_results(result: object) -> None:
    document: dict[str, object] = {"ResponseMetadata": META}
    if result != "absent":
        document["Result"] = result
    parsed = parse_response(200, _body(document), action="X", result_type=EmptyResult)
    assert parsed == EmptyResult()


def test_2xx_with_error_in_metadata() -> None:
    error = {"Code": "InvalidParameter.Flow", "Message": "The parameter Flow is invalid."}
    with pytest.raises(VolcengineError) as caught:
        _parse(200, _body({"ResponseMetadata": {**META, "Error": error}}))
    exc = caught.value
    assert (exc.status, exc.code, exc.code_n) == (200, "InvalidParameter.Flow", None)
    assert exc.request_id == META["RequestId"]
    assert exc.action == "GetResourceOauth2Token"
    assert not exc.retryable
    assert str(exc) == (
        "GetResourceOauth2Token: HTTP 200 InvalidParameter.Flow: The parameter Flow is invalid. "
        f"[RequestId {META['RequestId']}]"
    )


def test_non_2xx_envelope_with_code_n() -> None:
    error = {"Code": "SignatureDoesNotMatch", "CodeN": 100010, "Message": "bad signature"}
    with pytest.raises(VolcengineError) as caught:
        _parse(401, _body({"ResponseMetadata": {**META, "Error": error}}))
    exc = caught.value
    assert (exc.status, exc.code, exc.code_n) == (401, "SignatureDoesNotMatch", 100010)
    assert "(100010)" in str(exc)


def test_error_envelope_without_message_or_code() -> None:
    with pytest.raises(VolcengineError) as caught:
        _parse(503, _body({"ResponseMetadata": {**META, "Error": {}}}))
    assert (caught.value.code, caught.value.message) == ("HttpError", "(no message)")
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html>Bad Gateway</html>"),
        (500, b""),
        (404, _body({"error": "not_found"})),
        (429, _body({"ResponseMetadata": META})),
    ],
)
def test_non_2xx_without_error_envelope_is_generic(status: int, body: bytes) -> None:
    with pytest.raises(VolcengineError) as caught:
        _parse(status, body)
    exc = caught.value
    assert (exc.status, exc.code) == (status, "HttpError")
    assert f"HTTP {status} without an error envelope" in str(exc)


def test_generic_error_keeps_request_id_when_present() -> None:
    with pytest.raises(VolcengineError) as caught:
        _parse(500, _body({"ResponseMetadata": META}))
    assert caught.value.request_id == META["RequestId"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>not JSON</body></html>", "the body is not JSON"),
        (b"", "the body is not JSON"),
        (_body({"Result": {}, "Message": "no metadata"}), "the body has no ResponseMetadata"),
        (_body([1, 2]), "the body is not a valid envelope"),
        (
            _body({"ResponseMetadata": {**META, "Error": {"Code": 5}}}),
            "the body is not a valid envelope",
        ),
    ],
)
def test_invalid_2xx_bodies(body: bytes, message: str) -> None:
    with pytest.raises(VolcengineError) as caught:
        _parse(200, body)
    assert caught.value.code == "InvalidResponse"
    assert message in caught.value.message
    assert not caught.value.retryable


def test_result_of_the_wrong_shape_never_quotes_the_value() -> None:
    body = _body({"ResponseMetadata": META, "Result": {"AccessToken": 12, "Tok": SECRET_TOKEN}})
    with pytest.raises(VolcengineError) as caught:
        _parse(200, body)
    assert caught.value.code == "InvalidResponse"
    assert "$.AccessToken" in str(caught.value)
    body = _body({"ResponseMetadata": META, "Result": [SECRET_TOKEN]})
    with pytest.raises(VolcengineError) as caught:
        _parse(200, body)
    assert SECRET_TOKEN not in str(caught.value)


def test_error_text_never_contains_the_request(leak_watch: LeakWatch) -> None:
    # The request carried a token; the server's error echoes nothing of it, and the error
    # built from the answer has no way to reach the request.
    leak_watch.secret(SECRET_TOKEN)
    error = {"Code": "InvalidParameter.IdentityToken", "Message": "The token is invalid."}
    with pytest.raises(VolcengineError) as caught:
        _parse(400, _body({"ResponseMetadata": {**META, "Error": error}}))
    assert SECRET_TOKEN not in repr(caught.value)
    assert caught.value.__cause__ is None


def test_long_messages_are_clipped_and_flattened() -> None:
    exc = VolcengineError(status=500, code="X", message="line\n" * 400)
    assert "\n" not in exc.message
    assert len(exc.message) == 500
    assert exc.message.endswith("...")


def test_transport_and_credentials_errors_are_volcengine_errors() -> None:
    transport = VolcengineTransportError(status=None, code="ConnectionError", message="refused")
    assert isinstance(transport, VolcengineError)
    assert transport.retryable
    assert str(transport) == "ConnectionError: refused"
    creds = CredentialsError(status=None, code="NoCredentials", message="none")
    assert isinstance(creds, VolcengineError)
    assert not creds.retryable


@pytest.mark.parametrize(
    ("status", "code", "not_found", "conflict"),
    [
        (404, "ResourceNotFound.WorkloadIdentity", True, False),
        (404, "Whatever", True, False),
        (400, "InvalidParameter.NotFoundish", True, False),
        (200, "UserPoolNotFound", True, False),
        (409, "ResourceAlreadyExists.UserPool", False, True),
        (409, "Anything", False, True),
        (400, "WorkloadIdentityAlreadyExist", False, True),
        (400, "DuplicateName", False, True),
        (400, "ConflictingUpdate", False, True),
        (400, "NameExists", False, True),
        (400, "InvalidParameter.Name", False, False),
        (500, "InternalError", False, False),
    ],
)
def test_is_not_found_and_is_conflict(
    status: int, code: str, not_found: bool, conflict: bool
) -> None:
    error = VolcengineError(status=status, code=code, message="m")
    assert is_not_found(error) is not_found
    assert is_conflict(error) is conflict


def test_helpers_reject_other_exceptions() -> None:
    assert not is_not_found(KeyError("NotFound"))
    assert not is_conflict(ValueError("Conflict"))


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (502, True), (503, True), (504, True), (501, False), (400, False)],
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable
    assert VolcengineError(status=status, code="C", message="m").retryable is retryable


def test_msgspec_validation_messages_carry_no_values() -> None:
    # The envelope relies on this: a wrong-typed secret is reported by path, not by value.
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(_body({"AccessToken": [SECRET_TOKEN]}), type=ResourceOauth2Token)
    assert SECRET_TOKEN not in str(caught.value)
