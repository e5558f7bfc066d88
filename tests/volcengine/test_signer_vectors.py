"""The four test vectors of section 3.1 of the API notes, byte for byte."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from agent_identity.volcengine.signer import (
    SigningCredentials,
    canonical_query,
    canonical_request,
    hash_body,
    sign_request,
    signing_key,
)

AK = "AKLTEXAMPLEACCESSKEYID0000000000"
SK = "EXAMPLESECRETKEY/0000000000000000000000+abcd=="
MOMENT = datetime(2025, 11, 27, 2, 29, 39, tzinfo=UTC)
V1_BODY = (
    b'{"Name": "my-agent", "UserToken": '
    b'"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2ln", "WorkloadPoolName": "default"}'
)
ID_QUERY = [("Action", "GetWorkloadAccessTokenForJWT"), ("Version", "2025-10-30")]


def _signature(headers: dict[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1]


def _signed_headers(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0]


def test_v1_canonical_request_and_signature() -> None:
    assert len(V1_BODY) == 118
    body_sha = hash_body(V1_BODY)
    assert body_sha == "f3bba2ba02ba76667dd2d76b9627ceb5a6f64321a9ec7cef47421b85a73c5792"
    headers = {
        "Content-Type": "application/json",
        "Host": "open.volcengineapi.com",
        "X-Content-Sha256": body_sha,
        "X-Date": "20251127T022939Z",
    }
    canonical = canonical_request(
        "POST",
        "/",
        ID_QUERY,
        headers,
        ["content-type", "host", "x-content-sha256", "x-date"],
        body_sha,
    )
    assert canonical == (
        "POST\n/\nAction=GetWorkloadAccessTokenForJWT&Version=2025-10-30\n"
        "content-type:application/json\nhost:open.volcengineapi.com\n"
        f"x-content-sha256:{body_sha}\nx-date:20251127T022939Z\n\n"
        f"content-type;host;x-content-sha256;x-date\n{body_sha}"
    )
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == "ea71f39adf1515efd04c9b568336df2a0e53ac72ab4e99841d41998482e6abf1"
    )
    assert (
        signing_key(SK, "20251127", "cn-beijing", "id").hex()
        == "9c5cb0e50c206bb54fb109fbf25e0967b3cef3422255437791fa4838a88e8600"
    )
    out = sign_request(
        method="POST",
        host="open.volcengineapi.com",
        path="/",
        query=ID_QUERY,
        headers={"Content-Type": "application/json"},
        body=V1_BODY,
        credentials=SigningCredentials(AK, SK),
        region="cn-beijing",
        service="id",
        moment=MOMENT,
    )
    assert out["Authorization"] == (
        "HMAC-SHA256 Credential=AKLTEXAMPLEACCESSKEYID0000000000/20251127/cn-beijing/id/request, "
        "SignedHeaders=content-type;host;x-content-sha256;x-date, "
        "Signature=75a2935eac3078e4f850774301787d2f1e4f9d8422ad6e8f261c2f7ad8e74ec6"
    )
    assert out["X-Date"] == "20251127T022939Z"
    assert "X-Security-Token" not in out


def test_v2_with_security_token() -> None:
    out = sign_request(
        method="POST",
        host="open.volcengineapi.com",
        path="/",
        query=ID_QUERY,
        headers={"Content-Type": "application/json"},
        body=V1_BODY,
        credentials=SigningCredentials(AK, SK, "STSEXAMPLESESSIONTOKEN0123456789"),
        region="cn-beijing",
        service="id",
        moment=MOMENT,
    )
    assert _signed_headers(out) == "content-type;host;x-content-sha256;x-date;x-security-token"
    assert out["X-Security-Token"] == "STSEXAMPLESESSIONTOKEN0123456789"
    assert _signature(out) == "e2af4937c93a62a6baadc978970612820ea473c52267ca5be7a795b147c98277"


def test_v3_sts_form_body() -> None:
    body = b"RoleSessionName=agent-session&RoleTrn=trn%3Aiam%3A%3A2100000000%3Arole%2Fagent-role"
    assert len(body) == 83
    assert hash_body(body) == "064b4983c843a83f800e526ff3e862b0fec04d5b71819ba138e44b2ecf16e73a"
    assert (
        signing_key(SK, "20251127", "cn-beijing", "sts").hex()
        == "8b4ef31381cf24af62f973961bbff81a6f5cdacd0b9c0d33b9b482d6618737a9"
    )
    out = sign_request(
        method="POST",
        host="sts.volcengineapi.com",
        path="/",
        query=[("Action", "AssumeRole"), ("Version", "2018-01-01")],
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body,
        credentials=SigningCredentials(AK, SK),
        region="cn-beijing",
        service="sts",
        moment=MOMENT,
    )
    assert _signature(out) == "bd4cf69c2639288148ffeff6d79d01acf5d3c8f0ee8da1472f8c030c402e6b1b"


def test_v4_get_query_encoding_no_content_type() -> None:
    query = [
        ("Action", "ListUsers"),
        ("Version", "2018-01-01"),
        ("Query", "a b/c~*"),
        ("Limit", "10"),
    ]
    assert (
        canonical_query(query) == "Action=ListUsers&Limit=10&Query=a%20b%2Fc~%2A&Version=2018-01-01"
    )
    out = sign_request(
        method="GET",
        host="iam.volcengineapi.com",
        path="/",
        query=query,
        headers={},
        body=b"",
        credentials=SigningCredentials(AK, SK),
        region="cn-beijing",
        service="iam",
        moment=MOMENT,
    )
    assert _signed_headers(out) == "host;x-content-sha256;x-date"
    assert _signature(out) == "13faa136b4dd94627638f7b25b8bb85b30964ec7b521e731341ebc95c709cb91"


def test_default_ports_are_stripped_from_host_but_others_kept() -> None:
    creds = SigningCredentials(AK, SK)
    base = sign_request(
        method="GET",
        host="iam.volcengineapi.com",
        path="/",
        query=[],
        headers={},
        body=b"",
        credentials=creds,
        region="cn-beijing",
        service="iam",
        moment=MOMENT,
    )
    with_443 = sign_request(
        method="GET",
        host="iam.volcengineapi.com:443",
        path="/",
        query=[],
        headers={},
        body=b"",
        credentials=creds,
        region="cn-beijing",
        service="iam",
        moment=MOMENT,
    )
    with_8443 = sign_request(
        method="GET",
        host="iam.volcengineapi.com:8443",
        path="/",
        query=[],
        headers={},
        body=b"",
        credentials=creds,
        region="cn-beijing",
        service="iam",
        moment=MOMENT,
    )
    assert _signature(base) == _signature(with_443)
    assert _signature(base) != _signature(with_8443)


def test_credentials_repr_hides_secrets() -> None:
    creds = SigningCredentials(AK, SK, "STSEXAMPLESESSIONTOKEN0123456789")
    text = repr(creds)
    assert AK in text
    assert SK not in text
    assert "STSEXAMPLESESSIONTOKEN" not in text
    assert creds.is_temporary
    assert not SigningCredentials(AK, SK).is_temporary
