"""agent-identity: user identity for AI-agent gateways, as a Trio actor system.

The public API grows as the layers land; see README.md for the status of each feature.
"""

from agent_identity._version import __version__

__all__ = ["__version__"]
