"""The ``agent-identity`` command line."""
