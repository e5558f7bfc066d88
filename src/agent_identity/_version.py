"""The package version, read by the build backend and ``agent-identity --version``."""

__version__ = "0.1.0"
