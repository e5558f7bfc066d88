"""Shared fixtures for the config tests: the fixture files and the secret values inside them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_identity.config.json5_reader import parse_json5

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECRET_KEYS = frozenset(
    {
        "accessKeyId",
        "secretAccessKey",
        "sessionToken",
        "clientSecret",
        "apiKey",
        "appSecret",
        "encryptKey",
        "verificationToken",
        "botToken",
    }
)


def _secret_values(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _secret_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_values(item)


def windows(secret: str, size: int = 5) -> set[str]:
    """Every piece of ``size`` characters of a secret (showing the last 4 is allowed)."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.fixture
def example_path() -> Path:
    return FIXTURES / "openclaw.example.json"


@pytest.fixture
def secrets_path() -> Path:
    return FIXTURES / "openclaw.secrets.json"


@pytest.fixture
def secret_values(secrets_path: Path) -> list[str]:
    values = list(_secret_values(parse_json5(secrets_path.read_text()).value))
    assert len(values) == 10
    return values


@pytest.fixture
def assert_no_secret(secret_values: list[str]) -> Callable[[str], None]:
    def check(text: str) -> None:
        for secret in secret_values:
            leaked = [piece for piece in windows(secret) if piece in text]
            assert not leaked, f"a piece of a secret leaked: {leaked}"

    return check
