"""The environment snapshot: typed, taken from a mapping, strict about the values it parses."""

from __future__ import annotations

import base64

import pytest

from agent_identity.config import ConfigError, EnvSettings

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()


def test_empty_environment() -> None:
    env = EnvSettings.from_environ({})
    assert env == EnvSettings()
    assert env.access_key_id is None
    assert env.sts_debug is False
    assert env.store_key is None
    assert not env.has_access_keys


def test_every_variable() -> None:
    env = EnvSettings.from_environ(
        {
            "VOLCENGINE_ACCESS_KEY": "AKLTexample",
            "VOLCENGINE_SECRET_KEY": "sk",
            "VOLCENGINE_SESSION_TOKEN": "tok",
            "VOLCENGINE_CREDENTIALS_FILE": "/var/run/secrets/iam/credential",
            "RUNTIME_IAM_ROLE_TRN": "trn:iam::1:role/r",
            "IDENTITY_STS_DEBUG": "1",
            "AGENT_IDENTITY_STORE_KEY": KEY_B64,
            "UNRELATED": "x",
        }
    )
    assert env.access_key_id == "AKLTexample"
    assert env.secret_access_key == "sk"
    assert env.session_token == "tok"
    assert env.credentials_file == "/var/run/secrets/iam/credential"
    assert env.role_trn == "trn:iam::1:role/r"
    assert env.sts_debug is True
    assert env.store_key == KEY
    assert env.has_access_keys


def test_blank_values_are_unset() -> None:
    env = EnvSettings.from_environ({"VOLCENGINE_ACCESS_KEY": "  ", "VOLCENGINE_SECRET_KEY": ""})
    assert env.access_key_id is None
    assert env.secret_access_key is None


def test_values_are_stripped() -> None:
    assert EnvSettings.from_environ({"VOLCENGINE_ACCESS_KEY": " ak\n"}).access_key_id == "ak"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("off", False),
        ("", False),
    ],
)
def test_sts_debug_values(value: str, expected: bool) -> None:
    assert EnvSettings.from_environ({"IDENTITY_STS_DEBUG": value}).sts_debug is expected


def test_urlsafe_and_unpadded_store_key() -> None:
    urlsafe = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
    assert EnvSettings.from_environ({"AGENT_IDENTITY_STORE_KEY": urlsafe}).store_key == KEY


def test_bad_values_are_all_reported_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        EnvSettings.from_environ(
            {"IDENTITY_STS_DEBUG": "maybe", "AGENT_IDENTITY_STORE_KEY": "not*base64!"}
        )
    assert info.value.source == "environment"
    assert [str(problem) for problem in info.value.problems] == [
        "IDENTITY_STS_DEBUG: must be 1 or 0 (or true/false, yes/no, on/off)",
        "AGENT_IDENTITY_STORE_KEY: is not valid base64",
    ]
    assert "maybe" not in str(info.value)
    assert "base64!" not in str(info.value)


@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_store_key_must_be_32_bytes(size: int) -> None:
    value = base64.b64encode(b"k" * size).decode()
    with pytest.raises(ConfigError) as info:
        EnvSettings.from_environ({"AGENT_IDENTITY_STORE_KEY": value})
    assert str(info.value.problems[0]) == (
        f"AGENT_IDENTITY_STORE_KEY: must be the base64 of exactly 32 bytes (it decodes to {size})"
    )


def test_non_ascii_store_key() -> None:
    with pytest.raises(ConfigError):
        EnvSettings.from_environ({"AGENT_IDENTITY_STORE_KEY": "ключ"})
