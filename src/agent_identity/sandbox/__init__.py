"""The embedded sandbox: a local emulator of the Identity control plane, STS and providers.

Used by ``agent-identity dev`` and the tests; never by the production path. It is an
independent server-side implementation that parses raw JSON itself; it shares only the request
signer/verifier with the client.

Example:
    >>> async with open_sandbox() as sb:  # doctest: +SKIP
    ...     token = sb.issue_user_token("agent-identity-dev", "alice")
"""

from agent_identity.sandbox.faults import FaultRule, Faults
from agent_identity.sandbox.metadata import MetadataSettings
from agent_identity.sandbox.seed import Seed, SeedError, load_seed
from agent_identity.sandbox.server import Sandbox, open_sandbox

__all__ = [
    "FaultRule",
    "Faults",
    "MetadataSettings",
    "Sandbox",
    "Seed",
    "SeedError",
    "load_seed",
    "open_sandbox",
]
