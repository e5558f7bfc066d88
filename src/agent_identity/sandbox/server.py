"""``open_sandbox``: serve the emulator with hypercorn under trio on a loopback port.

The server runs in a nursery of its own inside the ``async with``; leaving the block asks
hypercorn for a graceful shutdown (a short grace for open keep-alive connections) and waits
for it, so a test never leaks a listening socket.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from agent_identity._net import bound_tcp_fd
from agent_identity.kernel import lone_exception
from agent_identity.sandbox.app import RequestLog, SandboxApp
from agent_identity.sandbox.faults import Faults
from agent_identity.sandbox.feishu import FeishuSandbox
from agent_identity.sandbox.llm import LlmSettings
from agent_identity.sandbox.metadata import CREDENTIALS_PATH, REGION_PATH, MetadataSettings
from agent_identity.sandbox.seed import Seed, SeedSource, load_seed
from agent_identity.sandbox.state import SandboxState, UserPool
from agent_identity.sandbox.tokens import issue_id_token, rotate_user_pool_key
from agent_identity.sandbox.world import build_state
from agent_identity.volcengine.verifier import DEFAULT_MAX_SKEW_SECONDS

__all__ = ["Sandbox", "open_sandbox"]

logger = logging.getLogger(__name__)

_GRACE_SECONDS = 0.5


class Sandbox:
    """A running sandbox: its address, root keys, state, faults and helpers for tests.

    Attributes:
        base_url: ``http://127.0.0.1:PORT``; the control plane and STS answer at path ``/``.
        host: ``127.0.0.1:PORT`` (the Host header clients sign).
        app: The ASGI app (its ``handlers`` table can be patched in tests).
        state: The in-memory world, for assertions.
        faults: Fault injection, settable at run time.
        requests: Request counts: ``requests.count(action)``.
        metadata: What the metadata endpoints answer, settable at run time.
        llm: The LLM stand-in's settings (mode, delay, keys, call count), settable at run time.
        feishu: The Feishu stand-in (apps, faults, sent messages), settable at run time.
    """

    def __init__(self, app: SandboxApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.host = base_url.split("://", 1)[1]

    @property
    def state(self) -> SandboxState:
        """The in-memory world."""
        return self.app.state

    @property
    def faults(self) -> Faults:
        """Fault injection."""
        return self.app.faults

    @property
    def requests(self) -> RequestLog:
        """Request counts."""
        return self.app.requests

    @property
    def metadata(self) -> MetadataSettings:
        """The metadata endpoints' answers."""
        return self.app.metadata

    @property
    def llm(self) -> LlmSettings:
        """The LLM stand-in's settings (``/v1/chat/completions``, ``/v1/messages``)."""
        return self.app.llm.settings

    @property
    def llm_endpoint(self) -> str:
        """The ``llmRiskCheck.endpoint`` for the LLM stand-in (``{base_url}/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def feishu(self) -> FeishuSandbox:
        """The Feishu stand-in (``/open-apis/``); ``channels.feishu.domain`` is ``base_url``."""
        return self.app.feishu

    @property
    def access_key_id(self) -> str:
        """The seeded root access key id."""
        return self.state.root_access_key_id

    @property
    def secret_access_key(self) -> str:
        """The seeded root secret access key."""
        return self.state.root_secret_access_key

    @property
    def region(self) -> str:
        """The seeded region."""
        return self.state.region

    @property
    def region_url(self) -> str:
        """The ``regionMetadataUrl`` (``/latest/region_id``)."""
        return f"{self.base_url}{REGION_PATH}"

    @property
    def credentials_url(self) -> str:
        """The ``credentialsMetadataUrl`` (``/latest/credentials``)."""
        return f"{self.base_url}{CREDENTIALS_PATH}"

    def _user_pool(self, user_pool: str) -> UserPool:
        pool = self.state.user_pool(user_pool)
        if pool is None:
            raise KeyError(f"no user pool named or with uid {user_pool!r}")
        return pool

    def issue_user_token(
        self,
        user_pool: str,
        sub: str,
        *,
        client_id: str | None = None,
        ttl: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Issue an OIDC id_token (RS256) as a user pool would after a login.

        Args:
            user_pool: The pool's name or uid.
            sub: The user's subject (need not be a seeded user).
            client_id: The ``aud``; default: the pool's first client.
            ttl: Lifetime in seconds (negative for an expired token).
            extra_claims: More claims, merged last.

        Returns:
            The token, signed by the pool's key with ``iss`` = the pool's issuer.

        Raises:
            KeyError: No such user pool.
        """
        return issue_id_token(
            self.state,
            self._user_pool(user_pool),
            sub,
            client_id=client_id,
            ttl=ttl,
            extra_claims=extra_claims,
        )

    def rotate_user_pool_key(
        self, user_pool: str, *, alg: str | None = None, grace_seconds: float | None = 3600.0
    ) -> str:
        """Rotate a user pool's signing key (the provider's key-rotation-on-demand).

        Args:
            user_pool: The pool's name or uid.
            alg: ``RS256`` or ``ES256`` for the new key; the pool's current one when None.
            grace_seconds: How long the old key stays in the JWKS; None drops it at once.

        Returns:
            The new key's ``kid``.
        """
        return rotate_user_pool_key(self.state, user_pool, alg=alg, grace_seconds=grace_seconds)

    def user_pool_issuer(self, user_pool: str) -> str:
        """The OIDC issuer of a user pool (by name or uid)."""
        return self.state.user_pool_issuer(self._user_pool(user_pool))

    def user_pool_discovery_url(self, user_pool: str) -> str:
        """The OIDC discovery URL of a user pool."""
        return f"{self.user_pool_issuer(user_pool)}/.well-known/openid-configuration"

    def user_pool_jwks_url(self, user_pool: str) -> str:
        """The JWKS URL of a user pool."""
        return f"{self.user_pool_issuer(user_pool)}/keys"

    def tip_issuer(self, workload_pool: str = "default") -> str:
        """The TIP issuer of a workload pool (by name)."""
        return self.state.tip_issuer(self.state.workload_pools[workload_pool])

    def tip_jwks_url(self, workload_pool: str = "default") -> str:
        """The JWKS URL that verifies a workload pool's TIPs."""
        return f"{self.tip_issuer(workload_pool)}/keys"


@asynccontextmanager
async def open_sandbox(
    seed: Seed | SeedSource = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.time,
    max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS,
) -> AsyncIterator[Sandbox]:
    """Start a sandbox on a loopback port and stop it on exit.

    Args:
        seed: A :class:`Seed`, a path to a seed JSON file, a parsed mapping, or None for the
            default seed shipped in the package.
        host: The address to listen on.
        port: The port (0: an ephemeral one).
        rng: The random source for fault ``rate`` (seed it for reproducible tests).
        clock: Wall-clock seconds for token times, key expiry and X-Date checks.
        max_skew_seconds: The allowed ``X-Date`` skew (15 minutes by default).

    Yields:
        The running sandbox.

    Raises:
        SeedError: The seed is invalid.
        OSError: The address cannot be bound (e.g. the port is taken).
    """
    loaded = seed if isinstance(seed, Seed) else load_seed(seed)
    state = build_state(loaded, clock=clock)
    metadata = MetadataSettings(
        region_body=loaded.metadata.region or loaded.region,
        credentials_role=loaded.metadata.credentials_role,
    )
    app = SandboxApp(
        state,
        faults=Faults(rng=rng or random.Random()),  # noqa: S311 - fault rates, not secrets
        metadata=metadata,
        max_skew_seconds=max_skew_seconds,
    )
    config = Config()
    config.bind = [f"fd://{bound_tcp_fd(host, port)}"]
    config.accesslog = None
    config.errorlog = logger
    config.graceful_timeout = _GRACE_SECONDS
    shutdown = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                partial(serve, cast("ASGIFramework", app), config, shutdown_trigger=shutdown.wait)
            )
            state.base_url = binds[0]
            try:
                yield Sandbox(app, binds[0])
            finally:
                shutdown.set()
                # Backstop: whatever the server still does after the grace period is cancelled.
                nursery.cancel_scope.deadline = trio.current_time() + 2 * _GRACE_SECONDS + 1
    except BaseExceptionGroup as group:
        # Nurseries (ours and hypercorn's) wrap everything in groups; a lone error (the
        # caller's own, or the server's) is re-raised as itself so ``except`` sees it.
        lone = lone_exception(group)
        if lone is None:
            raise
        raise lone from None
