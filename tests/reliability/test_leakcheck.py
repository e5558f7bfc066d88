"""The suite-wide secret leak check (``tests/leakcheck.py``) and the sandbox's secret registry.

In-process tests use a private :class:`LeakCheck` fed with made-up secrets the sandbox never
issued, so nothing here trips the session's own check. The end-to-end tests run pytest in a
subprocess on planted leaks of real sandbox tokens and look at its exit status and report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_identity.sandbox.secrets import MIN_SECRET_LENGTH, SecretRegistry

if TYPE_CHECKING:
    import leakcheck
else:
    # The root conftest loads tests/leakcheck.py under this name (tests/ is not a package).
    leakcheck = sys.modules["agent_identity_leakcheck"]

TESTS_DIR = Path(__file__).resolve().parent.parent
SECRET = "made-up-secret-0123456789"
CODE = "made-up-auth-code-0123456789"


# ------------------------------------------------------------------------------ registry


def test_the_registry_records_only_when_on_and_only_long_values() -> None:
    registry = SecretRegistry()
    registry.record(SECRET)
    assert registry.secrets() == ()
    registry.start()
    registry.record(SECRET)
    registry.record(SECRET)
    registry.record("x" * (MIN_SECRET_LENGTH - 1))
    registry.record(None)
    registry.record(CODE, url_borne=True)
    assert registry.secrets() == (SECRET, CODE)
    assert registry.secrets(1) == (CODE,)
    assert registry.is_url_borne(CODE)
    assert not registry.is_url_borne(SECRET)
    registry.stop()
    registry.record("another-made-up-secret")
    assert len(registry.secrets()) == 2


def test_the_registry_is_bounded_and_counts_what_it_drops() -> None:
    registry = SecretRegistry(limit=3)
    registry.start()
    for n in range(5):
        registry.record(f"{SECRET}-{n}")
    assert len(registry.secrets()) == 3
    assert registry.dropped() == 2


def test_the_registry_is_thread_safe() -> None:
    registry = SecretRegistry()
    registry.start()

    def record(worker: int) -> None:
        for n in range(500):
            registry.record(f"{SECRET}-{n % 250}")
            registry.record(f"{SECRET}-{worker}-{n}")

    threads = [threading.Thread(target=record, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry.secrets()) == len(set(registry.secrets())) == 250 + 8 * 500


# ------------------------------------------------------------------------------ index


@given(
    secret=st.text(min_size=MIN_SECRET_LENGTH, max_size=40),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_the_index_finds_a_secret_anywhere(secret: str, before: str, after: str) -> None:
    index = leakcheck.SecretIndex()
    index.add([secret, "a-different-secret-value"])
    assert secret in index.find(before + secret + after)


def test_the_index_finds_many_secrets_and_nothing_else() -> None:
    secrets = [f"eyJhbGciOiJSUzI1NiJ9.{n:04d}.signature-{n}" for n in range(200)]
    index = leakcheck.SecretIndex()
    index.add(secrets)
    assert len(index) == 200
    text = f"a {secrets[7]} b {secrets[150]} c eyJhbGciOiJSUzI1NiJ9.0007.signature-"
    assert index.find(text) == {secrets[7], secrets[150]}
    assert index.find("eyJhbGciOiJSUzI1NiJ9 and nothing else") == set()


def test_the_index_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="shorter"):
        leakcheck.SecretIndex().add(["short"])
    with pytest.raises(ValueError, match="probe width"):
        leakcheck.SecretIndex(min_length=4)


def test_an_excerpt_masks_every_secret_it_shows() -> None:
    inner = SECRET + "-longer"
    text = "x" * 200 + f"token {inner} then {SECRET}\nnext" + "y" * 200
    excerpt = leakcheck.masked_excerpt(text, {SECRET, inner})
    assert SECRET not in excerpt
    assert "made…[32 chars]" in excerpt
    assert excerpt.startswith("…")
    assert excerpt.endswith("…")
    assert "\n" not in excerpt
    assert leakcheck.mask(SECRET) == "made…[25 chars]"


# ------------------------------------------------------------------------------ tap


@pytest.fixture
def private_check() -> leakcheck.LeakCheck:
    secrets = (SECRET, CODE)
    return leakcheck.LeakCheck(lambda since: secrets[since:], lambda value: value == CODE)


def _fail(message: str) -> None:
    raise RuntimeError(message)


def _tapped(check: leakcheck.LeakCheck) -> leakcheck.LogTap:
    tap = leakcheck.LogTap(check.capture)
    tap.install()
    return tap


def test_the_tap_sees_debug_records_that_no_handler_gets(
    private_check: leakcheck.LeakCheck, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("agent_identity.leakcheck_test")
    tap = _tapped(private_check)
    try:
        assert logging.getLogger().level == logging.WARNING  # pytest leaves the root alone
        log.debug("debug %s", SECRET)
        try:
            _fail(f"failed with {SECRET}")
        except RuntimeError:
            log.info("caught", exc_info=True)
        log.warning("a warning without secrets")
        thread = threading.Thread(target=log.debug, args=("in a thread: " + SECRET,))
        thread.start()
        thread.join()
    finally:
        tap.uninstall()
    # Handlers saw only what the levels let through, so caplog is unchanged by the tap.
    assert [r.getMessage() for r in caplog.records] == ["a warning without secrets"]
    private_check.check()
    assert private_check.leak_count == 3
    assert {leak.level for leak in private_check.leaks} == {"DEBUG", "INFO"}
    assert all(SECRET not in str(leak) for leak in private_check.leaks)
    assert any("RuntimeError: failed with made…" in leak.excerpt for leak in private_check.leaks)


def test_logging_disable_still_silences_everything(private_check: leakcheck.LeakCheck) -> None:
    tap = _tapped(private_check)
    logging.disable(logging.CRITICAL)
    try:
        logging.getLogger("agent_identity.leakcheck_test").error("off %s", SECRET)
    finally:
        logging.disable(logging.NOTSET)
        tap.uninstall()
    private_check.check()
    assert private_check.records == 0


def test_codes_are_allowed_in_http_client_lines_only(private_check: leakcheck.LeakCheck) -> None:
    tap = _tapped(private_check)
    try:
        logging.getLogger("httpx").info("HTTP Request: GET /cb?code=%s", CODE)
        logging.getLogger("httpcore.http11").debug("location /cb?code=%s", CODE)
        logging.getLogger("httpx").info("HTTP Request: GET /x?token=%s", SECRET)
        logging.getLogger("agent_identity.transports.callback").debug("callback %s", CODE)
    finally:
        tap.uninstall()
    private_check.check()
    assert [leak.logger for leak in private_check.leaks] == [
        "httpx",
        "agent_identity.transports.callback",
    ]


def test_a_secret_recorded_after_it_was_logged_is_still_found() -> None:
    known: list[str] = []
    check = leakcheck.LeakCheck(lambda since: tuple(known[since:]), lambda _: False)
    tap = _tapped(check)
    try:
        logging.getLogger("agent_identity.leakcheck_test").debug("early %s", SECRET)
    finally:
        tap.uninstall()
    known.append(SECRET)
    check.check()
    assert check.leak_count == 1


# ------------------------------------------------------------------------------ end to end

_PLANTED = """
import json
import logging
import os
import threading

from agent_identity.sandbox.seed import load_seed
from agent_identity.sandbox.tokens import issue_id_token
from agent_identity.sandbox.world import build_state

log = logging.getLogger("agent_identity.planted")


def token():
    state = build_state(load_seed())
    value = issue_id_token(state, state.user_pools["up-dev-0001"], "alice")
    with open(os.environ["ISSUED_FILE"], "a") as issued:
        issued.write(json.dumps(value) + "\\n")
    return value


def test_clean(caplog):
    token()
    log.debug("issued a token for alice")
    assert caplog.records == []  # root at WARNING: the tap changes no handler's view


def test_debug_leak():
    log.debug("the token is %s", token())


def test_exception_leak():
    try:
        raise RuntimeError("refused " + token())
    except RuntimeError:
        log.info("call failed", exc_info=True)


def test_thread_leak():
    value = token()
    thread = threading.Thread(target=log.debug, args=("bg %s", value))
    thread.start()
    thread.join()
"""


def _run_pytest(tmp_path: Path, *args: str) -> tuple[int, str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p leakcheck -p no:cacheprovider\n")
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(_PLANTED))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        "ISSUED_FILE": str(tmp_path / "issued.jsonl"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _issued(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "issued.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_a_planted_leak_fails_the_run_without_showing_the_secret(tmp_path: Path) -> None:
    code, output = _run_pytest(tmp_path)
    assert code == 1, output
    assert "4 passed" in output
    assert "secret leak check" in output
    assert "3 records leak a secret" in output
    for name in ("test_debug_leak", "test_exception_leak", "test_thread_leak"):
        assert f"test_planted.py::{name}: " in output
    assert "test_planted.py::test_clean: " not in output
    assert "RuntimeError: refused eyJh…[" in output
    issued = _issued(tmp_path)
    assert len(issued) == 4
    for token in issued:
        assert token not in output


@pytest.mark.slow
def test_a_clean_run_passes_and_says_what_it_checked(tmp_path: Path) -> None:
    code, output = _run_pytest(tmp_path, "-k", "clean")
    assert code == 0, output
    assert re.search(r"leakcheck: [1-9]\d* log records \(every level\) checked against", output)
    assert ": no leak" in output
    code, output = _run_pytest(tmp_path, "--no-leakcheck")
    assert code == 0, output
    assert "leakcheck" not in output
