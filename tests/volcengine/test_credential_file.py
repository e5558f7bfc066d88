"""The VeFaaS credential file: path selection, parsing, reading without blocking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_identity.volcengine.credential_file import (
    DEFAULT_CREDENTIALS_FILE,
    credentials_file_path,
    parse_credentials_file,
    read_credentials_file,
)
from agent_identity.volcengine.errors import CredentialsError

from .helpers import LeakWatch

SK = "file-secret-key-0000000000"
TOKEN = "file-session-token-0000000000"


def test_path_selection() -> None:
    env = {"VOLCENGINE_CREDENTIALS_FILE": "/env/path"}
    assert credentials_file_path("/explicit", env) == "/explicit"
    assert credentials_file_path(None, env) == "/env/path"
    assert credentials_file_path("", {}) == DEFAULT_CREDENTIALS_FILE
    assert DEFAULT_CREDENTIALS_FILE == "/var/run/secrets/iam/credential"


def test_parse_full_file() -> None:
    data = json.dumps(
        {
            "access_key_id": " AKLTfile ",
            "secret_access_key": SK,
            "session_token": TOKEN,
            "role_trn": "trn:iam::1:role/r",
            "expired_time": "ignored",
        }
    ).encode()
    parsed = parse_credentials_file(data, "/f")
    assert parsed.access_key_id == "AKLTfile"
    assert (parsed.secret_access_key, parsed.session_token) == (SK, TOKEN)
    assert parsed.role_trn == "trn:iam::1:role/r"
    creds = parsed.signing_credentials()
    assert creds.is_temporary
    assert SK not in repr(parsed)
    assert TOKEN not in repr(parsed)


def test_parse_minimal_file_treats_empty_values_as_absent() -> None:
    data = b'{"access_key_id":"AK","secret_access_key":"SK","session_token":"","role_trn":" "}'
    parsed = parse_credentials_file(data, "/f")
    assert parsed.session_token is None
    assert parsed.role_trn is None
    assert not parsed.signing_credentials().is_temporary


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json " + SK.encode(), "not valid JSON"),
        (b"[]", "unexpected shape"),
        (json.dumps({"access_key_id": 1, "secret_access_key": SK}).encode(), "unexpected shape"),
        (json.dumps({"secret_access_key": SK}).encode(), "are required"),
        (json.dumps({"access_key_id": "AK", "secret_access_key": ""}).encode(), "are required"),
    ],
)
def test_malformed_files(data: bytes, problem: str, leak_watch: LeakWatch) -> None:
    leak_watch.secret(SK)
    with pytest.raises(CredentialsError) as caught:
        parse_credentials_file(data, "/var/run/x")
    assert caught.value.code == "InvalidCredentialsFile"
    assert "/var/run/x" in str(caught.value)
    assert problem in str(caught.value)


async def test_read_file(tmp_path: Path) -> None:
    path = tmp_path / "credential"
    path.write_text(json.dumps({"access_key_id": "AK", "secret_access_key": SK}))
    found = await read_credentials_file(str(path))
    assert found is not None
    assert found.secret_access_key == SK


async def test_missing_file_is_none(tmp_path: Path) -> None:
    assert await read_credentials_file(str(tmp_path / "absent")) is None


async def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot be read"):
        await read_credentials_file(str(tmp_path))
    big = tmp_path / "big"
    big.write_bytes(b" " * (64 * 1024 + 1))
    with pytest.raises(CredentialsError, match="larger than"):
        await read_credentials_file(str(big))
