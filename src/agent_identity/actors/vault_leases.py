"""Per-tool-call credential injection: env var rules, the env overlay and the lease table.

The vault never touches ``os.environ``. ``before_tool_call`` asks it for a *lease*: the env
overlay of that session's bound credentials for that one tool call (merged by the host into
the tool's params, e.g. ``exec``'s ``env``), recorded under a lease id such as
``runId:toolCallId``. ``after_tool_call`` releases it; a lease that is never released expires
after a TTL (10 minutes by default, on Trio's clock) and is swept.

How a bound credential becomes env vars (:func:`env_for`):

* an API key or an OAuth2 access token: ``{ENV_VAR: value}``;
* role (STS) keys: three variables named after a prefix ``P``, the bound name with a trailing
  ``_ACCESS_KEY`` removed: ``P_ACCESS_KEY``, ``P_SECRET_KEY`` and ``P_SESSION_TOKEN``. So
  ``set demo-role VOLCENGINE`` (or ``VOLCENGINE_ACCESS_KEY``) injects the names the
  Volcengine SDKs read: ``VOLCENGINE_ACCESS_KEY``, ``VOLCENGINE_SECRET_KEY`` and
  ``VOLCENGINE_SESSION_TOKEN``.

Only credentials that are present and unexpired are injected. The overlay is computed from
one session's credentials and bindings only, so it can never hold another session's value.
Everything here is synchronous and takes the time as an argument: the table is tested with a
mock clock and no actor.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent_identity.actors.vault_types import BindingFailure, Credential, CredentialKind

__all__ = [
    "DEFAULT_LEASE_TTL",
    "PROTECTED_IMPORTS",
    "RESERVED_ENV_VARS",
    "Lease",
    "LeaseTable",
    "check_env_var",
    "env_for",
    "env_overlay",
    "role_env_names",
]

#: Seconds a lease lives when ``after_tool_call`` never releases it.
DEFAULT_LEASE_TTL = 600.0
_ENV_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_ENV_VAR_LENGTH = 256
_ROLE_SUFFIX = "_ACCESS_KEY"

#: Names a credential may never be bound to: they change how a tool's process runs.
RESERVED_ENV_VARS = frozenset(
    {
        "PATH",
        "HOME",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "DYLD_INSERT_LIBRARIES",
        "DYLD_LIBRARY_PATH",
        "NODE_OPTIONS",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
    }
)

#: Gateway variables ``set`` never imports as a user's credential: the gateway's own keys.
PROTECTED_IMPORTS = frozenset(
    {
        "VOLCENGINE_ACCESS_KEY",
        "VOLCENGINE_SECRET_KEY",
        "VOLCENGINE_SESSION_TOKEN",
        "AGENT_IDENTITY_STORE_KEY",
    }
)


def check_env_var(name: str) -> tuple[BindingFailure, str] | None:
    """Return why ``name`` cannot be bound (a code and a user-safe sentence), or None.

    A name must match ``[A-Za-z_][A-Za-z0-9_]*`` (at most 256 characters) and must not be a
    name in :data:`RESERVED_ENV_VARS` (compared case-insensitively).
    """
    if len(name) > _MAX_ENV_VAR_LENGTH or _ENV_VAR_RE.fullmatch(name) is None:
        return BindingFailure.INVALID_NAME, (
            f"{_shown(name)} is not a valid environment variable name: use letters, digits "
            "and underscores, not starting with a digit."
        )
    if name.upper() in RESERVED_ENV_VARS:
        return BindingFailure.RESERVED_NAME, (
            f"{name} is reserved: binding a credential to it would change how tools run."
        )
    return None


def _shown(name: str) -> str:
    # The name is echoed to the user; keep a runaway or multi-line one short and inert.
    clipped = name if len(name) <= 40 else f"{name[:37]}..."
    return repr(clipped)


def role_env_names(env_var: str) -> tuple[str, str, str]:
    """The access key, secret key and session token names of a role binding."""
    prefix = env_var.removesuffix(_ROLE_SUFFIX) or env_var
    return f"{prefix}_ACCESS_KEY", f"{prefix}_SECRET_KEY", f"{prefix}_SESSION_TOKEN"


def env_for(credential: Credential, env_var: str) -> dict[str, str]:
    """The env vars one credential is injected as when bound to ``env_var``."""
    if credential.kind is not CredentialKind.ROLE:
        return {env_var: credential.value}
    access, secret, token = role_env_names(env_var)
    found = {access: credential.value}
    if credential.secret_access_key:
        found[secret] = credential.secret_access_key
    if credential.session_token:
        found[token] = credential.session_token
    return found


def env_overlay(
    credentials: Mapping[str, Credential], bindings: Mapping[str, str], now: float
) -> dict[str, str]:
    """The env overlay of one session: its bound, present, unexpired credentials.

    Providers are applied in name order, so if two are bound to the same variable the result
    is still deterministic (the later name wins).
    """
    overlay: dict[str, str] = {}
    for provider, env_var in sorted(bindings.items()):
        credential = credentials.get(provider)
        if credential is None or credential.expired(now):
            continue
        overlay.update(env_for(credential, env_var))
    return overlay


@dataclass(frozen=True, slots=True)
class Lease:
    """One granted lease: which session it is for and which names it injected (no values).

    Attributes:
        lease_id: The host's key, e.g. ``runId:toolCallId``.
        session_key: The session the overlay was computed for.
        names: The env var names in the overlay.
        granted_at: When it was granted, on Trio's clock.
        expires_at: When the sweep drops it.
    """

    lease_id: str
    session_key: str
    names: tuple[str, ...]
    granted_at: float
    expires_at: float


class LeaseTable:
    """Live leases by id, with TTL expiry; synchronous, the caller supplies the time.

    A lease id held by one session is never handed to another while it lives: a second
    grant of the same id for another session is refused (the caller injects nothing).
    Granting an id again for the same session renews it.

    Args:
        ttl: Seconds a lease lives unless released.
    """

    def __init__(self, ttl: float = DEFAULT_LEASE_TTL) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        self.ttl = ttl
        self._leases: dict[str, Lease] = {}
        self._expiries: list[tuple[float, str]] = []
        self.granted = 0
        self.released = 0
        self.expired = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, lease_id: str, now: float) -> Lease | None:
        """The live lease of ``lease_id``, if any."""
        lease = self._leases.get(lease_id)
        if lease is None or lease.expires_at <= now:
            return None
        return lease

    def grant(self, lease_id: str, session_key: str, names: Iterable[str], now: float) -> bool:
        """Record (or renew) a lease; False if a live lease of that id is another session's."""
        held = self.get(lease_id, now)
        if held is not None and held.session_key != session_key:
            self.refused += 1
            return False
        lease = Lease(lease_id, session_key, tuple(sorted(names)), now, now + self.ttl)
        self._leases[lease_id] = lease
        heapq.heappush(self._expiries, (lease.expires_at, lease_id))
        self.granted += 1
        return True

    def release(self, lease_id: str) -> bool:
        """Drop a lease (``after_tool_call``); False if it was unknown or already gone."""
        if self._leases.pop(lease_id, None) is None:
            return False
        self.released += 1
        return True

    def drop_session(self, session_key: str) -> int:
        """Drop every lease of one session (logout); returns how many."""
        gone = [key for key, lease in self._leases.items() if lease.session_key == session_key]
        for key in gone:
            del self._leases[key]
        return len(gone)

    def next_expiry(self) -> float:
        """When the next live lease expires (``math.inf`` when there is none)."""
        while self._expiries:
            at, lease_id = self._expiries[0]
            lease = self._leases.get(lease_id)
            if lease is not None and lease.expires_at == at:
                return at
            heapq.heappop(self._expiries)  # released, renewed or dropped: stale entry
        return math.inf

    def sweep(self, now: float) -> int:
        """Drop every lease that has expired at ``now``; returns how many."""
        dropped = 0
        while self._expiries and self._expiries[0][0] <= now:
            at, lease_id = heapq.heappop(self._expiries)
            lease = self._leases.get(lease_id)
            if lease is not None and lease.expires_at == at:
                del self._leases[lease_id]
                dropped += 1
        self.expired += dropped
        return dropped

    def sessions(self) -> set[str]:
        """The sessions holding at least one lease."""
        return {lease.session_key for lease in self._leases.values()}
