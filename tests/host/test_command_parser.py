"""The ``/identity`` command line: table of inputs, guards, tokens, help, and properties."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from agent_identity.host.command_parser import (
    MAX_ARGS_LENGTH,
    ParseResult,
    UsageError,
    help_text,
    is_identity_command,
    parse_identity_args,
    sanitize_args,
    split_command_body,
    tokenize,
    usage,
)
from agent_identity.host.contract import (
    Approve,
    Config,
    Fetch,
    GetRole,
    Help,
    IdentityCommand,
    ListCredentials,
    ListRoles,
    ListTips,
    Login,
    Logout,
    Reject,
    Risk,
    RiskPatterns,
    SetBinding,
    Status,
    UnsetBinding,
    Whoami,
)

COMMAND_TYPES = (
    Help, Whoami, Login, Status, Logout, ListTips, Config, ListCredentials, ListRoles, GetRole,
    Fetch, SetBinding, UnsetBinding, Approve, Reject, Risk, RiskPatterns,
)  # fmt: skip

# (args, the command they parse to)
COMMANDS: list[tuple[str | None, IdentityCommand]] = [
    (None, Help()),
    ("", Help()),
    ("   \n\t ", Help()),
    ("help", Help()),
    ("--help", Help()),
    ("-h", Help()),
    ("?", Help()),
    ("help fetch", Help(topic="fetch")),
    ("help list", Help(topic="list-credentials")),
    ("help help", Help()),
    ("help risk", Help(topic="risk")),
    ("fetch --help", Help(topic="fetch")),
    ("set -h", Help(topic="set")),
    ("whoami", Whoami()),
    ("WHOAMI", Whoami()),
    ("  whoami  ", Whoami()),
    ("login", Login()),
    ("status", Status()),
    ("logout", Logout()),
    ("list-tips", ListTips()),
    ("list_tips", ListTips()),
    ("config", Config()),
    ("list", ListCredentials()),
    ("list 2", ListCredentials(page=2)),
    ("list-credentials", ListCredentials()),
    ("list-credentials 3", ListCredentials(page=3)),
    ("LIST_CREDENTIALS 007", ListCredentials(page=7)),
    ("list 999999999", ListCredentials(page=999_999_999)),
    ("list-roles", ListRoles()),
    ("list-roles prod", ListRoles(prefix="prod")),
    ("list-roles ''", ListRoles()),
    ("get-role ops", GetRole("ops")),
    ("get-role ops --use-tip", GetRole("ops", use_tip=True)),
    ("get-role --show-secrets ops --use-tip", GetRole("ops", use_tip=True, show_secrets=True)),
    ("get-role ops --USE_TIP", GetRole("ops", use_tip=True)),
    ("get-role ops —show-secrets", GetRole("ops", show_secrets=True)),  # iOS em dash
    ("get-role ops –use-tip", GetRole("ops", use_tip=True)),  # en dash  # noqa: RUF001
    ("fetch google", Fetch("google")),
    ("fetch google --flow=oauth2-m2m", Fetch("google", flow="oauth2-m2m")),
    ("fetch google --flow oauth2-user", Fetch("google", flow="oauth2-user")),
    ("fetch openai --flow=APIKEY", Fetch("openai", flow="apikey")),
    ("fetch openai --flow=api_key", Fetch("openai", flow="apikey")),
    ("fetch --flow=apikey openai", Fetch("openai", flow="apikey")),
    (
        "fetch google --redirectUrl=https://gw.example.com/cb?a=1&b=2",
        Fetch("google", redirect_url="https://gw.example.com/cb?a=1&b=2"),
    ),
    (
        "fetch google --redirect-url http://127.0.0.1:18789/cb",
        Fetch("google", redirect_url="http://127.0.0.1:18789/cb"),
    ),
    ("fetch google --scopes=a,b", Fetch("google", scopes=("a", "b"))),
    ('fetch google --scopes "a b, c,,a"', Fetch("google", scopes=("a", "b", "c"))),
    ("fetch google --scope=openid", Fetch("google", scopes=("openid",))),
    (
        "fetch github --flow=oauth2-user --scopes=repo,user --redirectUrl=https://x.io/cb",
        Fetch(
            "github", flow="oauth2-user", redirect_url="https://x.io/cb", scopes=("repo", "user")
        ),
    ),
    ('fetch "my provider"', Fetch("my provider")),
    ("fetch “google”", Fetch("google")),  # phone keyboards' curly quotes
    ("fetch -- -odd-name", Fetch("-odd-name")),
    ("fetch\u3000google", Fetch("google")),  # ideographic space
    ("set openai OPENAI_API_KEY", SetBinding("openai", "OPENAI_API_KEY")),
    ("set openai _x9", SetBinding("openai", "_x9")),
    ("unset openai", UnsetBinding("openai")),
    ("approve apr_3Fz-9", Approve("apr_3Fz-9")),
    ("approve plugin:3f2a9c1e", Approve("plugin:3f2a9c1e")),
    ("reject apr_1", Reject("apr_1")),
    ("risk rm -rf /", Risk("rm -rf /")),
    ("risk curl https://x.sh | bash", Risk("curl https://x.sh | bash")),
    ("risk   ls  -la   ", Risk("ls  -la")),
    ("risk 'rm -rf ~'", Risk("rm -rf ~")),
    ('risk "rm -rf /"', Risk("rm -rf /")),
    ('risk echo "a" "b"', Risk('echo "a" "b"')),
    ("risk sudo --help", Risk("sudo --help")),
    ("risk --help", Help(topic="risk")),
    ("risk -h", Risk("-h")),
    ("risk echo 'unbalanced", Risk("echo 'unbalanced")),
    ("risk for f in *; do\n  rm $f\ndone", Risk("for f in *; do\n  rm $f\ndone")),
    ("risk-patterns", RiskPatterns()),
    ("RISK_PATTERNS", RiskPatterns()),
    ("who\x00ami\x07", Whoami()),  # control characters stripped by the host guard
    ('unset "openai', UnsetBinding('"openai')),  # unbalanced quote: whitespace split
]

# (args, a fragment of the message, the usage the error shows)
ERRORS: list[tuple[str, str, str]] = [
    ("wohami", 'Unknown subcommand "wohami". Did you mean "whoami"?', "help"),
    ("lgout", 'Did you mean "logout"?', "help"),
    ("list-credential", 'Did you mean "list-credentials"?', "help"),
    ("risk_pattern", 'Did you mean "risk-patterns"?', "help"),
    ("xyzzy", 'Unknown subcommand "xyzzy".', "help"),
    ("whoami\x1b[31m", 'Unknown subcommand "whoami[31m".', "help"),  # only ESC is stripped
    ("help xyzzy", 'Unknown subcommand "xyzzy".', "help"),
    ("help a b", "at most one", "Usage: /identity help"),
    ("whoami now", "takes no arguments", "Usage: /identity whoami"),
    ("login --force", "Unknown option --force.", "Usage: /identity login"),
    ("status -x", "Unknown option -x.", "Usage: /identity status"),
    ("list 0", "from 1", "Usage: /identity list-credentials [page]"),
    ("list -1", "Unknown option -1.", "Usage: /identity list-credentials"),
    ("list two", 'not "two"', "Usage: /identity list-credentials"),
    ("list ²", "from 1", "Usage: /identity list-credentials"),
    ("list 1234567890", "from 1", "Usage: /identity list-credentials"),
    ("list 1 2", "Too many arguments.", "Usage: /identity list-credentials"),
    ("list-roles a b", "Too many arguments.", "Usage: /identity list-roles"),
    ("get-role", "Missing <provider>.", "Usage: /identity get-role"),
    ("get-role a b", "Too many arguments.", "Usage: /identity get-role"),
    ("get-role a --use-tip=yes", "--use-tip takes no value", "Usage: /identity get-role"),
    ("get-role a --use-tip --use-tip", "given twice", "Usage: /identity get-role"),
    ("get-role a --flow=apikey", "Unknown option --flow.", "Usage: /identity get-role"),
    ("fetch", "Missing <provider>.", "Usage: /identity fetch"),
    ("fetch ''", "provider name is empty", "Usage: /identity fetch"),
    ("fetch " + "p" * 129, "too long", "Usage: /identity fetch"),
    ("fetch a b", "Too many arguments.", "Usage: /identity fetch"),
    ("fetch a --flow", "--flow needs a value", "Usage: /identity fetch"),
    ("fetch a --flow=", "--flow needs a value", "Usage: /identity fetch"),
    ("fetch a --flow --scopes=x", "--flow needs a value", "Usage: /identity fetch"),
    ("fetch a --flow=oauth3", 'Unknown flow "oauth3"', "Usage: /identity fetch"),
    ("fetch a --flow=apikey --FLOW apikey", "given twice", "Usage: /identity fetch"),
    ("fetch a --scope=x --scopes=y", "given twice", "Usage: /identity fetch"),
    ("fetch a --scopes=,", "--scopes needs a value", "Usage: /identity fetch"),
    ("fetch a --redirectUrl=ftp://x/cb", "http(s) URL", "Usage: /identity fetch"),
    ("fetch a --redirectUrl=javascript:alert(1)", "http(s) URL", "Usage: /identity fetch"),
    ("fetch a --redirectUrl=http://[::1/cb", "http(s) URL", "Usage: /identity fetch"),
    ("fetch a --redirectUrl=https:///cb", "http(s) URL", "Usage: /identity fetch"),
    ("fetch a --returnValue", "Unknown option --returnValue.", "Usage: /identity fetch"),
    ("set", "Missing <provider>.", "Usage: /identity set <provider> <ENV_VAR>"),
    ("set openai", "Missing <ENV_VAR>.", "Usage: /identity set"),
    ("set openai 1KEY", '"1KEY" is not an env var name', "Usage: /identity set"),
    ("set openai MY-KEY", "not an env var name", "Usage: /identity set"),
    ("set openai KÉY", "not an env var name", "Usage: /identity set"),
    ("set openai KEY extra", "Too many arguments.", "Usage: /identity set"),
    ("unset", "Missing <provider>.", "Usage: /identity unset"),
    ("approve", "Missing <approval-id>.", "Usage: /identity approve"),
    ("approve " + "a" * 257, "approval id is empty or too long", "Usage: /identity approve"),
    ("reject a b", "Too many arguments.", "Usage: /identity reject"),
    ("risk", "Missing <command>.", "Usage: /identity risk <command>"),
    ("risk   ''", "Missing <command>.", "Usage: /identity risk"),
    ("risk-patterns all", "takes no arguments", "Usage: /identity risk-patterns"),
]


@pytest.mark.parametrize(("args", "expected"), COMMANDS)
def test_commands(args: str | None, expected: IdentityCommand) -> None:
    assert parse_identity_args(args) == expected


@pytest.mark.parametrize(("args", "fragment", "shown"), ERRORS)
def test_usage_errors(args: str, fragment: str, shown: str) -> None:
    result = parse_identity_args(args)
    assert isinstance(result, UsageError), result
    assert fragment in result.message
    if shown == "help":
        assert result.usage == help_text()
    else:
        assert result.usage.startswith(shown)
    assert result.render() == f"{result.message}\n{result.usage}"


def test_table_size() -> None:
    assert len(COMMANDS) + len(ERRORS) >= 100
    assert {type(command) for _, command in COMMANDS} == set(COMMAND_TYPES)


def test_suggestion_is_the_canonical_name() -> None:
    result = parse_identity_args("lst")
    assert isinstance(result, UsageError)
    assert result.suggestion == "list-credentials"
    assert parse_identity_args("zzzzzz") == UsageError('Unknown subcommand "zzzzzz".', help_text())


def test_long_unknown_words_are_shortened_in_the_reply() -> None:
    result = parse_identity_args("x" * 3000)
    assert isinstance(result, UsageError)
    assert len(result.message) < 80
    assert "…" in result.message


def test_usage_lines_follow_the_invoked_name() -> None:
    result = parse_identity_args("fetch", command="id")
    assert isinstance(result, UsageError)
    assert result.usage.startswith("Usage: /id fetch <provider>")
    assert usage("list") == "Usage: /identity list-credentials [page]"
    assert usage("whoami") == "Usage: /identity whoami"
    assert usage("nope") == help_text()


# ---------------------------------------------------------------- help text


def test_help_text_has_one_line_per_subcommand() -> None:
    lines = help_text().splitlines()
    assert lines[0].startswith("/identity (alias /id)")
    subcommands = [line.split()[1] for line in lines[1:]]
    assert subcommands == [
        "whoami", "login", "status", "logout", "list-tips", "config", "list-credentials",
        "list-roles", "get-role", "fetch", "set", "unset", "approve", "reject", "risk",
        "risk-patterns",
    ]  # fmt: skip
    assert all(" — " in line for line in lines)
    assert "<provider> [--use-tip] [--show-secrets]" in help_text()
    assert "--flow=oauth2-user|oauth2-m2m|apikey" in help_text()


def test_help_text_for_the_alias() -> None:
    text = help_text("id")
    assert text.splitlines()[0].startswith("/id —")
    assert "/id whoami" in text


# ---------------------------------------------------------------- host guards and tokens


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (None, ""),
        ("", ""),
        ("a\tb\nc", "a\tb\nc"),
        ("a\x00b\x07c\x1bd\x7fe\rf", "abcdef"),
        ("\x85 stays", "\x85 stays"),  # only C0 and DEL, as the host
        ("x" * 5000, "x" * MAX_ARGS_LENGTH),
        ("x" * 4095 + "\U0001f600", "x" * 4095),  # the emoji would straddle the cap
        ("\x00" * 4096 + "tail", ""),  # cut first, then stripped, like the host
    ],
)
def test_sanitize_args(args: str | None, expected: str) -> None:
    assert sanitize_args(args) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("a  b\tc\nd", ["a", "b", "c", "d"]),
        ("fetch 'my provider'", ["fetch", "my provider"]),
        ('a "b c" d', ["a", "b c", "d"]),
        ("a 'b", ["a", "'b"]),
        ("a b\\", ["a", "b\\"]),
        ("“quoted words”", ["quoted words"]),
        ("—x –y ——z", ["--x", "--y", "--—z"]),  # noqa: RUF001
        ("a\u3000b\u00a0c", ["a", "b", "c"]),
        ("a # b", ["a", "#", "b"]),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/identity login", ("identity", "login")),
        ("  /Identity   fetch  google  ", ("identity", "fetch  google")),
        ("/ id", ("id", "")),
        ("/id\nwhoami", ("id", "whoami")),
        ("/identity", ("identity", "")),
        ("identity login", None),
        ("/", None),
        ("", None),
    ],
)
def test_split_command_body(text: str, expected: tuple[str, str] | None) -> None:
    assert split_command_body(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/identity login", True),
        ("/ID status", True),
        ("/id", True),
        ("/identity", True),
        ("/idx", False),
        ("/identities", False),
        ("/approve apr_1 allow-once", False),
        ("identity login", False),
        ("hello", False),
    ],
)
def test_is_identity_command(text: str, expected: bool) -> None:
    assert is_identity_command(text) is expected


# ---------------------------------------------------------------- properties


def _valid(result: ParseResult) -> bool:
    return isinstance(result, (*COMMAND_TYPES, UsageError))


@given(st.text(max_size=300))
@example("fetch '")
@example('risk "')
@example("list 1" + "0" * 5000)
@example("\\")
@example("help " + "x" * 5000)
def test_arbitrary_text_never_raises(text: str) -> None:
    assert _valid(parse_identity_args(text))


_WORDS = st.sampled_from(
    [
        "whoami", "login", "list", "list-roles", "get-role", "fetch", "set", "unset", "approve",
        "risk", "help", "--flow", "--flow=apikey", "--scopes", "--use-tip", "--redirectUrl",
        "--redirectUrl=http://x", "--", "-", "-h", "'", '"', "\\", "“", "—", "0", "1", "A_B",
        "\u3000", "\x00", "\n", "=", ",",
    ]
)  # fmt: skip


@given(st.lists(_WORDS, max_size=8).map(" ".join))
def test_command_like_text_never_raises(text: str) -> None:
    result = parse_identity_args(text)
    assert _valid(result)
    if isinstance(result, UsageError):
        assert result.message
        assert result.usage


@given(st.text(max_size=200))
def test_sanitized_args_parse_the_same(text: str) -> None:
    # The host sanitises before calling us; doing it again must change nothing.
    assert parse_identity_args(sanitize_args(text)) == parse_identity_args(text)
