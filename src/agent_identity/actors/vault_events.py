"""The events the credential vault publishes, and their fan-out to subscribers.

A background 3LO flow ends long after the ``fetch`` that started it has been answered, so its
outcome is published instead: :class:`CredentialAdded` or :class:`CredentialFlowFailed`,
carrying the ``context`` the fetch was given (e.g. where to send "Credential for X added").
:class:`VaultEvents` fans them out without ever blocking the vault.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_identity.actors.vault_types import FetchFailure
from agent_identity.kernel import EventFanout

__all__ = ["CredentialAdded", "CredentialFlowFailed", "VaultEvent", "VaultEvents"]

# The name these events have always been logged under (before they had their own module),
# so existing log filters keep matching.
logger = logging.getLogger("agent_identity.actors.vault_types")


@dataclass(frozen=True, slots=True)
class CredentialAdded:
    """Published when a background 3LO flow stored a credential.

    Attributes:
        session_key: The effective session key.
        provider: The provider whose credential was added.
        context: What ``fetch`` was given (e.g. where to send "Credential for X added").
    """

    session_key: str
    provider: str
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CredentialFlowFailed:
    """Published when a background 3LO flow ended without a credential.

    Attributes:
        session_key: The effective session key.
        provider: The provider.
        failure: Why (denied, timed out, a service error).
        message: A user-safe sentence.
        context: What ``fetch`` was given.
    """

    session_key: str
    provider: str
    failure: FetchFailure
    message: str
    context: Mapping[str, str] = field(default_factory=dict)


VaultEvent = CredentialAdded | CredentialFlowFailed


class VaultEvents(EventFanout[VaultEvent]):
    """Fan-out of :data:`VaultEvent` to subscribers, never blocking the publisher.

    Each subscriber gets its own bounded memory channel; when it is full or closed the event
    is dropped for that subscriber (and counted), so a slow listener cannot stall the vault.
    """

    def __init__(self) -> None:
        super().__init__("credential", logger=logger)
