"""Suite-wide secret leak check: no value the sandbox issued may appear in any log record.

Loaded for every test by the repository's root ``conftest.py``. For the whole session it

* turns on :mod:`agent_identity.sandbox.secrets`, so every token, key, password and credential
  the sandbox issues or holds is recorded;
* taps :mod:`logging` so that *every* record of every logger, at every level down to DEBUG, is
  seen, formatted (message, exception text, stack) and buffered, without changing the levels
  or what any handler (``caplog`` included) receives;
* after each test (and once more at the end, for records logged between tests) searches the
  buffered texts for every recorded secret;
* fails the run (exit status 1) when one is found, listing the test, the logger and a masked
  excerpt in a "secret leak check" section; the secret itself is never printed in full.

Authorization codes are the one exception: they travel in the redirect URLs of the user's
browser by design, and the HTTP client that plays the browser in the tests logs those URLs
(``httpx`` at INFO, ``httpcore`` at DEBUG), so a code is allowed in the records of those two
libraries and nowhere else (our callback, for one, must never log it).

``--no-leakcheck`` turns it off. The cost, measured on the whole suite (about 60,000 records,
most of them DEBUG lines no handler would have received, against about 1,600 secrets): under a
second of CPU in a run of three to four minutes; a DEBUG call below the level costs about 8 µs
instead of 0.2 µs, and the search about 2 µs per record.

Why a tap rather than a handler on the root logger: a handler only sees records that pass the
loggers' levels, and the root logger is at WARNING, so DEBUG lines would go unchecked; lowering
the root level for the whole run would instead change what ``caplog`` and the "Captured log"
sections hold. The tap wraps two methods of :class:`logging.Logger`: ``isEnabledFor`` answers
yes (unless ``logging.disable`` is in force), so records are made at every level; ``handle``
hands each record to the check first, then passes on only those the real levels let through.
Call sites, record locations and handler output are unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Final

import pytest

from agent_identity.sandbox.secrets import (
    MIN_SECRET_LENGTH,
    dropped_secrets,
    is_url_borne,
    issued_secrets,
    start_recording,
    stop_recording,
)

__all__ = ["Leak", "LeakCheck", "LogTap", "SecretIndex", "mask", "masked_excerpt"]

#: Where records logged outside any test's run are attributed.
OUTSIDE_TESTS: Final = "<outside any test>"
#: How many leaks are listed in full in the summary (all are counted).
_SHOWN: Final = 20
#: Loggers of the HTTP client libraries. In tests they also log the requests of the client
#: that plays the user's browser, whose redirect URLs carry authorization codes by design.
_HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpcore")
#: Characters of context kept on each side of a leak in the excerpt.
_CONTEXT: Final = 50
_KEY: Final = pytest.StashKey["LeakCheck"]()
_TAP_KEY: Final = pytest.StashKey["LogTap"]()


def mask(secret: str) -> str:
    """Show enough of a secret to recognise its kind, never the value: ``eyJh…[812 chars]``."""
    return f"{secret[:4]}…[{len(secret)} chars]"


def masked_excerpt(text: str, found: Iterable[str]) -> str:
    """The text around the first leak, every leaked secret in it replaced by its mask.

    Args:
        text: The log text.
        found: The secrets found in it.

    Returns:
        At most ``_CONTEXT`` characters either side of the first masked secret, one line.
    """
    masked = text
    # Longest first: a secret that contains another is masked whole, not half.
    for secret in sorted(found, key=len, reverse=True):
        masked = masked.replace(secret, mask(secret))
    first = min((masked.find(mask(s)) for s in found if mask(s) in masked), default=0)
    start = max(first - _CONTEXT, 0)
    end = first + _CONTEXT + 24
    excerpt = masked[start:end].replace("\n", "\\n")
    return ("…" if start else "") + excerpt + ("…" if end < len(masked) else "")


class SecretIndex:
    """Finds which of many secrets occur in a text, in time linear in the text.

    Testing each of thousands of secrets against each of a hundred thousand log lines would
    take minutes. Instead each secret is indexed under the ``gram``-character substrings at
    its last ``step`` offsets, and a text is probed only at every ``step``-th position: any
    occurrence of a secret at least ``gram + step - 1`` long covers one probed window that
    is one of those indexed substrings. Candidates are then confirmed with ``in``. Tail
    substrings are used because secrets of one kind share their head (every JWT starts with
    ``eyJhbGci``) but not their random tail.

    Args:
        min_length: The shortest secret that will be added.
        gram: The probe width.
    """

    def __init__(self, min_length: int = MIN_SECRET_LENGTH, gram: int = 8) -> None:
        if min_length < gram:
            raise ValueError(f"min_length {min_length} is shorter than the probe width {gram}")
        self._gram = gram
        self._step = min_length - gram + 1
        self._min_length = min_length
        self._windows: dict[str, list[str]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, secrets: Iterable[str]) -> None:
        """Index more secrets (each must be at least ``min_length`` long).

        Raises:
            ValueError: A secret is too short to be found reliably.
        """
        gram, step = self._gram, self._step
        for secret in secrets:
            if len(secret) < self._min_length:
                raise ValueError(f"a secret shorter than {self._min_length} characters")
            last = len(secret) - gram
            for offset in {last - o for o in range(step)}:
                self._windows.setdefault(secret[offset : offset + gram], []).append(secret)
            self._count += 1

    def find(self, text: str) -> set[str]:
        """The indexed secrets that occur in ``text``."""
        found: set[str] = set()
        windows, gram = self._windows, self._gram
        for i in range(0, len(text) - gram + 1, self._step):
            candidates = windows.get(text[i : i + gram])
            if candidates:
                found.update(s for s in candidates if s not in found and s in text)
        return found


Sink = Callable[[logging.LogRecord], None]
_IsEnabledFor = Callable[[logging.Logger, int], bool]
_Handle = Callable[[logging.Logger, logging.LogRecord], None]


class LogTap:
    """Shows every log record to a sink, at every level, leaving handlers' view unchanged.

    Args:
        sink: Called with each record, in the thread that logged it, before any handler.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._saved: tuple[_IsEnabledFor, _Handle] | None = None

    def install(self) -> None:
        """Wrap ``Logger.isEnabledFor`` and ``Logger.handle`` (idempotent)."""
        if self._saved is not None:
            return
        real_enabled: _IsEnabledFor = logging.Logger.isEnabledFor
        real_handle: _Handle = logging.Logger.handle
        sink = self._sink

        def is_enabled_for(logger: logging.Logger, level: int) -> bool:
            # Every level counts, so DEBUG lines are made and checked; a disabled logger and
            # logging.disable() still silence everything (caplog.set_level relies on seeing it).
            return not logger.disabled and logger.manager.disable < level

        def handle(logger: logging.Logger, record: logging.LogRecord) -> None:
            sink(record)
            # Handlers get only what the real levels let through: caplog, the "Captured log"
            # sections and any stream handler see exactly what they would without the tap.
            if real_enabled(logger, record.levelno):
                real_handle(logger, record)

        self._saved = (real_enabled, real_handle)
        _patch(is_enabled_for, handle)

    def uninstall(self) -> None:
        """Put the real methods back."""
        if self._saved is None:
            return
        _patch(*self._saved)
        self._saved = None


def _patch(is_enabled_for: _IsEnabledFor, handle: _Handle) -> None:
    # typeshed types these as methods; a plain function assigned to the class is one.
    logging.Logger.isEnabledFor = is_enabled_for  # type: ignore[method-assign, assignment]
    logging.Logger.handle = handle  # type: ignore[method-assign, assignment]


def record_text(record: logging.LogRecord) -> str:
    """Everything a formatter could print of a record: message, exception text and stack."""
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format must still be checked, not crash logging
        text = f"{record.msg!r} % {record.args!r}"
    if record.exc_text:
        text += "\n" + record.exc_text
    elif record.exc_info and record.exc_info[0] is not None:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        text += "\n" + record.stack_info
    return text


@dataclass(frozen=True, slots=True)
class Leak:
    """One log record that contained a secret."""

    where: str
    logger: str
    level: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {self.level} {self.logger}: {self.excerpt}"


class LeakCheck:
    """Buffers log texts and checks them against the sandbox's secrets.

    Args:
        secrets: Returns the secrets recorded after the first ``n`` (the registry's reader).
        url_borne: Whether a secret travels in redirect URLs by design; such a secret is
            allowed in the HTTP client libraries' records and nowhere else.
    """

    def __init__(
        self,
        secrets: Callable[[int], tuple[str, ...]] = issued_secrets,
        url_borne: Callable[[str], bool] = is_url_borne,
    ) -> None:
        self._secrets = secrets
        self._url_borne = url_borne
        self._index = SecretIndex()
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, str, str, str]] = []
        self.where = OUTSIDE_TESTS
        self.records = 0
        self.leak_count = 0
        self.leaks: list[Leak] = []
        self.seconds = 0.0

    @property
    def secrets_known(self) -> int:
        """How many secrets the index holds."""
        return len(self._index)

    def capture(self, record: logging.LogRecord) -> None:
        """Buffer one record's text (called by the tap, in any thread)."""
        started = time.perf_counter()
        entry = (self.where, record.name, record.levelname, record_text(record))
        with self._lock:
            self._buffer.append(entry)
            self.records += 1
            self.seconds += time.perf_counter() - started

    def check(self) -> None:
        """Search every buffered text for every secret recorded so far, then empty the buffer.

        Run at the end of each test rather than as each record arrives, so a secret the
        sandbox records a moment after it was logged (within the same test) is still found.
        """
        started = time.perf_counter()
        with self._lock:
            buffered, self._buffer = self._buffer, []
        self._index.add(self._secrets(len(self._index)))
        for where, logger, level, text in buffered:
            found = self._index.find(text)
            if found and logger.partition(".")[0] in _HTTP_CLIENT_LOGGERS:
                found = {s for s in found if not self._url_borne(s)}
            if found:
                self.leak_count += 1
                if len(self.leaks) < _SHOWN:
                    self.leaks.append(Leak(where, logger, level, masked_excerpt(text, found)))
        with self._lock:
            self.seconds += time.perf_counter() - started


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--no-leakcheck``."""
    parser.addoption(
        "--no-leakcheck",
        action="store_true",
        help="do not check log records for the secrets the sandbox issued",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start recording secrets and tapping logging, before any test module is imported."""
    if config.getoption("no_leakcheck"):
        return
    check = LeakCheck()
    tap = LogTap(check.capture)
    config.stash[_KEY] = check
    config.stash[_TAP_KEY] = tap
    start_recording()
    tap.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo the tap (an in-process run must leave logging as it found it)."""
    tap = config.stash.get(_TAP_KEY, None)
    if tap is not None:
        tap.uninstall()
        stop_recording()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Attribute the records of a test's setup, call and teardown to it; check them after."""
    check = item.config.stash.get(_KEY, None)
    if check is None:
        return (yield)
    check.where = item.nodeid
    try:
        return (yield)
    finally:
        check.where = OUTSIDE_TESTS
        check.check()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Check what was logged outside tests; make a leak (or an overfull registry) fail the run."""
    check = session.config.stash.get(_KEY, None)
    if check is None:
        return
    check.check()
    if (check.leak_count or dropped_secrets()) and session.exitstatus in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say what was checked and list the leaks (masked)."""
    check = terminalreporter.config.stash.get(_KEY, None)
    if check is None:
        return
    dropped = dropped_secrets()
    stats = (
        f"{check.records} log records (every level) checked against {check.secrets_known} "
        f"sandbox secrets in {check.seconds:.2f} s"
    )
    if not check.leak_count and not dropped:
        terminalreporter.write_line(f"leakcheck: {stats}: no leak")
        return
    terminalreporter.write_sep("=", "secret leak check", red=True, bold=True)
    terminalreporter.write_line(f"leakcheck: {stats}: {check.leak_count} records leak a secret")
    for leak in check.leaks:
        terminalreporter.write_line(f"  {leak}")
    if check.leak_count > len(check.leaks):
        terminalreporter.write_line(f"  … and {check.leak_count - len(check.leaks)} more")
    if dropped:
        terminalreporter.write_line(
            f"leakcheck: the secret registry was full; {dropped} secrets were not checked "
            "(raise agent_identity.sandbox.secrets.MAX_SECRETS)"
        )
