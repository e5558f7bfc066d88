"""``agent-identity dev`` as a process: another seed, a failing demo, the temporary folder.

Each test runs the real command (sandbox, server, sockets) in a subprocess: ``dev`` owns its
process's ``trio.run`` and signal handling, like ``serve``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import pytest
import trio

CLI = [sys.executable, "-m", "agent_identity.cli"]
#: Generous, for a loaded 2-core machine; each run takes a few seconds at most.
TIMEOUT = 60


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: socket paths are limited to about 100 bytes, which a
    folder under pytest's ``tmp_path`` can exceed (long test names, long user names)."""
    folder = Path(tempfile.mkdtemp(prefix="aid-dev-"))
    yield folder
    shutil.rmtree(folder)


def _environ(parent: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["HOME"] = str(parent / "home")
    env["TMPDIR"] = str(parent)  # where dev makes its temporary folder
    return env


def _seed_text() -> str:
    return resources.files("agent_identity.sandbox").joinpath("default_seed.json").read_text()


def _dev_folders(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith("agent-identity-dev-")]


def _write_seed(parent: Path, text: str) -> Path:
    path = parent / "seed.json"
    path.write_text(text)
    return path


async def _demo(parent: Path, seed: str) -> tuple[int, str]:
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            [*CLI, "dev", "--demo", "--seed", str(_write_seed(parent, seed))],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=_environ(parent),
        )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


@asynccontextmanager
async def _running_dev(parent: Path, *extra: str) -> AsyncIterator[str]:
    """``dev`` until its guide is printed (yielded); then SIGTERM, which must exit 0."""
    proc = await trio.lowlevel.open_process(
        [*CLI, "dev", "--log-level", "warning", *extra],
        stdout=subprocess.PIPE,
        env=_environ(parent),
    )
    assert proc.stdout is not None
    try:
        with trio.fail_after(TIMEOUT):
            buffer = b""
            while b"Stop with Ctrl-C." not in buffer:
                chunk = await proc.stdout.receive_some()
                assert chunk, buffer.decode()
                buffer += chunk
            yield buffer.decode()
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await proc.wait()
        await proc.stdout.aclose()


async def test_another_seed_brings_its_own_user(short_tmp: Path) -> None:
    # Carol instead of Alice, everywhere (users, policies): the guide names the seed's user.
    seed = _write_seed(short_tmp, _seed_text().replace("alice", "carol"))
    async with _running_dev(short_tmp, "--seed", str(seed)) as guide:
        assert "  user carol, password carol-password" in guide.splitlines()
        assert "alice" not in guide


async def test_a_step_that_does_not_hold_fails_the_demo(short_tmp: Path) -> None:
    seed = json.loads(_seed_text())
    seed["credentialProviders"] = [p for p in seed["credentialProviders"] if p["name"] != "openai"]
    code, out = await _demo(short_tmp, json.dumps(seed))
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.startswith(("✓", "✗"))]
    assert [line[:1] for line in lines] == ["✓", "✓", "✓", "✗"]
    assert lines[-1].startswith("✗ API key (the reply was ")
    assert "demo: step 4 of 10 failed; the rest were skipped" in out
    assert "(providers: demo-m2m, demo-oauth, demo-role)" in out  # no openai in this seed
    assert _dev_folders(short_tmp) == []  # stopped and cleaned up all the same


async def test_the_temporary_folder_lives_as_long_as_the_server(short_tmp: Path) -> None:
    async with _running_dev(short_tmp) as guide:
        [folder] = _dev_folders(short_tmp)
        assert f"  data     {folder} " in guide
        assert folder.stat().st_mode & 0o777 == 0o700
        assert (folder / "identity.sock").is_socket()
        assert (folder / "openclaw.json").stat().st_mode & 0o777 == 0o600
    assert _dev_folders(short_tmp) == []
