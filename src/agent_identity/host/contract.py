"""The OpenClaw host contract: shared base, ``/identity`` command vocabulary, gateway inputs.

The contract is split over three modules of msgspec Structs and plain values: what the host
hands in (:mod:`~agent_identity.host.events`: hook events and contexts, the command and tool
factory contexts), what agent-identity hands back (:mod:`~agent_identity.host.results`:
hook results, replies, tool results, gateway responses), and here the base they share, the
typed ``/identity`` commands that :mod:`~agent_identity.host.command_parser` produces and the
wiring layer executes, and the gateway method inputs. Structs mirror the host's TypeScript
names: Python fields are snake_case, the wire is camelCase (``rename="camel"``), and the JS
keyword ``from`` is the field ``from_``.

Three rules hold for every Struct:

* **Lenient to unknown fields.** Hosts add fields release after release (host contract,
  section 0), so an unknown key is ignored, never an error.
* **Optional means ``None``.** Every field the host marks optional defaults to ``None``, and
  :func:`to_wire` (like ``msgspec.json.encode``) omits fields still at their default, so a
  result never carries ``"blockReason": null`` the host would have to special-case.
* **Decoding never raises on bad input.** :func:`decode_as` returns a :class:`PayloadError`
  value; the wiring layer decides whether that fails open or closed (``before_tool_call``
  must fail closed, host contract 2.1).

Nothing here does I/O or knows about actors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from agent_identity.host.session_keys import MAX_SENDER_ID_LENGTH

__all__ = [
    "COMMAND_ALIAS",
    "COMMAND_NAME",
    "COMMAND_NAMES",
    "CREDENTIAL_FLOWS",
    "SESSION_GET_METHOD",
    "SESSION_PUT_METHOD",
    "WEBCHAT_CLIENT_ID",
    "WEBCHAT_CLIENT_MODE",
    "Approve",
    "Config",
    "ConnectParams",
    "CredentialFlow",
    "Fetch",
    "GatewayClient",
    "GatewayClientInfo",
    "GatewayRequest",
    "GetRole",
    "Help",
    "IdentityCommand",
    "ListCredentials",
    "ListRoles",
    "ListTips",
    "Login",
    "Logout",
    "PayloadError",
    "Reject",
    "Risk",
    "RiskPatterns",
    "SessionGetParams",
    "SessionPutParams",
    "SetBinding",
    "Status",
    "UnsetBinding",
    "Whoami",
    "WireStruct",
    "decode_as",
    "is_webchat_connect",
    "to_wire",
    "truncate_utf16",
    "utf16_len",
]

#: The plugin's slash command, ``/identity``.
COMMAND_NAME: Final = "identity"
#: Its alias, ``/id``.
COMMAND_ALIAS: Final = "id"
COMMAND_NAMES: Final = (COMMAND_NAME, COMMAND_ALIAS)
CredentialFlow = Literal["oauth2-user", "oauth2-m2m", "apikey"]
#: Flows of ``/identity fetch --flow`` and ``identity_fetch``; inferred when omitted.
CREDENTIAL_FLOWS: Final[tuple[CredentialFlow, ...]] = ("oauth2-user", "oauth2-m2m", "apikey")
#: Gateway WebSocket method that stores a WebChat user's id token (plugin README).
SESSION_PUT_METHOD: Final = "identity.session.put"
#: Gateway WebSocket method that returns a WebChat user's stored token (plugin README).
SESSION_GET_METHOD: Final = "identity.session.get"
#: ``connect.client.mode`` of a WebChat client, after normalisation (host contract, section 6).
WEBCHAT_CLIENT_MODE: Final = "webchat"
#: ``connect.client.id`` that marks a WebChat client whatever its mode.
WEBCHAT_CLIENT_ID: Final = "webchat-ui"

_S = TypeVar("_S", bound=msgspec.Struct)

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
SenderId = Annotated[str, msgspec.Meta(max_length=MAX_SENDER_ID_LENGTH)]


class WireStruct(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Base of every contract Struct: immutable, camelCase on the wire, defaults omitted."""


@dataclass(frozen=True, slots=True)
class PayloadError:
    """A host payload that does not have the expected shape.

    Attributes:
        kind: What was being decoded: a hook name (``before_tool_call``) or a Struct name.
        message: msgspec's description, with the JSON path of the offending value, e.g.
            ``Expected `str`, got `int` - at `$.sessionKey```.
    """

    kind: str
    message: str

    def __str__(self) -> str:
        return f"invalid {self.kind} payload: {self.message}"


def decode_as(cls: type[_S], obj: object, *, kind: str | None = None) -> _S | PayloadError:
    """Turn a host payload into ``cls``.

    ``obj`` may be a mapping with camelCase keys (JSON from the host), an instance of ``cls``
    (returned as is), another Struct or any object with matching attributes (snake_case or
    camelCase names both work). Conversion is lax (``strict=False``): a number sent as the
    string ``"42"`` is accepted where an ``int`` is expected, as a JSON-over-the-wire host may
    stringify it.

    Args:
        cls: The Struct to produce.
        obj: The payload.
        kind: Name to report in the error (defaults to the Struct's name).

    Returns:
        The decoded Struct, or a :class:`PayloadError` describing the first problem.
    """
    if isinstance(obj, cls):
        return obj
    try:
        return msgspec.convert(obj, cls, strict=False, from_attributes=True)
    except msgspec.ValidationError as exc:
        return PayloadError(kind or cls.__name__, str(exc))


def to_wire(value: msgspec.Struct) -> dict[str, Any]:
    """A Struct as the JSON-ready mapping the host expects.

    Keys are camelCase, fields still at their default (``None`` for every optional field) are
    left out, and values inside free-form mappings (``params``, ``details``) are kept verbatim,
    ``None`` included: a ``null`` there is data, not an absent field.
    """
    wire: dict[str, Any] = msgspec.to_builtins(value)
    return wire


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, i.e. JavaScript's ``text.length``."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def truncate_utf16(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-16 code units, never splitting a character.

    Mirrors the host's ``truncateUtf16Safe``: a character outside the BMP (two units) that
    would straddle the limit is dropped whole.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit // 2:
        # Fast path: even if every character took two units the text would fit.
        return text
    units = 0
    for index, char in enumerate(text[:limit]):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text[:limit]


# ---------------------------------------------------------------- slash commands
# The parsed ``/identity`` subcommands: the command parser builds them, the wiring layer runs
# them (a ``match`` on the type). Plain dataclasses: they never cross the wire.


# fmt: off
@dataclass(frozen=True, slots=True)
class Help:
    """Show the help text, or the usage of ``topic`` (a canonical subcommand)."""
    topic: str | None = None

@dataclass(frozen=True, slots=True)
class Whoami:
    """Show the session's identity."""

@dataclass(frozen=True, slots=True)
class Login:
    """Start an OIDC login, or refresh the TIP."""

@dataclass(frozen=True, slots=True)
class Status:
    """Show login, TIP and credential status."""

@dataclass(frozen=True, slots=True)
class Logout:
    """Clear the session and its TIP."""

@dataclass(frozen=True, slots=True)
class ListTips:
    """List every valid TIP."""

@dataclass(frozen=True, slots=True)
class Config:
    """Show the redacted plugin config."""

@dataclass(frozen=True, slots=True)
class ListCredentials:
    """List providers and stored credentials; ``page`` counts from 1."""
    page: int = 1

@dataclass(frozen=True, slots=True)
class ListRoles:
    """List STS role providers, optionally only those whose name starts with ``prefix``."""
    prefix: str | None = None

@dataclass(frozen=True, slots=True)
class GetRole:
    """Get STS credentials of a role provider (masked unless ``show_secrets``)."""
    provider: str
    use_tip: bool = False
    show_secrets: bool = False

@dataclass(frozen=True, slots=True)
class Fetch:
    """Add a credential; ``None`` fields are inferred from the provider."""
    provider: str
    flow: CredentialFlow | None = None
    redirect_url: str | None = None
    scopes: tuple[str, ...] | None = None

@dataclass(frozen=True, slots=True)
class SetBinding:
    """Bind a provider's credential to an env var."""
    provider: str
    env_var: str

@dataclass(frozen=True, slots=True)
class UnsetBinding:
    """Remove a provider's env binding."""
    provider: str

@dataclass(frozen=True, slots=True)
class Approve:
    """Approve a pending approval."""
    approval_id: str

@dataclass(frozen=True, slots=True)
class Reject:
    """Reject a pending approval."""
    approval_id: str

@dataclass(frozen=True, slots=True)
class Risk:
    """Rate the risk of a shell command."""
    command: str

@dataclass(frozen=True, slots=True)
class RiskPatterns:
    """List the risk rules."""
# fmt: on


IdentityCommand = (
    Help | Whoami | Login | Status | Logout | ListTips | Config | ListCredentials | ListRoles
    | GetRole | Fetch | SetBinding | UnsetBinding | Approve | Reject | Risk | RiskPatterns
)  # fmt: skip


# ---------------------------------------------------------------- gateway methods


class GatewayClientInfo(WireStruct, frozen=True, kw_only=True):
    """``connect.client``: who opened the WebSocket (id, mode …) — as the client claims."""

    id: str | None = None
    display_name: str | None = None
    version: str | None = None
    platform: str | None = None
    mode: str | None = None
    instance_id: str | None = None


class ConnectParams(WireStruct, frozen=True, kw_only=True):
    """The first frame's params of a gateway connection (the parts agent-identity reads)."""

    client: GatewayClientInfo | None = None
    role: str | None = None
    scopes: list[str] | None = None


class GatewayClient(WireStruct, frozen=True, kw_only=True):
    """``opts.client`` of a gateway method handler."""

    connect: ConnectParams | None = None
    conn_id: str | None = None
    client_ip: str | None = None


class GatewayRequest(WireStruct, frozen=True, kw_only=True):
    """``opts.req``: the request frame ``{type: "req", id, method, params?}``."""

    id: str
    method: str
    type: str = "req"
    params: dict[str, Any] | None = None


def _normalised(value: str | None) -> str:
    return (value or "").strip().lower()


def is_webchat_connect(connect: object) -> bool:
    """The host's ``isWebchatConnect``: is this connection a WebChat client?

    True when ``client.mode``, trimmed and lower-cased, is ``webchat`` or ``client.id`` is
    ``webchat-ui`` (host ``isWebchatClient``). The Control UI connects with mode ``webchat``
    and passes; the TUI, CLI, backends and nodes do not. Only ``client`` is read, so an odd
    value elsewhere in the connect params cannot make a real WebChat client fail the test.

    Args:
        connect: :class:`ConnectParams`, its mapping form, or ``None``.

    Returns:
        ``False`` for ``None`` or a malformed ``client`` (fail closed: the callers use this to
        admit requests).
    """
    if connect is None:
        return False
    if isinstance(connect, ConnectParams):
        raw_client: object = connect.client
    elif isinstance(connect, Mapping):
        raw_client = connect.get("client")
    else:
        raw_client = getattr(connect, "client", None)
    if raw_client is None:
        return False
    client = decode_as(GatewayClientInfo, raw_client)
    if isinstance(client, PayloadError):
        return False
    if _normalised(client.mode) == WEBCHAT_CLIENT_MODE:
        return True
    return _normalised(client.id) == WEBCHAT_CLIENT_ID


class SessionPutParams(WireStruct, frozen=True, kw_only=True):
    """Params of ``identity.session.put``: store an OIDC id token for a WebChat session.

    ``session_key`` is the host key as the client sends it (``main`` and ``agent:main:main``
    both work; normalise it). ``sender_id`` defaults to ``openclaw-control-ui`` in the
    wiring; it is capped at the sender-id limit of the effective session key.
    """

    session_key: str
    id_token: NonEmptyStr
    refresh_token: str | None = None
    sender_id: SenderId | None = None
    channel: str | None = None


class SessionGetParams(WireStruct, frozen=True, kw_only=True):
    """Params of ``identity.session.get``."""

    session_key: str
    sender_id: SenderId | None = None
    channel: str | None = None
