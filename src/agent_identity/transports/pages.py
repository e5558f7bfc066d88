"""The callback's HTML pages: small, self-contained, escaped, and free of secrets.

Every page is a complete document with one inline stylesheet, allowed by the
``Content-Security-Policy`` through its hash (:data:`CSP`); nothing else may load. Every
piece of text that comes from outside (a ``sub``, an IdP's ``error_description``) is
HTML-escaped here, so callers pass plain text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import unicodedata

__all__ = [
    "CSP",
    "MAX_TEXT_LENGTH",
    "error_page",
    "security_headers",
    "simple_page",
    "success_page",
]

#: Longest outside text shown on a page (longer text is cut with an ellipsis).
MAX_TEXT_LENGTH = 300

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#1f2328;line-height:1.5}h1{font-size:1.4rem}.ok{color:#1a7f37}.err{color:#cf222e}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

#: Nothing may load but the page's own stylesheet; no framing, no forms, no base URL.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def security_headers(content_type: str = "text/html; charset=utf-8") -> list[tuple[bytes, bytes]]:
    """The headers every callback response carries (ASGI form)."""
    return [
        (b"content-type", content_type.encode()),
        (b"cache-control", b"no-store"),
        (b"pragma", b"no-cache"),
        (b"content-security-policy", CSP.encode()),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


def _clean(text: str) -> str:
    """Drop control characters, cut to :data:`MAX_TEXT_LENGTH` and HTML-escape."""
    visible = "".join(
        " " if unicodedata.category(char).startswith("C") else char for char in text
    ).strip()
    if len(visible) > MAX_TEXT_LENGTH:
        visible = visible[: MAX_TEXT_LENGTH - 1].rstrip() + "…"
    return html.escape(visible, quote=True)


def simple_page(title: str, paragraphs: list[str], *, css_class: str = "") -> bytes:
    """A page with a heading and paragraphs of plain text (escaped here)."""
    heading_class = f' class="{css_class}"' if css_class else ""
    body = "".join(f"<p>{_clean(paragraph)}</p>" for paragraph in paragraphs)
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_clean(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1{heading_class}>{_clean(title)}</h1>{body}</body></html>"
    )
    return document.encode()


def success_page(sub: str) -> bytes:
    """The page shown after a login: who is logged in, and what to do next."""
    return simple_page(
        "Logged in",
        [f"Logged in as {sub}. You can close this window and return to the chat."],
        css_class="ok",
    )


def error_page(reason: str) -> bytes:
    """The page shown when a login fails, with a reason fit for the user."""
    return simple_page(
        "Login failed",
        [reason, "No session was created. You can close this window."],
        css_class="err",
    )
