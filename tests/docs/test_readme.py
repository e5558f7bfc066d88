"""README.md is true: its config example validates, its code runs, its commands exist.

The README's examples are extracted here and checked against the real code: every JSON block
is a valid config, the Python block runs against the sandbox, every ``agent-identity …`` line
parses with the real CLI parser, every ``curl`` path is a real endpoint, every script exists,
and the config reference documents exactly the keys the config model accepts.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent_identity.cli.main import build_parser
from agent_identity.config import (
    AuthzConfig,
    IdentityConfig,
    LlmRiskCheckConfig,
    PluginConfig,
    UserPoolConfig,
    parse_plugin_config,
)
from agent_identity.host.command_parser import UsageError, parse_identity_args
from agent_identity.host.tool_specs import TOOL_SPECS
from agent_identity.sandbox import open_sandbox
from agent_identity.sandbox.devconfig import dev_openclaw_json

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
_LOCAL_PATHS = {"/token", "/session", "/status", "/tools", "/metrics"}


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(README) if lang == language]


def _shell_lines() -> list[str]:
    lines: list[str] = []
    for block in _blocks("sh"):
        joined = block.replace("\\\n", " ")
        for raw in joined.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_json_block_is_a_valid_config() -> None:
    blocks = _blocks("json")
    assert blocks
    for block in blocks:
        document = json.loads(block)
        plugin = document["plugins"]["entries"]["agent-identity"]["config"]
        config = parse_plugin_config(plugin)
        assert config.authz.approval_ttl_seconds == 300


def _wire_keys(cls: type[msgspec.Struct]) -> set[str]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.encode_name for field in info.fields}


def test_the_config_reference_documents_exactly_the_accepted_keys() -> None:
    reference = _section("Configuration reference")
    documented = set(re.findall(r"^\| `([A-Za-z]+)`", reference, re.MULTILINE))
    documented |= set(re.findall(r"^### `([a-z]+)`", reference, re.MULTILINE))
    for row in re.findall(r"^\| (`[^|]+`)", reference, re.MULTILINE):
        documented |= set(re.findall(r"`([A-Za-z]+)`", row))
    # llmRiskCheck's own keys are listed inline in its row.
    llm_row = next(line for line in reference.splitlines() if line.startswith("| `llmRiskCheck`"))
    documented |= set(re.findall(r"`([a-zA-Z]+)`", llm_row))
    accepted = (
        _wire_keys(IdentityConfig)
        | _wire_keys(UserPoolConfig)
        | _wire_keys(AuthzConfig)
        | _wire_keys(LlmRiskCheckConfig)
        | _wire_keys(PluginConfig)
    )
    missing = accepted - documented
    assert not missing, f"keys the README does not document: {sorted(missing)}"
    for key in re.findall(r"^\| `([A-Za-z]+)`", reference, re.MULTILINE):
        assert key in accepted, f"the README documents an unknown key {key!r}"


def test_every_agent_identity_command_line_parses() -> None:
    parser = build_parser()
    lines = [line for line in _shell_lines() if line.startswith("agent-identity ")]
    assert len(lines) >= 6
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert getattr(args, "handler", None) is not None, line


def test_scripts_and_curl_paths_exist() -> None:
    for line in _shell_lines():
        word = shlex.split(line)[0]
        if word.startswith("scripts/"):
            script = ROOT / word
            assert script.is_file(), line
            assert script.stat().st_mode & 0o100, f"{word} is not executable"
        if word == "curl":
            url = next(token for token in shlex.split(line) if token.startswith("http://"))
            path = "/" + url.split("/", 3)[3]
            assert path in _LOCAL_PATHS or path.startswith("/tool/identity_"), line


def test_subcommands_and_tools_in_the_tables_exist() -> None:
    table = _section("In the chat")
    for cell in re.findall(r"^\| `([a-z-]+)", table, re.MULTILINE):
        parsed = parse_identity_args(cell)
        unknown = isinstance(parsed, UsageError) and parsed.message.startswith("Unknown")
        assert not unknown, cell
    named = set(re.findall(r"`(identity_[a-z_]+)`", table))
    assert named == {spec.name for spec in TOOL_SPECS}


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_the_python_example_runs(in_tmp: Path) -> None:
    [block] = _blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    async with open_sandbox() as sb:
        document = dev_openclaw_json(
            sb,
            callback_url="http://127.0.0.1:18789/identity/oauth/callback",
            data_dir=in_tmp / "data",
        )
        (in_tmp / "openclaw.json").write_text(json.dumps(document))
        await namespace["gateway"]()
