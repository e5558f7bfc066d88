"""agent-identity: user identity for AI-agent gateways, as a Trio actor system.

The embedding API is :func:`open_identity` (``async with open_identity(config) as ident:``);
see README.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_identity._version import __version__

if TYPE_CHECKING:
    from agent_identity.system import open_identity

__all__ = ["__version__", "open_identity"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module __getattr__ returns any attribute
    # Lazy: importing any subpackage imports this module first, and the composition root
    # imports nearly everything; loading it eagerly would make every import heavy and circular.
    if name == "open_identity":
        from agent_identity.system import open_identity  # noqa: PLC0415

        return open_identity
    msg = f"module 'agent_identity' has no attribute {name!r}"
    raise AttributeError(msg)
