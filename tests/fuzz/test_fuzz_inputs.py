"""Fuzzing every input surface other than the HTTP wire: each answers in its own terms, always.

* **Config**: mutated config text (the realistic ``openclaw.json`` with every secret filled
  in), documents with secrets and secret-looking values in wrong places, arbitrary files:
  a :class:`~agent_identity.config.LoadedConfig` or a :class:`~agent_identity.config.ConfigError`,
  never an other exception, and no error ever shows a piece of a secret.
* **Commands**: ``/identity`` (and ``/id``) with arbitrary text and arbitrary command contexts:
  ``parse_identity_args`` never raises, ``commands.handle`` always replies with text and no
  handler fails internally.
* **Tools**: every tool with arbitrary JSON params (schema-shaped or not) for arbitrary
  sessions: a ``ToolResult`` or a ``ToolError`` that is not ``internal`` (a handler crash).
* **Gateway methods**: ``identity.session.put`` / ``.get`` with arbitrary params, clients and
  predicates, id tokens garbled, huge or validly signed with odd claims: a
  ``GatewayResponse``, never an exception, never a token in an error.
* **OIDC callback**: arbitrary query strings, real and forged states, hostile values: an HTML
  error page with a 4xx (never 500) that echoes nothing unescaped.
* **JWTs**: malformed segments, base64 garbage, lone surrogates, huge tokens and wrong claim
  types through :func:`~agent_identity.authz.tip_claims.decode_tip_claims` and
  :class:`~agent_identity.oidc.IdTokenValidator`: their own error type only, no token text in
  the message.

The system-level properties share one running system (the sandbox, a callback server, a
logged-in main session), started once per module in a thread of its own; Hypothesis drives
it from the test thread through ``trio.from_thread``. Hypothesis runs derandomized with no
example database and bounded example counts.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import pytest
import trio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st

from agent_identity.authz.tip_claims import TipClaims, TipClaimsError, decode_tip_claims
from agent_identity.config import (
    ConfigError,
    LoadedConfig,
    load_config,
    loads_config,
    parse_config_document,
    parse_plugin_config,
)
from agent_identity.config.json5_reader import JsonSyntaxError, parse_json5
from agent_identity.config.redact import redact
from agent_identity.host.caller import caller_for_local
from agent_identity.host.command_parser import UsageError, parse_identity_args
from agent_identity.host.contract import IdentityCommand, to_wire
from agent_identity.host.gateway import GatewayResponse
from agent_identity.host.results import GatewayErrorCode, ReplyPayload, ToolResult
from agent_identity.host.tool_specs import TOOL_SPECS, validate_params
from agent_identity.host.tools import ToolError
from agent_identity.oidc import IdTokenClaims, IdTokenValidator, JwksCache, OidcError
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import (
    DEV_USER,
    DEV_USER_PASSWORD,
    DEV_USER_POOL,
    dev_plugin_config,
)
from agent_identity.system import Identity, open_identity
from agent_identity.transports.callback import CALLBACK_PATH, DeferredApp, serve_callback_app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAIN = "agent:main:main"
T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def attempt(error: type[E], call: Callable[[], T]) -> T | E:
    """``call()``'s result, or the ``error`` it raised (any other exception propagates)."""
    try:
        return call()
    except error as exc:
        return exc


def fuzz(examples: int) -> settings:
    """Reproducible Hypothesis settings with a bounded number of examples."""
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=examples,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# Any text, lone surrogates included (a JSON string or a JS host can carry them).
any_text = st.text(st.characters(exclude_categories=[]), max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([10**400, -(10**400), 2**53, -1, 0])
    | st.floats()
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


# =========================================================================== config

SECRETS_TEXT = (FIXTURES / "openclaw.secrets.json").read_text()
SECRET_KEYS = frozenset({
    "accessKeyId", "secretAccessKey", "sessionToken", "clientSecret", "apiKey", "appSecret",
    "encryptKey", "verificationToken", "botToken",
})  # fmt: skip
#: Values that look like secrets (API keys, AK/SK, tokens) but sit in no secret field.
LOOKALIKES = (
    "sk-live-9f8e7d6c5b4a39281706",
    "AKLTzQ8w3Xv5Nm2Rp7Tb4Hc9",
    "ghp_Zx8Cv7Bn6Mm5Ll4Kk3Jj2Hh1",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
)


def _secret_values(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _secret_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_values(item)


SECRETS_DOCUMENT = parse_json5(SECRETS_TEXT).value
SECRETS = (*_secret_values(SECRETS_DOCUMENT), *LOOKALIKES)


def windows(secret: str, size: int = 5) -> set[str]:
    """Every piece of ``size`` characters of a secret (showing the last 4 is allowed)."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


SECRET_WINDOWS = frozenset().union(*(windows(secret) for secret in SECRETS))


def _keys(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def config_outcome(
    call: Callable[[], LoadedConfig], *, allowed: frozenset[str]
) -> LoadedConfig | ConfigError:
    """A config or a ConfigError; no error shows a piece of a secret outside ``allowed``."""
    result = attempt(ConfigError, call)
    if isinstance(result, ConfigError):
        text = str(result)
        assert result.problems
        leaked = [piece for piece in SECRET_WINDOWS if piece in text and piece not in allowed]
        assert not leaked, f"a piece of a secret is in the error: {leaked}\n{text}"
    return result


def key_text(text: str) -> str:
    """Every key of the document ``text`` (if it parses): pieces of keys may be shown."""
    try:
        return "\n".join(_keys(parse_json5(text).value))
    except JsonSyntaxError:
        return ""


def allowed_pieces(text: str) -> frozenset[str]:
    keys = key_text(text)
    return frozenset(piece for piece in SECRET_WINDOWS if piece in keys)


@st.composite
def mutated_config_text(draw: st.DrawFn) -> str:
    """The realistic ``openclaw.json`` (JSON5) with one to six text mutations."""
    text = SECRETS_TEXT
    pieces = ["", '"', "'", ",", ":", "{", "}", "[", "]", "\n", "//", "/*", "\\", "\\u", "0x",
              "null", "true", "1e999", "NaN", "-", "\x00", "\ud800", " ", "é"]  # fmt: skip
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 3))
        if op == 0:
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif op == 1:
            text = text[:at] + draw(st.sampled_from(pieces) | any_text) + text[at:]
        elif op == 2:
            end = min(len(text), at + draw(st.integers(1, 60)))
            text = text[:end] + text[at:end] + text[end:]
        else:
            text = text[:at] + draw(st.sampled_from(pieces)) + text[at + 1 :]
    return text


@fuzz(300)
@given(mutated_config_text())
@example(SECRETS_TEXT.replace('"Cs4Hn9Wq2Zx7Lv5Kp1Rm8Td3Bj"', '"Cs4Hn9Wq2Zx7Lv5Kp1Rm8Td3Bj'))
@example(SECRETS_TEXT.replace("clientSecret:", "clientSecret"))
@example(SECRETS_TEXT.replace("durationSeconds: 1800", 'durationSeconds: "Wd3Lk8Qz1Xv6Nm4R"'))
def test_mutated_config_text_never_crashes_nor_leaks(text: str) -> None:
    result = config_outcome(lambda: loads_config(text), allowed=allowed_pieces(text))
    event(f"config: {type(result).__name__}")
    if isinstance(result, LoadedConfig):
        json.dumps(redact(result))
        repr(result)


#: Paths (inside the plugin config) of fields of every kind: strings, URLs, numbers, lists.
PLUGIN_PATHS = [
    ("identity", "endpoint"), ("identity", "durationSeconds"), ("identity", "audience"),
    ("identity", "workloadName"), ("identity", "roleTrn"), ("identity", "localServerAllowlist"),
    ("identity", "personalSessionMode"), ("userpool", "discoveryUrl"), ("userpool", "clientId"),
    ("userpool", "callbackUrl"), ("userpool", "scope"), ("authz", "approvalTtlSeconds"),
    ("authz", "lowRiskTools"), ("authz", "llmRiskCheck", "api"),
    ("authz", "llmRiskCheck", "endpoint"), ("authz", "llmRiskCheck", "timeoutMs"),
    ("dataDir",), ("identity",), ("userpool",), ("authz",), ("identity", "accessKeyId"),
    ("userpool", "clientSecret"), ("authz", "llmRiskCheck", "apiKey"),
]  # fmt: skip
secretish = st.sampled_from(SECRETS)
misplaced = (
    secretish
    | secretish.map(lambda s: [s, 1])
    | secretish.map(lambda s: {"value": s})
    | secretish.map(lambda s: f"https://user:{s}@example.com/x")
    | secretish.map(lambda s: f"ftp://{s}")
    | secretish.map(lambda s: f"{s} {s}")
    | json_scalars
)


@st.composite
def misplaced_secret_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The realistic document with secrets (and look-alikes) put where they do not belong."""
    document: dict[str, Any] = json.loads(json.dumps(SECRETS_DOCUMENT))
    plugin = document["plugins"]["entries"]["agent-identity"]["config"]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PLUGIN_PATHS))
        node = plugin
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = draw(misplaced)
    if draw(st.booleans()):  # an unknown key holding a secret
        section = draw(st.sampled_from(["identity", "userpool", "authz"]))
        if isinstance(plugin.get(section), dict):
            plugin[section]["notAKnownKey"] = draw(secretish)
    if draw(st.booleans()):
        document["channels"]["feishu"]["domain"] = draw(misplaced)
    return document


@fuzz(300)
@given(misplaced_secret_documents())
def test_secrets_in_wrong_places_never_reach_an_error(document: dict[str, Any]) -> None:
    text = json.dumps(document, allow_nan=True)
    config_outcome(lambda: loads_config(text), allowed=frozenset())
    config_outcome(lambda: parse_config_document(document), allowed=frozenset())


@fuzz(100)
@given(st.binary(max_size=3000) | st.sampled_from([b"\xef\xbb\xbf{}", b"\xff\xfe{", b"[]" * 5000]))
def test_any_file_loads_or_fails_with_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "openclaw.json"
    path.write_bytes(data)
    config_outcome(lambda: load_config(path), allowed=frozenset())


def test_deeply_nested_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    for text in ("[" * 100_000, "{a:" * 50_000, '"' + "\\u" * 1000):
        config_outcome(partial(loads_config, text), allowed=frozenset())
    config_outcome(lambda: load_config(tmp_path / "missing.json"), allowed=frozenset())
    config_outcome(lambda: load_config(tmp_path), allowed=frozenset())  # a folder


# =========================================================================== a running system


@dataclass
class Running:
    """The system, driven from the test thread (``run`` blocks until the call is done)."""

    sb: Sandbox
    ident: Identity
    browser: httpx.AsyncClient
    token: trio.lowlevel.TrioToken

    def run(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await fn(*args)`` in the system's thread and return its result."""
        return trio.from_thread.run(fn, *args, trio_token=self.token)


class SystemThread:
    """Runs the sandbox, a callback server and a logged-in system in a thread of its own."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._failure: Exception | None = None
        self.running: Running | None = None
        self._thread = threading.Thread(target=self._main, name="fuzz-system", daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("the system did not start")
        if self._failure is not None:
            raise self._failure
        assert self.running is not None
        return self.running

    def __exit__(self, *exc: object) -> None:
        if self.running is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self.running.token)
        self._thread.join(60)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        async with (
            open_sandbox() as sb,
            httpx.AsyncClient(timeout=10) as browser,
            trio.open_nursery() as nursery,
        ):
            late = DeferredApp()
            base = await nursery.start(serve_callback_app, late, "127.0.0.1", 0)
            raw = dev_plugin_config(
                sb,
                callback_url=f"{base}{CALLBACK_PATH}",
                data_dir=self._data_dir,
                overrides={"identity": {"webchatSessionExchange": True}},
            )
            async with open_identity(parse_plugin_config(raw), environ={}) as ident:
                late.app = ident.asgi_app
                assert ident.login_flow is not None
                url = await ident.login_flow.start_login(MAIN)
                page = await submit_login_form(
                    browser, url, username=DEV_USER, password=DEV_USER_PASSWORD
                )
                assert page.status_code == 200, page.text
                self._stop = trio.Event()
                self.running = Running(sb, ident, browser, trio.lowlevel.current_trio_token())
                self._ready.set()
                await self._stop.wait()
            nursery.cancel_scope.cancel()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with SystemThread(tmp_path_factory.mktemp("fuzz-system") / "identity") as running:
        yield running


# =========================================================================== commands

SUBCOMMANDS = [
    "help", "whoami", "login", "status", "logout", "list-tips", "config", "list-credentials",
    "list", "list-roles", "get-role", "fetch", "set", "unset", "approve", "reject", "risk",
    "risk-patterns", "?", "-h", "--help", "WHOAMI", "list_tips", "Risk", "nope", "—help",
]  # fmt: skip
OPTIONS = [
    "--flow=oauth2-user", "--flow apikey", "--flow=bogus", "--redirectUrl=javascript:alert(1)",
    "--redirect-url=https://x.example/cb", "--scopes=a,b c", "--scope", "--use-tip",
    "--show-secrets", "--page=0", "--", "--unknown", "—flow=apikey", "--flow=", "-x",
]  # fmt: skip
ARGUMENTS = [
    "openai", "github", "OPENAI_API_KEY", "1", "0", "-1", "99999999999999999999999", "\"quoted",
    "'single'", "“curly”", "rm -rf /", "$(id)", "`id`", "a\u3000b", "\x00", "x" * 300,
    "<script>", "%s%n", "../../etc/passwd", "\ud800",
]  # fmt: skip

words = st.sampled_from(SUBCOMMANDS) | st.sampled_from(OPTIONS) | st.sampled_from(ARGUMENTS)
command_lines = any_text | st.lists(words | any_text, min_size=1, max_size=6).map(" ".join)


@fuzz(2000)
@given(command_lines | st.text(max_size=5000))
@example("x" * 10_000)
@example('risk "unbalanced')
def test_parse_identity_args_never_raises(text: str) -> None:
    parsed = parse_identity_args(text)
    assert isinstance(parsed, UsageError | IdentityCommand)
    if isinstance(parsed, UsageError):
        assert isinstance(parsed.render(), str)


contexts = st.fixed_dictionaries(
    {},
    optional={
        "senderId": st.sampled_from(["42", "ou_ab12", "", "openclaw-control-ui"]) | any_text,
        "channel": st.sampled_from(["telegram", "feishu", "webchat", "Slack", ""]) | any_text,
        "isAuthorizedSender": st.booleans() | json_scalars,
        "senderIsOwner": st.booleans(),
        "sessionKey": st.sampled_from([MAIN, "main", "agent:main:telegram:direct:42"]) | any_text,
        "gatewayClientScopes": st.lists(any_text, max_size=3) | json_values,
        "messageThreadId": st.integers() | any_text,
        "extraField": json_values,
    },
)


@fuzz(250)
@given(command_lines, contexts, st.sampled_from(["identity", "id", "Identity", "id_", ""]),
       st.booleans())  # fmt: skip
@example("logout", {"senderId": "7", "channel": "telegram", "isAuthorizedSender": True},
         "identity", True)  # fmt: skip
def test_identity_commands_always_reply_with_text(
    system: Running, args: str, ctx: dict[str, Any], word: str, as_body: bool
) -> None:
    context = dict(ctx)
    if as_body:
        context["commandBody"] = f"/{word} {args}"
    else:
        context["args"] = args
    reply = system.run(system.ident.commands.handle, context)
    assert isinstance(reply, ReplyPayload)
    assert isinstance(reply.text, str)
    assert reply.text
    assert "failed. Please try again later" not in reply.text, (args, reply.text)
    event(f"command reply: {'error' if reply.is_error else 'ok'}")
    json.dumps(to_wire(reply))  # JSON-able (a lone surrogate echoed back is the host's to encode)


# =========================================================================== tools

TOOL_NAMES = [spec.name for spec in TOOL_SPECS]
PROVIDERS = ["openai", "github", "volc-sts", "x" * 129, "", "no-such-provider"]


def _value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if kind == "string":
        options = [*schema.get("enum", []), "", "a", "x" * 300, "FOO\n", "$(id)"]
        return st.sampled_from(options) | st.sampled_from(PROVIDERS) | any_text
    if kind == "integer":
        return st.sampled_from([0, 1, 2, -1, 10**6, 10**30, 2.0, 1.5, True]) | st.integers()
    if kind == "boolean":
        return st.booleans() | json_scalars
    if kind == "array":
        return st.lists(any_text | json_scalars, max_size=4)
    if kind == "object":
        return st.dictionaries(any_text, json_values, max_size=4)
    return json_values


@st.composite
def tool_params(draw: st.DrawFn, name: str) -> object:
    """Params for tool ``name``: schema-shaped (right or wrong values, extra keys) or anything."""
    spec = next(spec for spec in TOOL_SPECS if spec.name == name)
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    properties: dict[str, Any] = spec.parameters.get("properties", {})
    params: dict[str, Any] = {}
    for key, schema in properties.items():
        if draw(st.booleans()):
            params[key] = draw(_value_for(schema) | json_scalars)
    if draw(st.integers(0, 5)) == 0:
        params[draw(any_text)] = draw(json_values)
    return params


tool_calls = st.sampled_from(TOOL_NAMES).flatmap(
    lambda name: st.tuples(st.just(name), tool_params(name))
)
sessions = st.none() | st.sampled_from([MAIN, "main", "agent:main:telegram:direct:9"]) | any_text


@fuzz(500)
@given(tool_calls, sessions)
@example(("identity_list_credentials", {"page": 10**30}), None)
@example(("identity_risk_check", {"toolName": "exec", "params": {"command": 5}}), None)
@example(("identity_set_binding", {"provider": "openai", "envVar": "FOO\n"}), None)
def test_every_tool_answers_or_fails_cleanly(
    system: Running, call: tuple[str, object], session: str | None
) -> None:
    name, params = call
    tools = system.ident.tools
    caller = caller_for_local(session, personal_session_mode=False)
    result = attempt(
        ToolError,
        lambda: system.run(lambda: tools.execute_for(caller, name, params, include_hidden=True)),
    )
    event(f"tool outcome: {result.code if isinstance(result, ToolError) else 'ok'}")
    if isinstance(result, ToolError):
        assert result.code != "internal", (name, params, result.message)
        assert isinstance(result.message, str)
        assert result.message
        if result.code == "invalid_params":
            spec = next(spec for spec in TOOL_SPECS if spec.name == name)
            assert validate_params(spec, params)
        return
    assert isinstance(result, ToolResult)
    assert all(isinstance(block.text, str) for block in result.content)
    json.dumps(to_wire(result))


@fuzz(150)
@given(st.sampled_from(TOOL_NAMES) | any_text, json_values, json_values)
def test_tools_with_arbitrary_contexts(
    system: Running, name: str, params: object, ctx: object
) -> None:
    tools = system.ident.tools
    context = ctx if isinstance(ctx, dict) else None
    result = attempt(ToolError, lambda: system.run(tools.execute, name, params, context))
    if isinstance(result, ToolError):
        assert result.code != "internal", (name, params, ctx, result.message)
        return
    assert isinstance(result, ToolResult)


# =========================================================================== gateway methods

PUT = "identity.session.put"
GET = "identity.session.get"
WEBCHAT = {"connect": {"client": {"id": "openclaw-control-ui", "mode": "webchat"}}, "connId": "c1"}


def _raises(connect: object) -> bool:
    raise RuntimeError("the host's predicate broke")


clients = (
    st.just(WEBCHAT)
    | st.none()
    | json_values
    | st.fixed_dictionaries({"connect": st.fixed_dictionaries({"client": st.dictionaries(
        st.sampled_from(["id", "mode", "displayName", "platform"]), json_scalars)})})
)  # fmt: skip
predicates = st.sampled_from([None, lambda connect: True, lambda connect: False, _raises, 5, "yes"])
odd_claims = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.sampled_from([2**31, 253_402_300_799, 253_402_300_800, 10**20, 2**53, 0, -1])
        | st.floats()
        | st.integers(0, 2**40)
        | any_text
        | st.booleans(),
        "iat": st.sampled_from([0, -1, 10**20, 1.5]) | st.floats() | any_text,
        "nbf": json_scalars,
        "aud": json_values,
        "azp": json_values,
        "email": json_values,
        "name": json_values,
        "nonce": json_values,
        "at_hash": json_values,
        "extra": json_values,
    },
)


@dataclass(frozen=True)
class SignedToken:
    """A token the sandbox pool signs, with claims merged over the usual ones."""

    sub: str
    claims: dict[str, Any]


id_tokens = (
    any_text
    | st.sampled_from(
        ["", "a.b.c", "..", "e30.e30.", "x" * 16_385, "e30." * 5000, "\ud800.\udfff.x"]
    )
    | st.builds(
        SignedToken, st.sampled_from(["alice", "bob", "", "x" * 300]) | any_text, odd_claims
    )
)
put_params = st.fixed_dictionaries(
    {"sessionKey": st.sampled_from(["main", MAIN, "agent:main:webchat:x"]) | any_text},
    optional={
        "idToken": id_tokens,
        "refreshToken": st.none() | any_text | st.just("r" * 20_000),
        "senderId": st.none() | any_text | st.sampled_from(["u-1", "x:user:alice", "a" * 500]),
        "channel": st.none() | any_text | st.sampled_from(["Feishu", "webchat", "TELEGRAM"]),
        "unknownField": json_values,
    },
)
get_params = st.fixed_dictionaries(
    {"sessionKey": st.sampled_from(["main", MAIN]) | any_text},
    optional={"senderId": st.none() | any_text, "channel": st.none() | any_text},
)


def _materialise(system: Running, params: object) -> tuple[object, str | None]:
    """Params with any :class:`SignedToken` signed; and the token (to look for in errors)."""
    if not isinstance(params, dict) or not isinstance(params.get("idToken"), SignedToken):
        token = params.get("idToken") if isinstance(params, dict) else None
        return params, token if isinstance(token, str) else None
    wanted: SignedToken = params["idToken"]
    userpool = system.ident.plugin.userpool
    assert userpool is not None
    try:
        token = system.sb.issue_user_token(
            DEV_USER_POOL, wanted.sub, client_id=userpool.client_id, extra_claims=wanted.claims
        )
    except (TypeError, ValueError, OverflowError):
        reject()  # claims even PyJWT will not encode: the validator tests cover them
    return {**params, "idToken": token}, token


#: Claims that leave a token valid but odd: far-off expiry, and anything in the optional ones.
benign_claims = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.sampled_from([2**31, 253_402_300_799]) | st.integers(2**31, 2**34),
        "email": json_values,
        "name": json_values,
        "nonce": json_values,
        "at_hash": json_values,
        "extra": json_values,
    },
)
#: A WebChat client storing a (mostly) valid token: gets past the checks to the store.
good_puts = st.tuples(
    st.just(PUT),
    st.fixed_dictionaries(
        {
            "sessionKey": st.sampled_from(["main", MAIN]),
            "idToken": st.builds(
                SignedToken, st.sampled_from(["alice", "bob", "carol"]) | any_text, benign_claims
            ),
        },
        optional={
            "refreshToken": st.none() | any_text,
            "senderId": st.sampled_from(["u-1", "x:user:alice", "ou_1"]) | any_text,
            "channel": st.sampled_from(["Feishu", "webchat"]) | any_text,
        },
    ),
    st.just(WEBCHAT),
    st.none(),
)
any_calls = st.tuples(
    st.sampled_from([PUT, PUT, PUT, GET]) | any_text,
    put_params | get_params | json_values,
    clients,
    predicates,
)


@fuzz(300)
@given(good_puts | any_calls)
def test_gateway_methods_always_answer(
    system: Running, call: tuple[str, object, object, object]
) -> None:
    method, raw, client, predicate = call
    params, token = _materialise(system, raw)
    methods = system.ident.gateway_methods
    response = system.run(lambda: methods.call(method, params, client, is_webchat=predicate))
    assert isinstance(response, GatewayResponse)
    event(f"gateway: {response.error.code if response.error else 'ok'}")
    wire = json.dumps(to_wire(response), ensure_ascii=False)
    if response.ok:
        assert response.payload is not None
        if method == PUT:
            follow_up(system, response.payload["effectiveSessionKey"])
        return
    assert response.error is not None
    assert response.error.code in {code.value for code in GatewayErrorCode}
    assert response.error.message
    if token is not None and len(token) >= 16:
        assert token not in wire


def follow_up(system: Running, key: str) -> None:
    """A stored session (with whatever claims it had) must not break what reads it later."""
    caller = caller_for_local(key, personal_session_mode=False)
    tools = system.ident.tools

    async def run_tool(name: str) -> ToolResult:
        return await tools.execute_for(caller, name, {}, include_hidden=True)

    for name in ("identity_whoami", "identity_status", "identity_list_tips"):
        result = attempt(ToolError, partial(system.run, run_tool, name))
        assert not isinstance(result, ToolError) or result.code != "internal", (name, key, result)
    reply = system.run(
        system.ident.commands.handle,
        {"args": "whoami", "sessionKey": MAIN, "senderId": "openclaw-control-ui",
         "channel": "webchat", "isAuthorizedSender": True},
    )  # fmt: skip
    assert "failed. Please try again later" not in (reply.text or "")


# =========================================================================== OIDC callback

HOSTILE = [
    "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "&amp;&lt;", "</p><h1>x",
    "javascript:alert(1)", "\x00\x1b[31m", "x" * 9000, "%3Cscript%3E", "\ud800",
]  # fmt: skip
param_values = st.sampled_from(HOSTILE) | any_text
oauth_params = st.lists(
    st.tuples(
        st.sampled_from(["code", "state", "error", "error_description", "error_uri", "iss",
                         "session_state", "x"]) | any_text,
        param_values,
    ),
    max_size=6,
)  # fmt: skip


PAGE_TAGS = frozenset({"html", "head", "meta", "title", "style", "body", "h1", "p"})
PAGE_ATTRIBUTES = frozenset({"lang", "charset", "name", "content", "class"})


class _Markup(HTMLParser):
    """Collects the element and attribute names of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


@dataclass(frozen=True)
class RealState:
    """Stands for the state of a login really started (filled in when the example runs)."""

    extra: tuple[tuple[str, str], ...]


async def _asgi_get(app: Any, query: bytes) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": CALLBACK_PATH, "raw_path": CALLBACK_PATH.encode(),
        "root_path": "", "query_string": query, "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(dict(message))

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], headers, body


def _encode_query(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")


@fuzz(250)
@given(
    st.binary(max_size=400)
    | oauth_params.map(_encode_query)
    | oauth_params.map(lambda pairs: RealState(tuple(pairs)))
)
@example(b"state=%3Cscript%3E&code=x")
@example(b"error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=s")
@example(RealState((("error", "access_denied"), ("error_description", "<b>no</b>"))))
@example(RealState((("code", "<script>"),)))
def test_callback_queries_get_an_escaped_error_page(
    system: Running, query: bytes | RealState
) -> None:
    app = system.ident.asgi_app
    assert app is not None
    if isinstance(query, RealState):
        flow = system.ident.login_flow
        assert flow is not None
        url = system.run(flow.start_login, "agent:main:telegram:direct:31")
        state = dict(parse_qsl(urlsplit(url).query))["state"]
        query = _encode_query([("state", state), *query.extra])
    status, headers, body = system.run(_asgi_get, app, query)
    event(f"callback: {status}")
    assert 400 <= status < 500, (status, query)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert body.startswith(b"<!DOCTYPE html>")
    page = body.decode("utf-8")
    # Nothing from the query comes back as markup: the page has only its own elements and
    # attributes, and no hostile value appears unescaped.
    reader = _Markup()
    reader.feed(page)
    assert reader.tags <= PAGE_TAGS, (query, reader.tags)
    assert reader.attributes <= PAGE_ATTRIBUTES, (query, reader.attributes)
    for value in HOSTILE:
        if "<" in value:
            assert value not in page, (query, value)


# =========================================================================== JWTs


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


claim_values = json_values | st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), 10**400, 1e308, True, [], {}, "", "1700000000"]
)
tip_claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.sampled_from(["alice", ""]) | claim_values,
        "act": st.recursive(
            st.fixed_dictionaries({"sub": st.sampled_from(["agent", ""]) | claim_values}),
            lambda inner: st.fixed_dictionaries({"sub": st.just("agent"), "act": inner}),
            max_leaves=40,
        )
        | claim_values,
        "aud": claim_values,
        "iss": claim_values,
        "iat": claim_values,
        "exp": claim_values,
        "nbf": claim_values,
        "jti": claim_values,
    },
)
segments = st.one_of(
    any_text,
    st.binary(max_size=60).map(b64),
    json_values.map(lambda v: b64(_json_bytes(v))),
    st.sampled_from(["", "=", "e30", "W10", "bnVsbA", "!!!", "%%", "e30=", " e30"]),
)
garbage_tokens = st.one_of(
    any_text,
    st.lists(segments, min_size=1, max_size=5).map(".".join),
    st.tuples(segments, tip_claims.map(lambda c: b64(_json_bytes(c))), segments).map(".".join),
    st.integers(60_000, 70_000).map(lambda n: "e30." + "A" * n + ".x"),
)


HUGE_EXP_TIP = ".".join(
    [b64(b"{}"), b64(b'{"sub":"a","exp":1' + b"0" * 400 + b"}"), "s"]
)  # an exp of 10**400: no float holds it


def _token_free(message: str, token: str) -> None:
    for piece in token.split("."):
        if len(piece) >= 12:
            assert piece not in message, message


TIP_HEADER = b64(b'{"alg":"RS256","typ":"JWT"}')


def _tip(claims: dict[str, Any]) -> str:
    return f"{TIP_HEADER}.{b64(_json_bytes(claims))}.sig"


times = (
    st.integers()
    | st.floats()
    | st.sampled_from([10**400, -(10**400), 1e308, 2**63, True, "1700000000", None])
)
tips = st.one_of(
    garbage_tokens,
    tip_claims.map(_tip),
    tip_claims.map(lambda claims: _tip({**claims, "sub": "alice"})),
    st.fixed_dictionaries(
        {"sub": st.just("alice")},
        optional={"iat": times, "exp": times, "aud": st.lists(any_text) | any_text},
    ).map(_tip),
)


@fuzz(800)
@given(tips)
@example("e30.\ud800.x")
@example(HUGE_EXP_TIP)
def test_tip_claims_decode_or_raise_their_own_error(token: str) -> None:
    claims = attempt(TipClaimsError, lambda: decode_tip_claims(token))
    event(f"tip: {'refused' if isinstance(claims, TipClaimsError) else 'decoded'}")
    if isinstance(claims, TipClaimsError):
        _token_free(str(claims), token)
        assert len(str(claims)) < 200
        return
    assert isinstance(claims, TipClaims)
    assert isinstance(claims.sub, str)
    assert claims.sub
    assert all(isinstance(actor, str) and actor for actor in claims.chain)
    # Every accessor works on whatever was accepted.
    for value in (claims.iat, claims.exp):
        assert value is None or isinstance(value, int)
    shown = (claims.issued_at, claims.expires_at, claims.agent, str(claims.chain))
    assert shown[0] is None or shown[0].tzinfo is not None
    assert claims.is_expired(time.time()) in {True, False}
    remaining = claims.expires_in(time.time())
    assert remaining is None or math.isfinite(remaining)


ISSUER = "https://idp.example"
CLIENT = "client-1"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwks() -> dict[str, Any]:
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    return {
        "keys": [{**rsa_jwk, "kid": "rsa", "use": "sig"}, {**ec_jwk, "kid": "ec", "use": "sig"}]
    }


def sign_raw(header: object, claims: object, *, key: str = "rsa") -> str:
    """A compact JWS over any header and claims (PyJWT would refuse odd ones)."""
    signing_input = f"{b64(_json_bytes(header))}.{b64(_json_bytes(claims))}".encode("ascii")
    if key == "rsa":
        signature = RSA_KEY.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:  # ES256 wants the raw r||s form, which PyJWT's algorithm object produces
        signature = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256).sign(
            signing_input, EC_KEY
        )
    return f"{signing_input.decode('ascii')}.{b64(signature)}"


headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "rs256"]) | claim_values},
    optional={"kid": st.sampled_from(["rsa", "ec", "other"]) | claim_values, "typ": claim_values,
              "crit": claim_values, "b64": claim_values},
)  # fmt: skip
id_claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | claim_values,
        "sub": st.just("alice") | claim_values,
        "aud": st.sampled_from([CLIENT, [CLIENT], [CLIENT, "other"]]) | claim_values,
        "azp": st.just(CLIENT) | claim_values,
        "exp": st.integers(0, 2**34) | claim_values,
        "iat": st.integers(0, 2**34) | claim_values,
        "nbf": claim_values,
        "nonce": st.just("n-1") | claim_values,
        "at_hash": claim_values,
        "email": claim_values,
        "name": claim_values,
    },
)


def _mostly_valid(extra: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": "alice", "aud": CLIENT, "iat": now, "exp": now + 600, **extra}


signed_tokens = st.builds(sign_raw, headers, id_claims, key=st.sampled_from(["rsa", "ec"])) | (
    st.builds(
        lambda claims, kid: sign_raw({"alg": "RS256", "kid": kid}, claims),
        id_claims.map(_mostly_valid),
        st.sampled_from(["rsa", "ec", None]),
    )
)


async def _validate(token: str, nonce: str | None, access_token: str | None) -> IdTokenClaims:
    async def fetch() -> object:
        await trio.lowlevel.checkpoint()
        return _jwks()

    validator = IdTokenValidator(issuer=ISSUER, client_id=CLIENT, keys=JwksCache(fetch))
    return await validator.validate(token, nonce=nonce, access_token=access_token)


@fuzz(500)
@given(
    signed_tokens | garbage_tokens, st.sampled_from([None, "n-1"]), st.sampled_from([None, "at"])
)
@example(sign_raw({"alg": "RS256", "kid": "rsa"},
                  {"iss": ISSUER, "sub": "a", "aud": CLIENT, "exp": float("inf"), "iat": 0}),
         None, None)  # fmt: skip
@example(sign_raw({"alg": "RS256", "kid": "rsa"},
                  {"iss": ISSUER, "sub": "a", "aud": CLIENT, "exp": 10**400, "iat": 0}),
         None, None)  # fmt: skip
@example(sign_raw({"alg": "RS256", "kid": "rsa"},
                  {"iss": ISSUER, "sub": "a", "aud": CLIENT, "exp": 2**40, "iat": float("nan")}),
         None, None)  # fmt: skip
@example("eyJ\ud800.e30.x", None, None)
def test_id_tokens_validate_or_raise_an_oidc_error(
    token: str, nonce: str | None, access_token: str | None
) -> None:
    claims = attempt(OidcError, lambda: trio.run(_validate, token, nonce, access_token))
    event(f"id token: {claims.reason_code if isinstance(claims, OidcError) else 'valid'}")
    if isinstance(claims, OidcError):
        assert claims.reason_code.startswith("id_token_") or claims.reason_code == "jwks_failed"
        _token_free(claims.message, token)
        return
    assert isinstance(claims, IdTokenClaims)
    assert claims.iss == ISSUER
    assert isinstance(claims.sub, str)
    assert claims.sub
    assert CLIENT in claims.aud
    assert isinstance(claims.exp, int)
    assert isinstance(claims.iat, int)
    assert claims.exp > time.time() - 120  # not expired beyond the leeway
    assert nonce is None or claims.nonce == nonce
