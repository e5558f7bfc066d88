"""Where the Identity API lives, and which region signs for it.

Host resolution (plugin spec, Configuration A): the configured ``endpoint`` if set; else the
region read from ``regionMetadataUrl`` (plain text, ~10 s timeout) as
``https://id.{region}.volcengineapi.com``; else ``https://id.cn-beijing.volcengineapi.com``.
Any failure of the metadata lookup (timeout, connection error, non-2xx, a body that is not a
region id such as ``unknown``) falls back to the default rather than failing start-up.

The signing region comes from the resolved host when it has the ``id.{region}.volcengineapi.com``
shape, else ``cn-beijing``.
"""

from __future__ import annotations

import logging
import re

import httpx
import trio

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGION",
    "REGION_METADATA_TIMEOUT",
    "endpoint_for_region",
    "is_valid_region",
    "resolve_endpoint",
    "signing_region_for",
]

logger = logging.getLogger(__name__)

DEFAULT_REGION = "cn-beijing"
DEFAULT_ENDPOINT = f"https://id.{DEFAULT_REGION}.volcengineapi.com"
REGION_METADATA_TIMEOUT = 10.0

# A Volcengine region id: a lowercase area, a lowercase place and an optional number, e.g.
# ``cn-beijing``, ``cn-shanghai``, ``ap-southeast-1``, ``cn-north-1``. Anything else (``unknown``,
# an HTML error page, a host name) is refused, since it ends up inside a host name.
_REGION_RE = re.compile(r"^[a-z]{2,}-[a-z]+(?:-\d+)?$")
_MAX_REGION_LENGTH = 64
_ID_HOST_RE = re.compile(r"^id\.(?P<region>[^.]+)\.volcengineapi\.com$")


def is_valid_region(text: str) -> bool:
    """Whether ``text`` is a well-formed region id (see ``_REGION_RE``)."""
    return len(text) <= _MAX_REGION_LENGTH and _REGION_RE.fullmatch(text) is not None


def endpoint_for_region(region: str) -> str:
    """The Identity endpoint of a region: ``https://id.{region}.volcengineapi.com``.

    Raises:
        ValueError: ``region`` is not a valid region id.
    """
    if not is_valid_region(region):
        raise ValueError(f"not a region id: {region[:_MAX_REGION_LENGTH]!r}")
    return f"https://id.{region}.volcengineapi.com"


async def _region_from_metadata(url: str, http: httpx.AsyncClient, limit: float) -> str | None:
    await trio.lowlevel.checkpoint()
    response: httpx.Response | None = None
    try:
        with trio.move_on_after(limit):
            response = await http.get(url, timeout=limit)
    except httpx.HTTPError as exc:
        logger.warning("region metadata unreachable (%s); using the default region", exc)
        return None
    if response is None:
        logger.warning("region metadata timed out after %.0fs; using the default region", limit)
        return None
    if not response.is_success:
        logger.warning(
            "region metadata answered HTTP %d; using the default region", response.status_code
        )
        return None
    region = response.text.strip()
    if not is_valid_region(region):
        logger.warning("region metadata returned no region id; using the default region")
        return None
    return region


async def resolve_endpoint(
    endpoint: str | None,
    region_metadata_url: str | None,
    http: httpx.AsyncClient,
    *,
    metadata_timeout: float = REGION_METADATA_TIMEOUT,
) -> str:
    """Resolve the Identity API base URL.

    Args:
        endpoint: The configured endpoint; used as is when set (trailing ``/`` dropped).
        region_metadata_url: A URL answering a plain-text region id; read only when
            ``endpoint`` is unset.
        http: The HTTP client for the metadata lookup.
        metadata_timeout: The metadata lookup's time limit, in seconds.

    Returns:
        The endpoint, e.g. ``https://id.cn-shanghai.volcengineapi.com``.
    """
    # A checkpoint on every path, as Trio expects of an async function.
    await trio.lowlevel.checkpoint()
    if endpoint:
        return endpoint.rstrip("/")
    if region_metadata_url:
        region = await _region_from_metadata(region_metadata_url, http, metadata_timeout)
        if region is not None:
            return endpoint_for_region(region)
    return DEFAULT_ENDPOINT


def signing_region_for(host: str) -> str:
    """The signing region for an Identity host (or URL).

    Args:
        host: ``id.cn-shanghai.volcengineapi.com``, with or without scheme, port or path.

    Returns:
        The region inside an ``id.{region}.volcengineapi.com`` host, else ``cn-beijing``.
    """
    name = httpx.URL(host).host if "://" in host else host.split("/", 1)[0].split(":", 1)[0]
    match = _ID_HOST_RE.match(name.lower())
    if match is not None and is_valid_region(match["region"]):
        return match["region"]
    return DEFAULT_REGION
