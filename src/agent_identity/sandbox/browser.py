"""A scripted browser for the sandbox's UserPool login form (tests and ``dev --demo``).

What a person does after opening a login URL: load the provider's form, fill in the user
name and password, submit it and follow the redirects to the gateway's callback. The form
is read with the standard HTML parser (hidden inputs and the action), so the same code works
against any provider page shaped like the sandbox's.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

__all__ = ["LoginFormError", "submit_consent_form", "submit_form", "submit_login_form"]


class LoginFormError(Exception):
    """The provider's page did not contain a login form."""


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden" and "name" in found:
            self.fields[found["name"]] = found.get("value", "")


async def submit_form(
    http: httpx.AsyncClient,
    url: str,
    fields: dict[str, str],
    *,
    follow_redirects: bool | None = True,
) -> httpx.Response:
    """Open ``url``, fill the first form's hidden inputs plus ``fields`` and submit it.

    Args:
        http: The client acting as the browser.
        url: The page with the form (redirects to it are followed).
        fields: The visible fields to fill in (they win over hidden inputs of the same name).
        follow_redirects: Whether to follow the redirects the submission answers (``True``:
            to the end; ``False``: return the provider's redirect itself, e.g. to read the
            authorization code from its ``Location``; ``None``: as the client is set).

    Returns:
        The answer to the submission (the last one when redirects are followed).

    Raises:
        LoginFormError: The page has no form (its status is in the message).
    """
    page = await http.get(url, follow_redirects=True)
    reader = _FormReader()
    reader.feed(page.text)
    if page.status_code != httpx.codes.OK or reader.action is None:
        msg = f"no form at the URL (HTTP {page.status_code})"
        raise LoginFormError(msg)
    return await http.post(
        urljoin(str(page.url), reader.action),
        data={**reader.fields, **fields},
        follow_redirects=http.follow_redirects if follow_redirects is None else follow_redirects,
    )


async def submit_consent_form(
    http: httpx.AsyncClient,
    authorize_url: str,
    *,
    decision: str = "approve",
    follow_redirects: bool | None = True,
) -> httpx.Response:
    """Decide on the demo OAuth2 provider's consent page (``approve`` or ``deny``).

    ``follow_redirects`` is as for :func:`submit_form`.

    Raises:
        LoginFormError: The page is not a consent form.
    """
    return await submit_form(
        http, authorize_url, {"decision": decision}, follow_redirects=follow_redirects
    )


async def submit_login_form(
    http: httpx.AsyncClient,
    authorize_url: str,
    *,
    username: str,
    password: str,
    follow_redirects: bool | None = True,
) -> httpx.Response:
    """Open ``authorize_url``, submit the login form and follow redirects to the end.

    Args:
        http: The client acting as the browser.
        authorize_url: The URL ``/identity login`` printed.
        username: The user to log in as.
        password: Their password.
        follow_redirects: As for :func:`submit_form`; ``False`` stops at the provider's
            redirect to the callback (its ``Location`` carries the code).

    Returns:
        The last response (normally the gateway's callback page).

    Raises:
        LoginFormError: The page is not a login form (its status is in the message).
    """
    return await submit_form(
        http,
        authorize_url,
        {"username": username, "password": password},
        follow_redirects=follow_redirects,
    )
