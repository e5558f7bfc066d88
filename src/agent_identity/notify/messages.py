"""The follow-up texts: one place, so the chat wording stays consistent."""

from __future__ import annotations

__all__ = ["credential_added_text", "login_success_text"]


def login_success_text(sub: str | None = None) -> str:
    """The follow-up after a login completed.

    Args:
        sub: The logged-in user's subject (or display name); omitted when unknown.

    Returns:
        ``✓ Logged in as <sub>.`` or ``✓ Logged in.``
    """
    shown = (sub or "").strip()
    return f"✓ Logged in as {shown}." if shown else "✓ Logged in."


def credential_added_text(provider: str) -> str:
    """The follow-up after an OAuth credential was fetched and stored.

    Args:
        provider: The credential provider's name (e.g. ``google``).

    Returns:
        ``✓ Credential for <provider> added.``
    """
    return f"✓ Credential for {provider.strip() or 'the provider'} added."
