"""``agent-identity --version`` and ``config check|show``, in process and once as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent_identity import __version__
from agent_identity.cli.config_command import default_config_path
from agent_identity.cli.main import _exit_code, main

ENTRY = "plugins.entries.agent-identity.config"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECRETS = [
    "Fq9Kw2Xz7Lm4Pc8Rv3Tn6Yb",
    "Ek5Hj8Nw2Qe7Ud4Zs1Gx9Vm",
    "Vt3Bp6Cy1Dr8Ff5Gg2Hh7Jk",
    "Oa4Sd9Fg2Hj7Kl1Zx6Cv3Bn",
    "Tg8Mq3Wn6Er1Ty4Ui9Op2As",
    "AKLTq4Xz8Rm2Wn6Pv0Ks3Bh7",
    "Wd3Lk8Qz1Xv6Nm4Rp9Tb2Hc7Jf",
    "Sx2Vb7Nq4Kz9Wm1Lp6Rt3Hd8Gy",
    "Cs4Hn9Wq2Zx7Lv5Kp1Rm8Td3Bj",
    "Lk7Rq2Wz9Xm4Nv1Pb6Hs3Tc8Df",
]


@pytest.fixture
def example_path() -> Path:
    return FIXTURES / "openclaw.example.json"


@pytest.fixture
def secrets_path() -> Path:
    return FIXTURES / "openclaw.secrets.json"


@pytest.fixture(autouse=True)
def _no_ambient_openclaw_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the default config path away from the real ~/.openclaw."""
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    monkeypatch.delenv("OPENCLAW_STATE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_console_script_checks_the_spec_example(example_path: Path) -> None:
    script = Path(sys.executable).with_name("agent-identity")
    assert script.exists(), "the console script is installed next to the interpreter"
    result = subprocess.run(
        [str(script), "config", "check", "--config", str(example_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"ok: {example_path} (openclaw.json, userpool explicit, authz: off, localServer off)\n"
    )
    assert result.stderr == ""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"agent-identity {__version__}\n", "")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "config" in out
    code, out, _ = run(capsys, "config", "check", "--help")
    assert code == 0
    assert "--config FILE" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["config"],
        ["nonsense"],
        ["config", "frobnicate"],
        ["config", "check", "--bogus"],
        ["config", "check", "--config"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "usage:" in err


def test_exit_code_of_a_message_exit() -> None:
    assert _exit_code("bye") == 2
    assert _exit_code(None) == 0
    assert _exit_code(3) == 3


def test_check_spec_example(capsys: pytest.CaptureFixture[str], example_path: Path) -> None:
    assert run(capsys, "config", "check", "--config", str(example_path)) == (
        0,
        f"ok: {example_path} (openclaw.json, userpool explicit, authz: off, localServer off)\n",
        "",
    )


def test_check_summary_of_a_full_config(
    capsys: pytest.CaptureFixture[str], secrets_path: Path
) -> None:
    code, out, err = run(capsys, "config", "check", "-c", str(secrets_path))
    assert (code, err) == (0, "")
    assert out == (
        f"ok: {secrets_path} (openclaw.json, userpool explicit, "
        "authz: toolCheck+requireRiskApproval+enableLlmRiskCheck, localServer on, feishu)\n"
    )


def test_check_standalone_dynamic(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "userpool": {
                "userPoolName": "p",
                "clientName": "c",
                "callbackUrl": "https://g.example/cb",
            }
        },
    )
    code, out, _ = run(capsys, "config", "check", "--config", str(path))
    assert code == 0
    assert out == f"ok: {path} (standalone, userpool dynamic, authz: off, localServer off)\n"


def test_check_without_userpool(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, {"identity": {}})
    _, out, _ = run(capsys, "config", "check", "--config", str(path))
    assert "no userpool (login unavailable)" in out


def test_check_misspelled_key(
    capsys: pytest.CaptureFixture[str], example_path: Path, tmp_path: Path
) -> None:
    text = example_path.read_text().replace('"clientSecret"', '"clientSecrt"')
    path = tmp_path / "openclaw.json"
    path.write_text(text)
    code, out, err = run(capsys, "config", "check", "--config", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {path}: {ENTRY}.userpool.clientSecrt: unknown key 'clientSecrt' "
        "(did you mean 'clientSecret'?)",
        f"error: {path}: {ENTRY}.userpool.clientSecret: missing (required in explicit mode)",
    ]


def test_check_reports_every_error_one_per_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        {
            "identity": {"durationSeconds": -1, "endpoint": "id.example"},
            "authz": {"enableLlmRiskCheck": True, "approvalTtlSeconds": 0},
            "userpool": {"discoveryUrl": "https://u.example", "userPoolName": "p"},
            "localServer": True,
            "identity_": {},
        },
    )
    code, out, err = run(capsys, "config", "check", "--config", str(path))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 6
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    joined = "\n".join(lines)
    for fragment in [
        "identity.durationSeconds: must be a positive integer, got -1",
        "identity.endpoint: must be an http(s) URL",
        "authz.approvalTtlSeconds: must be a positive integer, got 0",
        "identity_: unknown key 'identity_' (did you mean 'identity'?)",
        "userpool: mixes explicit-mode keys",
        "authz.llmRiskCheck: missing (required when enableLlmRiskCheck is true)",
    ]:
        assert fragment in joined


def test_check_local_server_conflict(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(
        tmp_path, {"identity": {"localServerFailOpen": False}, "localServerFailOpen": True}
    )
    code, _, err = run(capsys, "config", "check", "--config", str(path))
    assert code == 2
    assert "localServerFailOpen: conflicts with identity.localServerFailOpen" in err


def test_check_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    assert run(capsys, "config", "check", "--config", str(missing)) == (
        2,
        "",
        f"error: {missing}: file not found\n",
    )


def test_check_bad_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"identity": {\n  "endpoint": "https://x.example",,\n}}')
    code, out, err = run(capsys, "config", "check", "--config", str(path))
    assert (code, out) == (2, "")
    message = "invalid JSON at line 2, column 35: expected a key (a string or a name)"
    assert err == f"error: {path}: {message}\n"


def test_show_is_redacted_json_with_defaults(
    capsys: pytest.CaptureFixture[str], secrets_path: Path
) -> None:
    code, out, err = run(capsys, "config", "show", "--config", str(secrets_path))
    assert (code, err) == (0, "")
    for secret in SECRETS:
        assert secret[:-4] not in out
        assert secret[1:5] not in out
    shown = json.loads(out)
    assert shown["source"] == str(secrets_path)
    assert shown["format"] == "openclaw.json"
    plugin = shown["plugin"]
    assert plugin["identity"]["secretAccessKey"] == "***c7Jf"
    assert plugin["authz"]["approvalTtlSeconds"] == 300
    assert plugin["authz"]["llmRiskCheck"]["timeoutMs"] == 10000
    assert plugin["identity"]["workloadName"] is None
    assert plugin["localServer"] is True
    assert shown["feishu"]["appSecret"] == "***n6Yb"


def test_show_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, {"userpool": {"clientSecret": "Zq8Wv3Xk9Lp2Mn5Rt8Yb4Hc"}})
    code, out, err = run(capsys, "config", "show", "--config", str(path))
    assert (code, out) == (2, "")
    assert "userpool.discoveryUrl: missing (required in explicit mode)" in err
    assert "Zq8Wv3Xk9Lp2" not in err


def test_default_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert default_config_path({}) == home / ".openclaw" / "openclaw.json"
    assert default_config_path({"OPENCLAW_STATE_DIR": "/srv/oc"}) == Path("/srv/oc/openclaw.json")
    assert (
        default_config_path({"OPENCLAW_CONFIG_PATH": "~/x.json", "OPENCLAW_STATE_DIR": "/srv"})
        == home / "x.json"
    )
    assert default_config_path({"OPENCLAW_CONFIG_PATH": " ", "OPENCLAW_STATE_DIR": ""}) == (
        home / ".openclaw" / "openclaw.json"
    )


def test_config_path_from_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    example_path: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(example_path))
    code, out, _ = run(capsys, "config", "check")
    assert code == 0
    assert out.startswith(f"ok: {example_path} ")
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH")
    code, _, err = run(capsys, "config", "show")
    assert code == 2
    assert err == f"error: {tmp_path / 'home' / '.openclaw' / 'openclaw.json'}: file not found\n"


def test_module_entry_point(example_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent_identity.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, f"agent-identity {__version__}\n")
