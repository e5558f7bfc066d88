"""The embedded sandbox: a local emulator of the Identity control plane, STS and providers.

Used by ``agent-identity dev`` and the tests; never by the production path.
"""
