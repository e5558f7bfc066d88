"""A tiny form-following browser: drives a provider's login pages with httpx, no JavaScript.

It follows redirects by hand, fills the first form of each page (hidden fields kept, text
inputs named ``username``/``login`` get the user, password inputs the password) and stops at
the first redirect to the callback, returning the callback's query. It works for the
sandbox's login form and for oidc-provider's devInteractions (login, then consent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

_MAX_STEPS = 16


@dataclass
class Form:
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.forms.append(Form(action=found.get("action", "")))
        elif tag == "input" and self.forms and "name" in found:
            form, kind, name = self.forms[-1], found.get("type", "text"), found["name"]
            if kind == "hidden":
                form.fields[name] = found.get("value", "")
            elif kind == "password":
                form.passwords.append(name)
            elif kind == "text":
                form.texts.append(name)


def read_form(page: httpx.Response) -> Form | None:
    parser = _FormParser()
    parser.feed(page.text)
    if not parser.forms:
        return None
    form = parser.forms[0]
    form.action = urljoin(str(page.url), form.action)
    return form


class LoginFailedError(AssertionError):
    """The provider showed a page the browser cannot get past."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"stuck at HTTP {response.status_code} {response.url}: {response.text[:400]}"
        )
        self.response = response


@dataclass
class Browser:
    """A user agent with its own cookie jar."""

    client: httpx.AsyncClient
    callback: str
    username: str = "alice"
    password: str = "alice-password"
    visited: list[str] = field(default_factory=list)

    async def login(self, url: str) -> dict[str, str]:
        """Open the authorization URL, log in, and return the callback's query."""
        response = await self.client.get(url)
        for _ in range(_MAX_STEPS):
            self.visited.append(str(response.url))
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.split("?", 1)[0] == self.callback:
                    return dict(parse_qsl(urlsplit(location).query))
                response = await self.client.get(location)
                continue
            form = read_form(response) if response.status_code == 200 else None
            if form is None:
                raise LoginFailedError(response)
            data = dict(form.fields)
            for name in form.texts:
                if name in {"username", "login"}:
                    data[name] = self.username
            for name in form.passwords:
                data[name] = self.password
            response = await self.client.post(form.action, data=data)
        raise LoginFailedError(response)
