"""Log output: text and JSON lines, every secret scrubbed (known values and token shapes)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agent_identity.cli.logs import SecretScrubber, configure_logging

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
def test_text_lines_scrub_known_secrets_and_token_shapes() -> None:
    stream = io.StringIO()
    scrubber = configure_logging(stream=stream, secrets=["AKLT-very-secret-key"])
    scrubber.add("late-secret-value")
    log = logging.getLogger("agent_identity.test")
    log.info("key %s token %s", "AKLT-very-secret-key", JWT)
    log.warning("Authorization: Bearer abcdefghijklmnop and sk-scrubber-test-key")
    log.error("callback ?code=xyz123&state=abc and late-secret-value")
    out = stream.getvalue()
    for secret in ("AKLT-very-secret-key", JWT, "abcdefghijklmnop", "sk-scrubber-test-key"):
        assert secret not in out
    assert "xyz123" not in out
    assert "late-secret-value" not in out
    lines = out.splitlines()
    assert len(lines) == 3
    assert " INFO  agent_identity.test: key [REDACTED] token [REDACTED]" in lines[0]
    assert "Bearer [REDACTED]" in lines[1]
    assert "code=[REDACTED]" in lines[2]
    assert "state=abc" in lines[2]  # not a secret: kept for diagnosis


@pytest.mark.usefixtures("restore_root")
def test_json_lines_with_scrubbed_traceback() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, fmt="json", level="debug", secrets=["s3cr3t-value"])
    log = logging.getLogger("agent_identity.test")
    try:
        raise ValueError("bad s3cr3t-value " + JWT)  # noqa: TRY301 - the traceback is the point
    except ValueError:
        log.exception("failed")
    log.debug("debug line")
    entries = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert [e["level"] for e in entries] == ["error", "debug"]
    assert entries[0]["logger"] == "agent_identity.test"
    assert "ValueError" in entries[0]["exc"]
    assert "s3cr3t-value" not in stream.getvalue()
    assert JWT not in stream.getvalue()


def test_short_known_secrets_are_not_scrubbed_by_value() -> None:
    scrubber = SecretScrubber(["abc", "", "abcdef"])
    assert scrubber.scrub("abc abcdef") == "abc [REDACTED]"
