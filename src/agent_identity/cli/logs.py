"""Log output of ``serve`` and ``dev``: one line per event, human or JSON, secrets scrubbed.

Modules log with ``logging`` and are written never to put a secret in a message; this is
the second line of defence at the edge. :class:`SecretScrubber` replaces, in the final text
of every record (message, arguments and exception text alike):

* every *known* secret value registered with :meth:`SecretScrubber.add` (the AK/SK, client
  and app secrets of the config, the store key …);
* anything shaped like a JWT (three base64url segments starting ``eyJ``), a bearer or basic
  credential, an OpenAI-style ``sk-…`` key, and ``access_token=…``-style query values.

The human format is ``2026-11-29T08:12:51.123Z INFO  agent_identity.x: message``; the JSON
format is one object per line with ``ts``, ``level``, ``logger``, ``msg`` (and ``exc`` when
there is a traceback).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Final, Literal, TextIO

__all__ = ["LogFormat", "SecretScrubber", "configure_logging"]

LogFormat = Literal["text", "json"]

_REDACTED: Final = "[REDACTED]"
_PATTERNS: Final = (
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"),
    re.compile(
        r"(?i)\b(access_token|refresh_token|id_token|client_secret|code|password|api_key)"
        r"=[^&\s\"']+"
    ),
)
#: Known secrets shorter than this are not scrubbed by value (too likely to hit plain words).
_MIN_SECRET: Final = 6


class SecretScrubber(logging.Filter):
    """A logging filter that rewrites each record's text without secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Register a known secret value (ignored when empty or too short)."""
        if secret and len(secret) >= _MIN_SECRET:
            self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped value replaced."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, _REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(_keep_name, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Freeze the record's message scrubbed (arguments merged first) and its traceback."""
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        record.exc_info = None
        return True


def _keep_name(match: re.Match[str]) -> str:
    # Keep ``access_token=`` / ``Bearer`` so the line still says what was removed.
    text = match.group(0)
    if "=" in text and not text.startswith("eyJ"):
        return text.split("=", 1)[0] + "=" + _REDACTED
    if " " in text:
        return text.split(None, 1)[0] + " " + _REDACTED
    return _REDACTED


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<5} {record.name}: "
            f"{record.getMessage()}"
        )
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    *,
    level: str = "INFO",
    fmt: LogFormat = "text",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> SecretScrubber:
    """Send every log record to ``stream`` (stderr), scrubbed, in the chosen format.

    Replaces the root logger's handlers (the process is ours: ``serve``/``dev``).

    Args:
        level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
        fmt: ``text`` for people, ``json`` for machines.
        stream: Where to write; ``sys.stderr`` when None.
        secrets: Known secret values to scrub.

    Returns:
        The scrubber, to register secrets learnt later.
    """
    scrubber = SecretScrubber(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(scrubber)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # hypercorn's access log would print every callback query string (codes, states).
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    # One line per outbound request is noise at INFO; failures are logged by our clients.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return scrubber
