"""``agent-identity dev`` in-process: what it refuses before anything listens.

A seed that cannot be read, or that lacks what ``dev`` needs, exits 2 with one clear line, and
the temporary folder it made is removed again.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from agent_identity.cli.app import Io
from agent_identity.cli.main import build_parser, main


def _default_seed() -> dict[str, Any]:
    raw = resources.files("agent_identity.sandbox").joinpath("default_seed.json").read_text()
    seed: dict[str, Any] = json.loads(raw)
    return seed


@pytest.fixture
def temp_parent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where ``dev`` makes its temporary folder (tempfile's default parent, redirected).

    A short path under the system's temporary folder: socket paths are limited to about
    100 bytes, which a folder under pytest's ``tmp_path`` can exceed.
    """
    parent = Path(tempfile.mkdtemp(prefix="aid-dev-"))
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    yield parent
    shutil.rmtree(parent)


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_a_seed_file_that_is_not_json_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text("{not json")
    assert main(["dev", "--seed", str(seed)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert str(seed) in err


def test_a_missing_seed_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--seed", str(tmp_path / "nowhere.json")]) == 2
    assert "cannot read the seed" in capsys.readouterr().err


def test_an_invalid_seed_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = _default_seed()
    seed["userPools"][0]["users"][0]["pasword"] = "typo"
    assert main(["dev", "--seed", str(_write(tmp_path / "seed.json", seed))]) == 2
    assert "pasword" in capsys.readouterr().err


def test_a_seed_without_users_exits_2_and_leaves_no_folder(
    tmp_path: Path, temp_parent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = _default_seed()
    seed["userPools"][0]["users"] = []
    assert main(["dev", "--seed", str(_write(tmp_path / "seed.json", seed))]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: the seed cannot be used by agent-identity dev: "
        "user pool 'agent-identity-dev' has no users to log in as\n"
    )
    assert list(temp_parent.iterdir()) == []  # the sandbox started, then everything went


def test_a_seed_without_the_gateway_client_exits_2(
    tmp_path: Path, temp_parent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = _default_seed()
    seed["userPools"][0]["clients"][0]["name"] = "someone-else"
    seed["roleCredentialProviders"] = []  # it names the client; the seed check would object
    assert main(["dev", "--seed", str(_write(tmp_path / "seed.json", seed))]) == 2
    assert "has no client 'openclaw-gateway'" in capsys.readouterr().err
    assert list(temp_parent.iterdir()) == []


def test_a_given_data_dir_is_kept_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = _default_seed()
    seed["userPools"][0]["users"] = []
    data = tmp_path / "kept"
    argv = ["dev", "--seed", str(_write(tmp_path / "seed.json", seed)), "--data-dir", str(data)]
    assert main(argv) == 2
    assert data.is_dir()
    assert data.stat().st_mode & 0o777 == 0o700
    assert "no users" in capsys.readouterr().err


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``dev`` configures logging for its process; give the test run its own back."""
    root, httpx_logger = logging.getLogger(), logging.getLogger("httpx")
    handlers, level, httpx_level = list(root.handlers), root.level, httpx_logger.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    httpx_logger.setLevel(httpx_level)


@pytest.mark.usefixtures("restore_logging")
def test_the_demo_runs_in_the_main_thread_and_stops_by_itself(temp_parent: Path) -> None:
    # In-process, like the console script: trio.run and the signal handlers in this thread.
    args = build_parser().parse_args(["dev", "--demo", "--log-level", "warning"])
    out, err = io.StringIO(), io.StringIO()
    assert args.handler(args, Io(out=out, err=err, environ={})) == 0, out.getvalue()
    transcript = out.getvalue()
    assert transcript.startswith("agent-identity ")  # serve's banner first
    assert "  sandbox  http://127.0.0.1:" in transcript
    assert transcript.endswith("demo: all 10 steps held\n")
    assert "Log in" not in transcript  # no login URL: the server is gone when the demo ends
    assert list(temp_parent.iterdir()) == []


class _Watched(io.StringIO):
    """An output stream that tells another thread when a line has been written."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.seen = threading.Event()

    def write(self, text: str, /) -> int:
        written = super().write(text)
        if self.marker in self.getvalue():
            self.seen.set()
        return written


@pytest.mark.usefixtures("restore_logging")
def test_dev_prints_the_guide_and_stops_on_ctl_shutdown(temp_parent: Path) -> None:
    out, err = _Watched("Stop with Ctrl-C.\n"), io.StringIO()
    codes: list[int] = []

    def operator() -> None:
        # Another terminal: once the guide is out, the operator stops the server.
        if out.seen.wait(60) and out.marker in out.getvalue():
            [folder] = list(temp_parent.iterdir())
            codes.append(main(["ctl", "shutdown", "--data-dir", str(folder)]))

    helper = threading.Thread(target=operator)
    helper.start()
    args = build_parser().parse_args(["dev", "--log-level", "warning"])
    try:
        assert args.handler(args, Io(out=out, err=err, environ={})) == 0, err.getvalue()
    finally:
        out.seen.set()  # never leave the helper waiting
        helper.join()
    assert codes == [0]
    guide = out.getvalue()
    assert "/authorize?" in guide
    assert "  user alice, password alice-password\n" in guide
    assert list(temp_parent.iterdir()) == []
