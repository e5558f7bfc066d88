"""The ``identity_*`` agent tools: names, descriptions, JSON Schemas, and a small validator.

One :class:`ToolSpec` per tool of the plugin (README "Tools", identity API spec section 7).
The schemas are what the host shows the model, so they stay plain: ``type: object`` with
``properties``, ``required`` and ``additionalProperties: false``, scalar types, ``enum``,
``pattern`` and arrays of strings. No ``anyOf``/``oneOf`` — several model providers reject them
in tool parameters; the one "either … or" rule (``identity_risk_check`` needs ``command`` or
``toolName``) is :attr:`ToolSpec.one_of_required`, enforced by :func:`validate_params`.

:func:`validate_params` implements exactly the keywords used here (no ``jsonschema``
dependency). Tool params come from the model and are untrusted; the wiring layer validates
before acting and turns the error list into a thrown tool error, as the host expects.

``identity_approve_tool`` is a spec like the others but has ``agent_visible=False``: a model
must never approve its own tool calls, so :func:`agent_tools` never offers it; it stays
reachable for users (the ``/identity approve`` command, the local identity server).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from agent_identity.host.contract import CREDENTIAL_FLOWS

__all__ = [
    "CONFIG_SUGGEST_INTENTS",
    "CONFIG_SUGGEST_LANGS",
    "CREDENTIAL_TYPES",
    "ENV_VAR_PATTERN",
    "PROVIDER_NAME_MAX",
    "TOOL_SPECS",
    "ToolSpec",
    "agent_tools",
    "tool_spec",
    "validate_params",
]

#: Provider types of the control plane (``ListCredentialProviders`` filter ``Type``).
CREDENTIAL_TYPES: Final = ("api_key", "oauth2")
CONFIG_SUGGEST_INTENTS: Final = ("identity", "userpool", "authz", "llm_risk", "full")
CONFIG_SUGGEST_LANGS: Final = ("en", "zh")
#: A POSIX-style environment variable name (JavaScript regex syntax, as the host reads it).
ENV_VAR_PATTERN: Final = "^[A-Za-z_][A-Za-z0-9_]*$"
#: Longest credential provider name accepted from a user or the model.
PROVIDER_NAME_MAX: Final = 128


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One agent tool as the host registers it.

    Attributes:
        name: Tool name, ``identity_`` + snake_case.
        label: Short display label for UIs.
        description: What the model reads to decide when to call the tool.
        parameters: JSON Schema of the params; treat as read-only (use :meth:`json_schema`
            for a private copy).
        agent_visible: Whether the tool is offered to the agent.
        one_of_required: Groups of params of which at least one must be given.
    """

    name: str
    label: str
    description: str
    parameters: Mapping[str, Any]
    agent_visible: bool = True
    one_of_required: tuple[tuple[str, ...], ...] = field(default=())

    def json_schema(self) -> dict[str, Any]:
        """A deep copy of :attr:`parameters`, safe to hand to the host or to mutate."""
        return copy.deepcopy(dict(self.parameters))


def _schema(properties: Mapping[str, Any] | None = None, *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties or {}),
        "required": list(required),
        "additionalProperties": False,
    }


def _string(description: str, **extra: object) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


_PROVIDER = _string("Credential provider name.", minLength=1, maxLength=PROVIDER_NAME_MAX)
_FLOW = _string("oauth2-user (3LO), oauth2-m2m or apikey.", enum=list(CREDENTIAL_FLOWS))
_CONFIDENTIAL = "The result is a secret: never show it in chat unless the user asks for it."


def _tool(name: str, label: str, description: str, parameters: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name=name, label=label, description=description, parameters=parameters)


TOOL_SPECS: Final[tuple[ToolSpec, ...]] = (
    _tool(
        "identity_whoami",
        "Who am I",
        "Show the signed-in user of this session: sub, whether a TIP token is held, session "
        "and TIP expiry, delegation chain.",
        _schema(),
    ),
    _tool(
        "identity_status",
        "Identity status",
        "Show login status, TIP token, stored credentials and env bindings of this session. "
        "Refreshes the TIP when a session exists.",
        _schema(),
    ),
    _tool(
        "identity_login",
        "Log in",
        "Start sign-in: returns a login URL for the user to open (give it to them; do not "
        "open it yourself). When already signed in, refreshes the TIP token instead.",
        _schema(),
    ),
    _tool(
        "identity_logout",
        "Log out",
        "Sign the user out of this session: clears the session, its TIP and its credentials.",
        _schema(),
    ),
    _tool(
        "identity_list_credentials",
        "List credentials",
        "List credential providers (OAuth2, API key) of the control plane and the user's "
        "stored credentials with their env bindings. Paginated: when hasMore is true, call "
        "again with the next page.",
        _schema(
            {
                "page": {"type": "integer", "minimum": 1, "description": "Page, from 1."},
                "name": _string("Only providers whose name contains this."),
                "flow": _string("Only providers with this flow.", enum=list(CREDENTIAL_FLOWS)),
                "type": _string("Only providers of this type.", enum=list(CREDENTIAL_TYPES)),
            }
        ),
    ),
    _tool(
        "identity_list_roles",
        "List role providers",
        "List STS role credential providers (not OAuth2 or API key providers).",
        _schema({"prefix": _string("Only providers whose name starts with this.")}),
    ),
    _tool(
        "identity_fetch",
        "Add credential",
        "Add a credential for a provider. For oauth2-user returns an authUrl the user must "
        "open (a message follows in chat when done); for oauth2-m2m and apikey stores the "
        "credential at once. The flow is inferred from the provider when omitted.",
        _schema(
            {
                "provider": _PROVIDER,
                "flow": _FLOW,
                "redirectUrl": _string("OAuth2 redirect URL overriding the provider's."),
                "scopes": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "OAuth2 scopes overriding the provider's.",
                },
                "returnValue": {
                    "type": "boolean",
                    "description": "Include the credential value in the result. " + _CONFIDENTIAL,
                },
            },
            "provider",
        ),
    ),
    _tool(
        "identity_get_role_credentials",
        "Get role credentials",
        "Get temporary Volcengine STS credentials for a role provider. " + _CONFIDENTIAL,
        _schema(
            {
                "providerName": _string(
                    "Role credential provider name.", minLength=1, maxLength=PROVIDER_NAME_MAX
                ),
                "useTip": {"type": "boolean", "description": "Authenticate with the TIP token."},
            },
            "providerName",
        ),
    ),
    _tool(
        "identity_get_tip_token",
        "Get TIP token",
        "Return the raw TIP JWT of this session (advanced). " + _CONFIDENTIAL,
        _schema(),
    ),
    _tool(
        "identity_get_session_token",
        "Get session token",
        "Return the signed-in user's OIDC session token (advanced). " + _CONFIDENTIAL,
        _schema(),
    ),
    _tool(
        "identity_config",
        "Identity config",
        "Show the effective identity plugin config, secrets redacted.",
        _schema(),
    ),
    _tool(
        "identity_config_suggest",
        "Suggest config",
        "Suggest config snippets to merge into the plugin config for a goal.",
        _schema(
            {
                "intent": _string("What to configure.", enum=list(CONFIG_SUGGEST_INTENTS)),
                "lang": _string("Language of the explanations.", enum=list(CONFIG_SUGGEST_LANGS)),
            }
        ),
    ),
    _tool(
        "identity_set_binding",
        "Bind credential",
        "Bind a provider's stored credential to an env var, injected into tool calls of this "
        "session. Without a stored credential, imports the env var's current value as an API "
        "key.",
        _schema(
            {
                "provider": _PROVIDER,
                "envVar": _string("Env var name.", pattern=ENV_VAR_PATTERN),
            },
            "provider",
            "envVar",
        ),
    ),
    _tool(
        "identity_unset_binding",
        "Unbind credential",
        "Remove the env var binding of a provider.",
        _schema({"provider": _PROVIDER}, "provider"),
    ),
    ToolSpec(
        name="identity_risk_check",
        label="Risk check",
        description="Rate the risk (low, medium, high) of a shell command, or of a tool call "
        "given as toolName and params, with the reason. Works without login.",
        parameters=_schema(
            {
                "command": _string("Shell command to rate.", minLength=1),
                "toolName": _string("Tool to rate, e.g. exec or write.", minLength=1),
                "params": {"type": "object", "description": "Params of that tool call."},
            }
        ),
        one_of_required=(("command", "toolName"),),
    ),
    _tool(
        "identity_list_risk_patterns",
        "Risk patterns",
        "List the rules used to rate tool-call risk. Works without login.",
        _schema(),
    ),
    _tool(
        "identity_list_tips",
        "List TIP tokens",
        "List all valid TIP tokens with delegation chain, expiry and env bindings "
        "(operations and multi-session debugging).",
        _schema(),
    ),
    ToolSpec(
        name="identity_approve_tool",
        label="Approve tool call",
        description="Approve a pending high-risk tool call. For users only.",
        parameters=_schema(
            {"approval_id": _string("Id of the pending approval.", minLength=1)}, "approval_id"
        ),
        agent_visible=False,
    ),
)

_BY_NAME: Final[dict[str, ToolSpec]] = {spec.name: spec for spec in TOOL_SPECS}


def tool_spec(name: str) -> ToolSpec | None:
    """The spec of tool ``name``, or ``None`` if there is no such tool."""
    return _BY_NAME.get(name)


def agent_tools() -> tuple[ToolSpec, ...]:
    """The tools offered to the agent: every spec with ``agent_visible``."""
    return tuple(spec for spec in TOOL_SPECS if spec.agent_visible)


# ---------------------------------------------------------------- validation

_JSON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "boolean": (bool,),
    "number": (int, float),
    "integer": (int, float),
}


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    # The patterns are JavaScript regexes, where a final ``$`` only matches at the very end;
    # Python's also matches before a trailing newline, which would let "FOO\n" through.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _type_error(expected: str, value: object) -> str | None:
    if isinstance(value, bool) and expected != "boolean":
        # bool is an int in Python but never a JSON number.
        return f"expected {expected}, got boolean"
    if not isinstance(value, _JSON_TYPES[expected]):
        return f"expected {expected}, got {_json_type(value)}"
    if expected == "integer" and isinstance(value, float) and not value.is_integer():
        return "expected integer, got number"
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    # "boolean" comes before "number" in _JSON_TYPES, so True is named a boolean.
    for name, types in _JSON_TYPES.items():
        if isinstance(value, types):
            return name
    return type(value).__name__


def _check(schema: Mapping[str, Any], value: object, path: str, errors: list[str]) -> None:
    expected = schema.get("type")
    if expected is not None:
        problem = _type_error(expected, value)
        if problem is not None:
            errors.append(f"{path}: {problem}")
            return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(option) for option in schema["enum"])
        errors.append(f"{path}: must be one of {allowed}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: must not be empty" if not value else f"{path}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and _compile(schema["pattern"]).search(value) is None:
            errors.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(value, int | float) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: must be at least {schema['minimum']}")
    if isinstance(value, list | tuple) and "items" in schema:
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]", errors)
    if isinstance(value, dict) and "properties" in schema:
        _check_object(schema, value, path, errors)


def _check_object(
    schema: Mapping[str, Any], value: Mapping[str, Any], path: str, errors: list[str]
) -> None:
    properties: Mapping[str, Any] = schema["properties"]
    prefix = "" if path == "params" else f"{path}."
    errors.extend(
        f"{prefix}{name}: required" for name in schema.get("required", ()) if name not in value
    )
    for name, item in value.items():
        if name in properties:
            _check(properties[name], item, f"{prefix}{name}", errors)
        elif schema.get("additionalProperties", True) is False:
            errors.append(f"{prefix}{name}: unknown parameter")


def validate_params(spec: ToolSpec, params: object) -> list[str]:
    """Check tool params against the spec's schema.

    Supports the keywords the specs use: ``type`` (a JSON integer may be written ``2.0``;
    booleans are never numbers), ``properties``, ``required``, ``additionalProperties:
    false``, ``enum``, ``minLength``/``maxLength`` (code points), ``pattern`` (searched, with
    JavaScript's ``$``), ``minimum``, ``items``, plus :attr:`ToolSpec.one_of_required`.

    Args:
        spec: The tool.
        params: The params as the model sent them (``None`` counts as ``{}``).

    Returns:
        One message per problem, e.g. ``"page: expected integer, got string"``; empty when
        the params are valid. Messages never contain param values, so they are safe to show.
    """
    value = {} if params is None else params
    errors: list[str] = []
    _check(spec.parameters, value, "params", errors)
    if isinstance(value, dict):
        errors.extend(
            f"one of {', '.join(group)} is required"
            for group in spec.one_of_required
            if not any(name in value for name in group)
        )
    return errors
