"""Parsing of the API's timestamps into aware datetimes.

The Identity API answers ISO-8601 ``Z`` strings (``2025-10-30T07:59:24Z``); STS answers RFC 3339
with an offset (``2021-04-12T11:57:09+08:00``). Expiry decisions compare against the wall
clock, so every parsed moment is aware and normalised to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_timestamp"]


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 / RFC 3339 timestamp into an aware UTC datetime.

    A timestamp without an offset is taken as UTC, which is what the API means by it.

    Args:
        text: E.g. ``2025-10-30T07:59:24Z`` or ``2021-04-12T11:57:09+08:00``.

    Returns:
        The moment, in UTC.

    Raises:
        ValueError: The text is not such a timestamp.
    """
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
