"""Low-risk tool classification, sensitive paths and the shell parser behind the rules."""

from __future__ import annotations

import pytest

from agent_identity.authz.risk_model import RiskAssessment, is_risk_level, level_rank
from agent_identity.authz.risk_paths import classify_path, normalize_path
from agent_identity.authz.risk_shell import Command, parse_script, placeholder_index
from agent_identity.authz.risk_tools import (
    BUILTIN_LOW_RISK_TOOLS,
    HOST_LOW_RISK_TOOLS,
    PLUGIN_LOW_RISK_TOOLS,
    is_low_risk,
    low_risk_tools,
    normalize_tool_name,
    should_bypass_checks,
)
from agent_identity.authz.risk_vocab import is_critical_target, parse_options, write_targets
from agent_identity.config import AuthzConfig


@pytest.mark.parametrize("tool", sorted(BUILTIN_LOW_RISK_TOOLS))
def test_builtin_low_risk_tools(tool: str) -> None:
    assert is_low_risk(tool)
    assert is_low_risk(tool.upper())


@pytest.mark.parametrize(
    "tool",
    [
        "exec",
        "bash",
        "write",
        "edit",
        "apply_patch",
        "apply-patch",
        "process",
        "browser",
        "message",
        "sessions_send",
        "cron",
        "gateway",
        "nodes",
        "update_plan",
        "tts",
        "identity_login",
        "identity_fetch",
        "identity_get_tip_token",
        "identity_approve_tool",
        "identity_set_binding",
        "code_execution",
    ],
)
def test_tools_that_are_not_low_risk(tool: str) -> None:
    assert not is_low_risk(tool)


def test_the_lists() -> None:
    assert {"read", "web_search", "image", "agents_list"} <= HOST_LOW_RISK_TOOLS
    assert "identity_risk_check" in PLUGIN_LOW_RISK_TOOLS
    assert low_risk_tools() is BUILTIN_LOW_RISK_TOOLS
    assert low_risk_tools(AuthzConfig()) is BUILTIN_LOW_RISK_TOOLS


def test_config_adds_tools_and_bypass_follows_the_flag() -> None:
    authz = AuthzConfig(low_risk_tools=("My_Search", " calendar_read "))
    assert is_low_risk("my_search", authz)
    assert is_low_risk("calendar_read", authz)
    assert not is_low_risk("my_search")
    assert should_bypass_checks("read", authz)
    assert not should_bypass_checks("exec", authz)
    assert not should_bypass_checks("read", AuthzConfig(low_risk_bypass=False))


def test_normalize_tool_name() -> None:
    assert normalize_tool_name(" Bash ") == "exec"
    assert normalize_tool_name("apply-patch") == "apply_patch"
    assert normalize_tool_name("Read") == "read"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("~/.ssh/id_rsa", "credential"),
        ("~/.ssh/id_rsa.pub", "system"),
        ("~/.ssh", "credential"),
        ("$HOME/.aws/credentials", "credential"),
        ("${HOME}/.kube/config", "credential"),
        ("/home/alice/.netrc", "credential"),
        ("/Users/bob/.config/gcloud/creds.json", "credential"),
        ("/root/.bash_history", "credential"),
        ("/etc/shadow", "credential"),
        ("/proc/1/environ", "credential"),
        (".env", "credential"),
        ("app/.env.production", "credential"),
        ("certs/server.key", "credential"),
        ("~/.openclaw/openclaw.json", "credential"),
        ("~/.openclaw/plugins/identity/store.bin", "credential"),
        ("/etc/hosts", "system"),
        ("/ETC/passwd", "system"),
        ("/usr/local/bin/tool", "system"),
        ("/var/lib/docker", "system"),
        ("/proc/sys/kernel/panic", "system"),
        ("/dev/sda", "system"),
        ("~/.bashrc", "system"),
        ("~/.config/systemd/user/x.service", "system"),
        ("repo/.git/hooks/pre-push", "system"),
        ("/tmp/../etc/passwd", "system"),
        ("/System/Library/x", "system"),
        (".env.example", None),
        ("src/app.py", None),
        ("/tmp/build/out.txt", None),
        ("/dev/null", None),
        ("/dev/fd/3", None),
        ("~/.openclaw/workspace/notes.md", None),
        ("", None),
        (".", None),
        ("~", None),
    ],
)
def test_classify_path(path: str, kind: str | None) -> None:
    assert classify_path(path) == kind


def test_normalize_path() -> None:
    assert normalize_path("'/a//b/./c/'") == "/a/b/c"
    assert normalize_path("$HOME/x") == "~/x"
    assert normalize_path("//") == "/"


@pytest.mark.parametrize(
    ("target", "critical"),
    [
        ("/", True),
        ("/*", True),
        ("~", True),
        ("~/", True),
        ("$HOME", True),
        (".", True),
        ("*", True),
        ("./*", True),
        ("/etc", True),
        ("/usr/", True),
        ("$X/", True),
        ("${X}/*", True),
        ("/e*", True),
        ("~/.ssh", True),
        ("$X", False),
        ("build", False),
        ("/tmp/x", False),
        ("/etc/nginx/x.conf", False),
        ("", False),
    ],
)
def test_is_critical_target(target: str, critical: bool) -> None:
    assert is_critical_target(target) is critical


def test_parse_script_structure() -> None:
    script = parse_script('A=1 sudo -u root env X=2 /usr/bin/RM -rf "$(pwd)" 2>/dev/null | tee log')
    [pipeline] = script.pipelines
    rm, tee = pipeline.stages
    assert rm == Command("rm", ("-rf", "__sub0__"), ((">", "/dev/null"),), ("sudo", "env"))
    assert tee.name == "tee"
    assert script.substitutions == ("pwd",)
    assert placeholder_index("x__sub0__y__sub12__") == [0, 12]
    assert script.commands == (rm, tee)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("a; b && c || d & e", ["a", "b", "c", "d", "e"]),
        ("a |\n b", ["a", "b"]),
        ("a \\\n b", ["a"]),
        ("echo '# not a comment' # comment", ["echo"]),
        ("for x in 1 2; do rm $x; done", ["rm"]),
        ("if true; then ls; fi", ["true", "ls"]),
        ("(cd x && make)", ["cd", "make"]),
        ("{ ls; }", ["ls"]),
        ("command -v git", []),
        ("timeout 5 curl x", ["curl"]),
        ("xargs -0 -n 1 rm", ["rm"]),
        ("", []),
        ('echo "unterminated', ["echo"]),
    ],
)
def test_parse_script_commands(text: str, names: list[str]) -> None:
    assert [c.name for c in parse_script(text).commands] == names


def test_options_and_write_targets() -> None:
    options = parse_options(["-rf", "--force=yes", "--", "-x", "a"])
    assert options.short == frozenset("rf")
    assert options.long == frozenset({"force"})
    assert options.positional == ("-x", "a")
    assert write_targets(Command("cp", ("-r", "a", "b", "dest"))) == ["dest"]
    assert write_targets(Command("dd", ("if=x", "of=/dev/sdb"))) == ["/dev/sdb"]
    assert write_targets(Command("curl", ("-o", "out", "--output=o2", "u"))) == ["out", "o2"]
    assert write_targets(Command("unzip", ("x.zip", "-d", "/etc"))) == ["/etc"]
    assert write_targets(Command("sed", ("s/a/b/", "f"))) == []
    assert write_targets(Command("cat", ("f",), (("<", "in"), (">>", "out")))) == ["out"]


def test_levels() -> None:
    assert is_risk_level("high")
    assert not is_risk_level("HIGH")
    assert not is_risk_level(None)
    assert level_rank("low") < level_rank("medium") < level_rank("high")
    assert RiskAssessment(risk="high", reason="x").is_high
    assert not RiskAssessment(risk="medium", reason="x").is_high
