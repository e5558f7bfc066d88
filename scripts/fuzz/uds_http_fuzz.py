#!/usr/bin/env python3
"""Mutation fuzzer of the local identity server over its Unix socket, with a good client alongside.

Usage::

    python scripts/fuzz/uds_http_fuzz.py            # full: at least 100,000 requests
    python scripts/fuzz/uds_http_fuzz.py --quick    # CI: about 5,000 requests, seconds

**The server** runs in a child process (this script with ``--serve``), exactly as ``agent-identity
serve`` wires it: the sandbox, the real system (``open_identity``) with the seeded user logged in
through the provider's form, :class:`~agent_identity.system.local_server.LocalServerApp` behind
the real :class:`~agent_identity.transports.peer.PeerGate` (fail-closed, allowlist
``python*``) on :func:`~agent_identity.transports.uds_http.serve_uds_http`. Only the timeouts
of :class:`~agent_identity.transports.uds_http.HttpLimits` are shortened (one second), so a
slowloris case ends in a second instead of ten; every size limit is the production one. A
separate process keeps the fuzzer's memory out of the server's RSS, and the two use both CPUs.

**The fuzzer** (this process) opens one connection per case, sends its bytes (all at once, in
pieces, or trickled), half-closes, and reads until the server closes. Cases are generated from
a fixed seed (``--seed``), in the same order whatever the concurrency:

* *exact* cases, whose answer follows from RFC 9112 and the server's documented policy
  without running its parser: valid requests alone and pipelined (in one write or split at
  random points), leading empty lines, HTTP versions, methods, request targets, percent
  escapes and queries, Content-Length / Transfer-Encoding conflicts, bad header syntax (bare
  LF, obsolete folding, space before the colon, control characters), size limits at and just
  past each boundary (request line, head, header count, body), ``Expect``, truncations
  (no answer for the cut request), valid requests followed by garbage, the HTTP/2 preface
  and a TLS ClientHello;
* *loose* cases, random mutations of valid requests (bit flips, byte overwrites with
  interesting bytes, insertions, deletions, duplications of a range, splices of two requests,
  case changes) and pure garbage: any answer the server gives must still be well formed and
  a status client garbage may cause (never 500);
* *slow* cases, on their own tasks: a request trickled in under the head timeout (200), a
  head or a body stalled past its timeout (408, then close), an idle connection (closed
  without a word), a client that reads its pipelined answers late (all of them arrive).

**Every answer** must parse as HTTP/1.1: a status line, header lines, a ``Date``, a
``Content-Length`` (no body after ``HEAD``), a JSON ``{"error", "message"}`` body with
``application/json`` on every 4xx/5xx, ``Allow`` on a 405, ``Connection: close`` only on the
last answer, nothing after it; ``100 Continue`` may come before the answer to a request that
expects it.

**A well-behaved client** runs all the while: ``GET /token`` on a keep-alive connection plus
``GET /status`` and ``GET /tools`` on fresh ones, every few milliseconds; each must be a 200
with a JSON body within five seconds.

**Memory**: the server's RSS (``/proc/<pid>/status``) after a warm-up (the first tenth of the
requests, before the good client starts), at its peak while fuzzing, and at the end (after
the idle connections have timed out); the growth is end minus warm-up.

Output: one JSON line on stdout, ``{"requests", "crashes", "malformed_replies",
"status_counts", "rss_growth_kb", "good_client_answers", "good_client_failures", ...}`` plus
``wrong_answers`` (a status that contradicts the fault), ``hangs`` (no answer and no close
within ten seconds), the case counts by kind, RSS figures, the server's own statistics and up
to ten failing inputs (``failures``). ``crashes`` counts a dead or unreachable server and
every error the server logged (a handler exception is one). Progress goes to stderr.
Exit status: 0 when crashes, malformed replies, wrong answers, hangs and good-client failures
are all 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx
import trio

from agent_identity.config import parse_plugin_config
from agent_identity.sandbox import open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import DEV_USER, DEV_USER_PASSWORD, dev_plugin_config
from agent_identity.system import Identity, open_identity
from agent_identity.system.local_server import LocalServerApp
from agent_identity.transports.callback import (
    CALLBACK_PATH,
    DeferredApp,
    serve_callback_app,
)
from agent_identity.transports.peer import PeerGate
from agent_identity.transports.uds_http import HttpLimits, UdsHttpServer, serve_uds_http
from agent_identity.transports.uds_socket import open_unix_listener

FULL_REQUESTS: Final = 100_000
QUICK_REQUESTS: Final = 5_000
FULL_SLOW_CASES: Final = 160
QUICK_SLOW_CASES: Final = 16
WORKERS: Final = 24
SLOW_WORKERS: Final = 8
#: The server's timeouts (head, body, keep-alive, send), shortened from production's 10 s.
SERVER_TIMEOUT: Final = 1.0
CASE_TIMEOUT: Final = 10.0
GOOD_TIMEOUT: Final = 5.0
GOOD_PAUSE: Final = 0.003
START_TIMEOUT: Final = 90.0
STOP_TIMEOUT: Final = 30.0
MAX_FAILURES_SHOWN: Final = 10
MAX_INPUT_SHOWN: Final = 400
SCRIPT: Final = str(Path(__file__).resolve())

# The production size limits (HttpLimits defaults), restated so the oracle does not read them
# from the code under test.
MAX_REQUEST_LINE: Final = 8192
MAX_HEAD_BYTES: Final = 16384
MAX_HEADER_COUNT: Final = 64
MAX_BODY_BYTES: Final = 1 << 20
MAX_QUERY_FIELDS: Final = 64

MAIN: Final = "agent:main:main"
#: Statuses client garbage may cause: framing refusals and the app's own 4xx.
GARBAGE_STATUSES: Final = frozenset({200, 400, 404, 405, 411, 413, 414, 417, 431, 501, 505})
#: Statuses sent by the server itself (then it closes): each must carry ``Connection: close``.
CLOSING_STATUSES: Final = frozenset({400, 408, 411, 413, 414, 417, 431, 501, 503, 505})

_CRLF: Final = b"\r\n"
_INTERESTING: Final = (
    b"\x00", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b" ", b"\t", b":", b"%", b"%ff", b"%00",
    b"?", b"#", b"/", b"*", b"\x7f", b"\x80", b"\xff", b"\xc3\xa9", b",", b";", b"=", b"&",
    b"0", b"9" * 20, b"-1", b"\\", b'"', b"{", b"}", b"HTTP/1.1", b"Host: x\r\n",
    b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n",
    b"Expect: 100-continue\r\n", b"GET / HTTP/1.1\r\n",
)  # fmt: skip


# --------------------------------------------------------------------------- requests


def request(
    method: str,
    target: str,
    *,
    version: str = "HTTP/1.1",
    headers: Sequence[tuple[str, str]] = (("Host", "localhost"),),
    body: bytes | None = None,
) -> bytes:
    """One request's bytes; a body gets its ``Content-Length``."""
    lines = [f"{method} {target} {version}".encode()]
    lines.extend(f"{name}: {value}".encode() for name, value in headers)
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return _CRLF.join(lines) + _CRLF + _CRLF + (body or b"")


def tool_call(name: str, params: object, *, session: str | None = None) -> bytes:
    """``POST /tool/<name>`` with a JSON body."""
    document: dict[str, object] = {"params": params}
    if session is not None:
        document["session"] = session
    headers = (("Host", "localhost"), ("Content-Type", "application/json"))
    return request("POST", f"/tool/{name}", headers=headers, body=json.dumps(document).encode())


@dataclass(frozen=True, slots=True)
class Seed:
    """A valid request and the status the running system answers it with."""

    data: bytes
    status: int
    head: bool = False  # a HEAD request: the answer has no body
    closes: bool = False  # HTTP/1.0 or Connection: close: the last request of a connection


def seeds() -> list[Seed]:
    """The valid requests the cases are built from (read-only for the logged-in session)."""
    telegram = "agent:main:telegram:direct:9"
    return [
        Seed(request("GET", "/token"), 200),
        Seed(request("GET", "/token", headers=(("Host", "x"), ("Accept", "*/*"))), 200),
        Seed(request("GET", "/status", headers=(("Host", "l"), ("User-Agent", "fuzz/1"))), 200),
        Seed(request("GET", "/tools"), 200),
        Seed(request("GET", "/metrics"), 200),
        Seed(request("GET", "/session?session=agent%3Amain%3Amain"), 200),
        Seed(request("GET", f"/token?session={telegram}"), 404),
        Seed(request("GET", "/nowhere"), 404),
        Seed(request("POST", "/token", body=b""), 405),
        Seed(request("DELETE", "/status"), 405),
        Seed(request("GET", "/tool/identity_whoami"), 405),
        Seed(tool_call("identity_whoami", {}), 200),
        Seed(tool_call("identity_whoami", {}, session=MAIN), 200),
        Seed(tool_call("identity_list_risk_patterns", {}), 200),
        Seed(tool_call("identity_risk_check", {"command": "ls -la /tmp"}), 200),
        Seed(tool_call("identity_config", {}), 200),
        Seed(tool_call("identity_list_tips", {}), 200),
        Seed(tool_call("identity_list_credentials", {"page": "x"}), 400),
        Seed(tool_call("identity_no_such_tool", {}), 404),
        Seed(request("POST", "/tool/identity_whoami", body=b"{not json"), 400),
        Seed(request("POST", "/tool/identity_whoami", body=b'{"session": "\xce"}'), 400),
        Seed(request("GET", "/token", headers=(("Host", "a"), ("Connection", "keep-alive"))), 200),
        Seed(request("GET", "/token", version="HTTP/1.0", headers=()), 200, closes=True),
        Seed(request("GET", "/tools", headers=(("Host", "a"), ("Connection", "close"))), 200,
             closes=True),
    ]  # fmt: skip


HEAD_SEEDS: Final = (
    Seed(request("HEAD", "/token"), 200, head=True),
    Seed(request("HEAD", "/tools"), 200, head=True),
    Seed(request("HEAD", "/nowhere"), 404, head=True),
)


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One connection: what to send, and what may come back.

    ``expect`` lists the statuses in order (exact cases); ``None`` accepts any number of
    answers up to ``max_replies``, each with a status in :data:`GARBAGE_STATUSES` (loose
    cases), after the ``prefix`` statuses, which must come first.
    """

    kind: str
    chunks: list[tuple[bytes, float]]  # (bytes, seconds to wait before sending them)
    requests: int
    expect: list[int] | None = None
    prefix: list[int] = field(default_factory=list)
    heads: list[bool] = field(default_factory=list)  # per expected answer: after a HEAD?
    half_close: bool = True
    read_delay: float = 0.0
    max_replies: int = 0
    timeout: float = CASE_TIMEOUT

    @property
    def data(self) -> bytes:
        """Everything the case sends."""
        return b"".join(chunk for chunk, _ in self.chunks)


def _one(kind: str, data: bytes, expect: list[int] | None, *, max_replies: int = 0) -> Case:
    return Case(kind, [(data, 0.0)], 1, expect, max_replies=max_replies)


class Generator:
    """Deterministic cases from a seed (one ``random.Random`` drawn from in order)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not secrets
        self.seeds = seeds()
        self.plain = [s for s in self.seeds if not s.closes]
        self._makers: list[tuple[int, Callable[[], Case]]] = [
            (14, self.valid),
            (10, self.pipelined),
            (2, self.head),
            (2, self.leading_lines),
            (4, self.version),
            (4, self.method),
            (7, self.target),
            (7, self.framing),
            (6, self.header_syntax),
            (3, self.sizes),
            (5, self.truncated),
            (4, self.trailing_garbage),
            (1, self.foreign_protocol),
            (30, self.mutated),
            (3, self.garbage),
        ]
        self._weights = [weight for weight, _ in self._makers]

    def next_case(self) -> Case:
        """The next case."""
        maker = self.rng.choices(self._makers, self._weights)[0][1]
        return maker()

    def seed(self, *, closes: bool = False) -> Seed:
        """A random seed (one that keeps the connection open unless ``closes``)."""
        return self.rng.choice(self.seeds if closes else self.plain)

    # ------------------------------------------------------------ exact cases

    def valid(self) -> Case:
        chosen = self.seed(closes=True)
        return _one("valid", chosen.data, [chosen.status])

    def pipelined(self) -> Case:
        chosen = [self.seed() for _ in range(self.rng.randint(2, 8))]
        if self.rng.random() < 0.3:
            chosen.append(self.rng.choice([s for s in self.seeds if s.closes]))
        data = b"".join(s.data for s in chosen)
        cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1, 3)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        if self.rng.random() < 0.5:
            pieces = [data]
        chunks = [(piece, 0.0 if i == 0 else 0.002) for i, piece in enumerate(pieces)]
        return Case("pipelined", chunks, len(chosen), [s.status for s in chosen])

    def head(self) -> Case:
        chosen = [self.rng.choice(HEAD_SEEDS) for _ in range(self.rng.randint(1, 3))]
        tail = self.seed()
        data = b"".join(s.data for s in chosen) + tail.data
        heads = [True] * len(chosen) + [False]
        return Case("head", [(data, 0.0)], len(chosen) + 1,
                    [*(s.status for s in chosen), tail.status], heads=heads)  # fmt: skip

    def leading_lines(self) -> Case:
        chosen = self.seed()
        return _one("leading_crlf", _CRLF * self.rng.randint(1, 50) + chosen.data, [chosen.status])

    def version(self) -> Case:
        served = ["HTTP/1.2", "HTTP/1.9"]
        unsupported = ["HTTP/0.9", "HTTP/2.0", "HTTP/3.0", "HTTP/9.9", "HTTP/0.0"]
        malformed = ["HTTP/1.10", "HTTP/11", "HTTP/1", "http/1.1", "HTTPS/1.1", "HTTP/1.x",
                     "HTTP/1.1 ", " HTTP/1.1", "HTTP/ 1.1", "HTTP/1.1\t", "HTTP1.1",
                     ""]  # fmt: skip
        version = self.rng.choice(served + unsupported + malformed)
        data = request("GET", "/tools", version=version)
        if version in served:
            return _one("version", data, [200])
        if version in unsupported:
            return _one("version", data, [505])
        return _one("version", data, [400])

    def method(self) -> Case:
        path, allowed = self.rng.choice([("/token", 405), ("/tools", 405), ("/nowhere", 404),
                                         ("/tool/identity_whoami", 405)])  # fmt: skip
        unknown = ["FOO", "get", "Get", "PROPFIND", "M-SEARCH", "PATCH", "CONNECT", "TRACE",
                   "OPTIONS", "X" * 200, "!#$%&'*+.^_`|~"]  # fmt: skip
        invalid = ["GE T", "G\x00T", "GET\t", "", "GE(T", "GÉT", "GET:", "G\x7fT", "[GET]"]
        if self.rng.random() < 0.6:
            return _one("method", request(self.rng.choice(unknown), path), [allowed])
        return _one("method", request(self.rng.choice(invalid), path), [400])

    def target(self) -> Case:
        many = "&".join(f"p{n}=1" for n in range(MAX_QUERY_FIELDS))
        table: list[tuple[str, int]] = [
            ("/token?session=a&session=b", 400),
            ("/tools?x=1&x=1", 400),
            ("/%ff", 400),
            ("/tools%00", 400),
            ("/%0d%0aSet-Cookie:%20x", 400),
            ("/tok%en", 404),
            ("/%c3%a9", 404),
            ("/%74oken", 200),
            ("/token#frag", 400),
            ("token", 400),
            ("*", 400),
            ("http://localhost/token", 200),
            ("HTTP://LOCALHOST/tools?a=b", 200),
            ("https://x", 404),
            ("ftp://x/token", 400),
            ("//token", 404),
            ("/token?", 200),
            (f"/tools?{many}", 200),
            (f"/tools?{many}&last=1", 400),
            ("/tools?%ff=1", 400),
            ("/tools?a=%zz", 200),
            ("/tools?a=%ff", 400),
            ("/tools?=&=", 400),
            ("/tools/", 404),
            ("/TOKEN", 404),
            ("/tool/", 405),
            ("/tool/identity_whoami/../x", 405),
            ("/" + "a" * 4000, 404),
        ]
        target, status = self.rng.choice(table)
        if target == "*" and self.rng.random() < 0.5:
            return _one("target", request("OPTIONS", "*"), [404])
        return _one("target", request("GET", target), [status])

    def framing(self) -> Case:
        host = ("Host", "localhost")
        cases: list[tuple[list[tuple[str, str]], bytes, int, str]] = [
            ([host, ("Content-Length", "5"), ("Transfer-Encoding", "chunked")], b"", 400, "1.1"),
            ([host, ("Transfer-Encoding", "chunked"), ("Content-Length", "0")], b"", 400, "1.1"),
            ([host, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n", 411, "1.1"),
            ([host, ("Transfer-Encoding", "gzip, chunked")], b"", 411, "1.1"),
            ([host, ("Transfer-Encoding", "chunked, gzip")], b"", 501, "1.1"),
            ([host, ("Transfer-Encoding", "gzip")], b"", 501, "1.1"),
            ([host, ("Transfer-Encoding", "chunked")], b"", 400, "1.0"),
            ([host, ("Content-Length", "0"), ("Content-Length", "0")], b"", 400, "1.1"),
            ([host, ("Content-Length", "0, 0")], b"", 400, "1.1"),
            ([host, ("Content-Length", "+5")], b"", 400, "1.1"),
            ([host, ("Content-Length", "-1")], b"", 400, "1.1"),
            ([host, ("Content-Length", "0x5")], b"", 400, "1.1"),
            ([host, ("Content-Length", "1e2")], b"", 400, "1.1"),
            ([host, ("Content-Length", "")], b"", 400, "1.1"),
            ([host, ("Content-Length", "\u0661")], b"", 400, "1.1"),  # an Arabic-Indic digit
            ([host, ("Content-Length", "9" * 19)], b"", 400, "1.1"),
            ([host, ("Content-Length", "9" * 18)], b"", 413, "1.1"),
            ([host, ("Content-Length", str(MAX_BODY_BYTES + 1))], b"", 413, "1.1"),
            ([host, host], b"", 400, "1.1"),
            ([host, ("host", "other")], b"", 400, "1.1"),
            ([], b"", 400, "1.1"),
            ([host, ("Expect", "fancy")], b"", 417, "1.1"),
            ([("Expect", "fancy")], b"", 200, "1.0"),  # 1.0 clients' Expect is ignored
            ([host, ("Content-Length", "  0  ")], b"", 200, "1.1"),
            ([("Host", "")], b"", 200, "1.1"),
        ]
        headers, body, status, version = self.rng.choice(cases)
        target = "/tools"
        data = request("GET", target, version=f"HTTP/{version}", headers=headers) + body
        return _one("framing", data, [status])

    def header_syntax(self) -> Case:
        base = request("GET", "/tools", headers=(("Host", "localhost"), ("Accept", "*/*")))
        mutations: list[tuple[bytes, bytes, int]] = [
            (b"\r\n", b"\n", 400),  # bare LF everywhere
            (b"Host: localhost\r\n", b"Host: localhost\n", 400),
            (b"Accept: */*\r\n", b"Accept: */*\r\n x-folded\r\n", 400),
            (b"Accept: */*\r\n", b"Accept: */*\r\n\tx-folded\r\n", 400),
            (b"Accept:", b"Accept :", 400),
            (b"Accept:", b"Accept\t:", 400),
            (b"Accept:", b"Acc(ept:", 400),
            (b"Accept:", b"Acc\xc3\xa9pt:", 400),
            (b"Accept: */*", b"Accept: a\x00b", 400),
            (b"Accept: */*", b"Accept: a\x7fb", 400),
            (b"Accept: */*", b"Accept: a\rb", 400),
            (b"Accept: */*", b"Accept: a\x1bb", 400),
            (b"Accept: */*", b"Accept */*", 400),
            (b"Accept: */*", b": */*", 400),
            (b"Accept: */*", b"Accept: caf\xc3\xa9 \x80\xff", 200),
            (b"Accept: */*", b"Accept:\t*/*\t", 200),
            (b"Accept: */*", b"Accept: */*\r\nAccept: text/html", 200),
            (b"Accept: */*", b"X-Empty:", 200),
            (b"Accept: */*", b"ACCEPT: */*\r\nhOsT-X: y", 200),
            (b"GET /tools HTTP/1.1", b"GET  /tools HTTP/1.1", 400),
            (b"GET /tools HTTP/1.1", b"GET /tools  HTTP/1.1", 400),
            (b"GET /tools HTTP/1.1", b" GET /tools HTTP/1.1", 400),
            (b"GET /tools HTTP/1.1", b"GET /tools HTTP/1.1 extra", 400),
            (b"GET /tools HTTP/1.1", b"GET /tools HTTP/1.1\r", 400),
        ]
        old, new, status = self.rng.choice(mutations)
        return _one("header_syntax", base.replace(old, new), [status])

    def sizes(self) -> Case:
        choice = self.rng.randrange(9)
        # "GET " + target + " HTTP/1.1" is the request line: 13 bytes besides the target.
        if choice == 0:  # a request line exactly at the limit: served (an unknown path)
            data = request("GET", "/" + "a" * (MAX_REQUEST_LINE - 14))
            return _one("sizes", data, [404])
        if choice == 1:  # one byte over
            data = request("GET", "/" + "a" * (MAX_REQUEST_LINE - 13))
            return _one("sizes", data, [414])
        if choice in {2, 3}:  # a head exactly at the limit (CRLFs included, blank line not)
            over = choice - 2
            line = b"GET /tools HTTP/1.1\r\nHost: localhost\r\n"
            pad = MAX_HEAD_BYTES - len(line) - len(b"X-Pad: \r\n") + over
            data = line + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"
            return _one("sizes", data, [431 if over else 200])
        if choice in {4, 5}:  # the most header lines, and one more
            over = choice - 4
            extra = [(f"X-H{n}", "v") for n in range(MAX_HEADER_COUNT - 1 + over)]
            data = request("GET", "/tools", headers=[("Host", "l"), *extra])
            return _one("sizes", data, [431 if over else 200])
        if choice == 6:  # a huge request line with no end at all
            return _one("sizes", b"GET /" + b"x" * self.rng.randint(9000, 200_000), [414])
        if choice == 7:  # a body at the limit (not JSON) and one byte over
            over = self.rng.randrange(2)
            body = b"x" * (MAX_BODY_BYTES + over)
            data = request("POST", "/tool/identity_whoami", body=body)
            return _one("sizes", data, [413 if over else 400])
        data = b"GET /tools HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * self.rng.randint(
            17_000, 300_000
        )
        return _one("sizes", data, [431])

    def truncated(self) -> Case:
        before = [self.seed() for _ in range(self.rng.randrange(3))]
        cut = self.seed()
        # Cut inside the head (before its blank line ends) or inside the body.
        head_end = cut.data.index(b"\r\n\r\n") + 3
        body_len = len(cut.data) - head_end - 1
        if body_len > 0 and self.rng.random() < 0.3:
            at = head_end + 1 + self.rng.randrange(body_len)
        else:
            at = self.rng.randrange(1, head_end + 1)
        data = b"".join(s.data for s in before) + cut.data[:at]
        return Case("truncated", [(data, 0.0)], len(before) + 1, [s.status for s in before])

    def trailing_garbage(self) -> Case:
        before = [self.seed() for _ in range(self.rng.randint(1, 3))]
        tail = self.rng.choice([
            self.random_bytes(), b"GARBAGE\r\n\r\n", b"\x00" * 64, b"GET\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00", b" \r\n\r\n",
        ])  # fmt: skip
        data = b"".join(s.data for s in before) + tail
        return Case("trailing_garbage", [(data, 0.0)], len(before) + 1,
                    prefix=[s.status for s in before], max_replies=len(before) + 2)  # fmt: skip

    def foreign_protocol(self) -> Case:
        if self.rng.random() < 0.5:
            return _one("foreign", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [505])
        hello = bytes.fromhex("16030100a5010000a10303") + bytes(
            self.rng.randrange(256) for _ in range(160)
        )
        return _one("foreign", hello, None, max_replies=1)

    # ------------------------------------------------------------ loose cases

    def random_bytes(self) -> bytes:
        """Random bytes, half the time printable-ish lines."""
        size = self.rng.randint(1, 600)
        if self.rng.random() < 0.5:
            return bytes(self.rng.randrange(256) for _ in range(size))
        alphabet = b"GETPOSHADHTP/1.0 :\r\n\t%?&=#*abcxyz0123456789-_.~"
        return bytes(self.rng.choice(alphabet) for _ in range(size))

    def garbage(self) -> Case:
        data = self.random_bytes()
        return _one("garbage", data, None, max_replies=data.count(b"\r\n\r\n") + 1)

    def mutated(self) -> Case:
        chosen = [self.seed() for _ in range(self.rng.choice([1, 1, 1, 2, 3]))]
        data = bytearray(b"".join(s.data for s in chosen))
        for _ in range(self.rng.choice([1, 1, 1, 2, 3, 5])):
            self.mutate(data)
        sent = bytes(data)
        # A mutation may cut a request in two (a new blank line): one answer per blank line,
        # plus 100 Continue interim answers, at most.
        most = 2 * (sent.count(b"\r\n\r\n") + 1)
        return Case("mutated", [(sent, 0.0)], len(chosen), None, max_replies=most)

    def mutate(self, data: bytearray) -> None:
        """Apply one random mutation to ``data`` in place."""
        rng = self.rng
        op = rng.randrange(8)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a bit
            at = min(at, len(data) - 1)
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # overwrite with an interesting byte sequence
            piece = rng.choice(_INTERESTING)
            data[at : at + len(piece)] = piece
        elif op == 2:  # insert
            data[at:at] = rng.choice(_INTERESTING) if rng.random() < 0.7 else self.random_bytes()
        elif op == 3 and data:  # delete a range
            del data[at : at + rng.randint(1, 16)]
        elif op == 4 and data:  # duplicate a range (a header line, a CRLF ...)
            end = min(len(data), at + rng.randint(1, 64))
            data[end:end] = data[at:end]
        elif op == 5:  # splice in a piece of another request
            other = self.seed().data
            start = rng.randrange(len(other))
            data[at:at] = other[start : start + rng.randint(1, len(other))]
        elif op == 6 and data:  # change the case of a range
            end = min(len(data), at + rng.randint(1, 32))
            data[at:end] = data[at:end].swapcase()
        else:  # repeat a random byte many times (long lines, long tokens)
            byte = data[min(at, len(data) - 1) : min(at, len(data) - 1) + 1] or b"a"
            data[at:at] = byte * rng.randint(100, 20_000)

    # ------------------------------------------------------------ slow cases

    def slow_case(self) -> Case:
        """A case for the slow workers: trickles, stalls and late readers."""
        kind = self.rng.randrange(6)
        chosen = self.seed()
        data = chosen.data
        if kind == 0:  # trickled well within the head timeout: answered
            pieces = _split(data, self.rng.randint(5, 15), self.rng)
            chunks = [(piece, 0.0 if i == 0 else 0.01) for i, piece in enumerate(pieces)]
            return Case("slow_trickle", chunks, 1, [chosen.status])
        if kind == 1:  # a head that stops half-way: 408 once the head timeout passes
            cut = self.rng.randrange(1, data.index(b"\r\n\r\n") + 3)
            return Case("slow_head", [(data[:cut], 0.0)], 1, [408], half_close=False, timeout=5)
        if kind == 2:  # a body that never completes: 408
            head = request("POST", "/tool/identity_whoami", body=b"{}").replace(
                b"Content-Length: 2", b"Content-Length: 20"
            )
            return Case("slow_body", [(head, 0.0)], 1, [408], half_close=False, timeout=5)
        if kind == 3:  # connect and say nothing: closed without an answer
            return Case("slow_idle", [], 0, [], half_close=False, timeout=5)
        if kind == 4:  # one request, then idle: answered, then closed silently
            return Case("slow_keepalive", [(data, 0.0)], 1, [chosen.status], half_close=False,
                        timeout=5)  # fmt: skip
        many = [self.seed() for _ in range(self.rng.randint(20, 120))]
        return Case("slow_reader", [(b"".join(s.data for s in many), 0.0)], len(many),
                    [s.status for s in many], read_delay=0.3)  # fmt: skip


def _split(data: bytes, parts: int, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(parts, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# --------------------------------------------------------------------------- replies


class MalformedReplyError(Exception):
    """An answer that is not well-formed HTTP/1.1 (or breaks the server's own rules)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One parsed answer."""

    status: int
    headers: dict[str, str]
    body: bytes


_STATUS_LINE: Final = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) ([\t\x20-\x7e\x80-\xff]*)\r\n")
_HEADER_LINE: Final = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\t\x20-\x7e\x80-\xff]*)\r\n")
_SINGLE: Final = frozenset({"content-length", "content-type", "connection", "date"})


def parse_replies(data: bytes, heads: Sequence[bool] = ()) -> list[Reply]:
    """Parse every answer in ``data``; ``heads[i]`` says the i-th final answer has no body.

    Raises:
        MalformedReplyError: Anything not well formed, or bytes after a closing answer.
    """
    replies: list[Reply] = []
    pos = 0
    finals = 0
    while pos < len(data):
        line = _STATUS_LINE.match(data, pos)
        if line is None:
            raise MalformedReplyError(f"bad status line at byte {pos}")
        status = int(line.group(1))
        pos = line.end()
        headers: dict[str, str] = {}
        while not data.startswith(_CRLF, pos):
            header = _HEADER_LINE.match(data, pos)
            if header is None:
                raise MalformedReplyError(f"bad header line at byte {pos}")
            name = header.group(1).decode("ascii").lower()
            if name in headers and name in _SINGLE:
                raise MalformedReplyError(f"two {name} fields")
            headers[name] = header.group(2).decode("latin-1").rstrip(" \t")
            pos = header.end()
        pos += 2
        if status < 200:
            if status != 100 or headers:
                raise MalformedReplyError(f"unexpected interim answer {status}")
            replies.append(Reply(status, headers, b""))
            continue
        body, pos = _body(
            data, pos, status, headers, heads[finals] if finals < len(heads) else False
        )
        replies.append(Reply(status, headers, body))
        finals += 1
        if headers.get("connection", "").lower() == "close" and pos != len(data):
            raise MalformedReplyError("bytes after an answer with Connection: close")
    return replies


def _body(
    data: bytes, pos: int, status: int, headers: dict[str, str], head: bool
) -> tuple[bytes, int]:
    if "date" not in headers:
        raise MalformedReplyError(f"{status} without a Date")
    length_text = headers.get("content-length")
    if status in {204, 304}:
        if length_text is not None:
            raise MalformedReplyError(f"{status} with a Content-Length")
        return b"", pos
    if length_text is None or not length_text.isdigit():
        raise MalformedReplyError(f"{status} without a valid Content-Length")
    length = 0 if head else int(length_text)
    if len(data) - pos < length:
        raise MalformedReplyError(f"{status}: body shorter than its Content-Length")
    body = data[pos : pos + length]
    if not head:
        _check_body(status, headers, body)
    return body, pos + length


def _check_body(status: int, headers: dict[str, str], body: bytes) -> None:
    kind = headers.get("content-type", "")
    if status == 405 and "allow" not in headers:
        raise MalformedReplyError("405 without Allow")
    if status >= 400:
        if kind != "application/json":
            raise MalformedReplyError(f"{status} with Content-Type {kind!r}")
        try:
            document = json.loads(body)
        except ValueError:
            raise MalformedReplyError(f"{status} with a body that is not JSON") from None
        if not (
            isinstance(document, dict)
            and set(document) == {"error", "message"}
            and all(isinstance(value, str) and value for value in document.values())
        ):
            raise MalformedReplyError(f"{status} body is not {{error, message}}")
    elif kind == "application/json":
        try:
            json.loads(body)
        except ValueError:
            raise MalformedReplyError(f"{status} with a body that is not JSON") from None


def judge(case: Case, replies: list[Reply]) -> str | None:
    """Why the answers contradict the case, or ``None`` when they fit."""
    finals = [r for r in replies if r.status >= 200]
    statuses = [r.status for r in finals]
    for index, reply in enumerate(finals):
        closing = reply.headers.get("connection", "").lower() == "close"
        if reply.status in CLOSING_STATUSES and reply.status != 400 and not closing:
            return f"{reply.status} without Connection: close"
        if closing and index != len(finals) - 1:
            return "Connection: close before the last answer"
    if case.expect is not None:
        if statuses != case.expect:
            return f"statuses {statuses}, expected {case.expect}"
        return None
    if statuses[: len(case.prefix)] != case.prefix:
        return f"statuses {statuses}, expected to start with {case.prefix}"
    if len(finals) > case.max_replies:
        return f"{len(finals)} answers to at most {case.max_replies} requests"
    odd = [s for s in statuses[len(case.prefix) :] if s not in GARBAGE_STATUSES]
    if odd:
        return f"status {odd[0]} for client garbage"
    return None


# --------------------------------------------------------------------------- wire


async def connect(path: str) -> trio.socket.SocketType:
    """A connection to the server's socket."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


async def exchange(path: str, case: Case) -> tuple[bytes, bool]:
    """Play ``case`` on a new connection; (everything received, whether it timed out)."""
    received: list[bytes] = []
    sock = await connect(path)
    with sock, trio.move_on_after(case.timeout) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_send_case, sock, case)
            if case.read_delay:
                await trio.sleep(case.read_delay)
            while True:
                try:
                    chunk = await sock.recv(1 << 16)
                except OSError:  # a reset after the answer: the server has closed
                    break
                if not chunk:
                    break
                received.append(chunk)
            nursery.cancel_scope.cancel()  # the server closed: stop sending
    return b"".join(received), scope.cancelled_caught


async def _send_case(sock: trio.socket.SocketType, case: Case) -> None:
    try:
        for data, pause in case.chunks:
            if pause:
                await trio.sleep(pause)
            view = memoryview(data)
            while view:
                view = view[await sock.send(view) :]
        if case.half_close:
            sock.shutdown(socket.SHUT_WR)
    except OSError:  # the server refused and closed before taking everything: expected
        return


# --------------------------------------------------------------------------- the run


@dataclass
class Tally:
    """What the run found."""

    requests: int = 0
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    malformed: int = 0
    wrong: int = 0
    hangs: int = 0
    unreachable: int = 0
    good_answers: int = 0
    good_failures: int = 0
    good_worst_ms: float = 0.0
    failures: list[dict[str, object]] = field(default_factory=list)

    def fail(self, case: Case | None, what: str, reason: str, data: bytes = b"") -> None:
        """Keep the first few failing inputs for the report."""
        if len(self.failures) < MAX_FAILURES_SHOWN:
            sent = case.data if case is not None else b""
            self.failures.append(
                {
                    "kind": case.kind if case is not None else "good_client",
                    "what": what,
                    "reason": reason,
                    "input": repr(sent[:MAX_INPUT_SHOWN]),
                    "input_bytes": len(sent),
                    "reply": repr(data[:MAX_INPUT_SHOWN]),
                }
            )


async def run_case(path: str, case: Case, tally: Tally) -> None:
    """Play one case and account for it."""
    tally.cases[case.kind] += 1
    tally.requests += case.requests
    try:
        data, hung = await exchange(path, case)
    except OSError as exc:
        tally.unreachable += 1
        tally.fail(case, "unreachable", f"{type(exc).__name__}: {exc}")
        return
    if hung:
        tally.hangs += 1
        tally.fail(case, "hang", f"no close within {case.timeout} s", data)
        return
    try:
        replies = parse_replies(data, case.heads)
    except MalformedReplyError as exc:
        tally.malformed += 1
        tally.fail(case, "malformed", str(exc), data)
        return
    tally.statuses.update(r.status for r in replies)
    reason = judge(case, replies)
    if reason is not None:
        tally.wrong += 1
        tally.fail(case, "wrong_answer", reason, data)


async def fuzz_worker(path: str, cases: Iterator[Case], tally: Tally) -> None:
    """Play cases until there are none left."""
    for case in cases:
        await run_case(path, case, tally)


def take_cases(gen: Generator, budget: int) -> Iterator[Case]:
    """Cases holding ``budget`` requests in all (shared by the workers: one fixed order)."""
    planned = 0
    while planned < budget:
        case = gen.next_case()
        planned += case.requests
        yield case


async def good_client(path: str, tally: Tally, done: trio.Event) -> None:
    """A well-behaved client: keeps asking, and every answer must be a 200 with JSON."""
    sock: trio.socket.SocketType | None = None
    buf = b""
    turn = 0
    while not done.is_set():
        turn += 1
        target = "/token" if turn % 3 else ("/status" if turn % 2 else "/tools")
        fresh = target != "/token"
        started = time.perf_counter()
        try:
            with trio.fail_after(GOOD_TIMEOUT):
                if fresh:
                    reply = await _good_fresh(path, target)
                else:
                    if sock is None:
                        sock, buf = await connect(path), b""
                    reply, buf = await _good_keepalive(sock, buf)
            ok = reply.status == 200 and reply.headers.get("content-type") == "application/json"
            json.loads(reply.body)
        except (OSError, trio.TooSlowError, MalformedReplyError, ValueError) as exc:
            ok = False
            tally.fail(None, "good_client", f"{target}: {type(exc).__name__}: {exc}")
            if sock is not None:
                sock.close()
            sock = None
        elapsed = (time.perf_counter() - started) * 1000
        tally.good_worst_ms = max(tally.good_worst_ms, elapsed)
        if ok:
            tally.good_answers += 1
        else:
            tally.good_failures += 1
        await trio.sleep(GOOD_PAUSE)
    if sock is not None:
        sock.close()


_GOOD_TOKEN: Final = request("GET", "/token")


async def _good_keepalive(sock: trio.socket.SocketType, buf: bytes) -> tuple[Reply, bytes]:
    await sock.send(_GOOD_TOKEN)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            match = re.search(rb"\r\nContent-Length: (\d+)\r\n", buf[: end + 2])
            if match is None:
                raise MalformedReplyError("no Content-Length")
            total = end + 4 + int(match.group(1))
            if len(buf) >= total:
                return parse_replies(buf[:total])[0], buf[total:]
        chunk = await sock.recv(1 << 16)
        if not chunk:
            raise MalformedReplyError("the server closed a keep-alive connection")
        buf += chunk


async def _good_fresh(path: str, target: str) -> Reply:
    case = Case(
        "good", [(request("GET", target, headers=(("Host", "l"), ("Connection", "close"))), 0.0)], 1
    )
    data, hung = await exchange(path, case)
    if hung:
        raise trio.TooSlowError
    replies = parse_replies(data)
    if len(replies) != 1:
        raise MalformedReplyError(f"{len(replies)} answers to one request")
    return replies[0]


def rss_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in kB (0 once the process is gone)."""
    figures: dict[str, int] = {"VmRSS": 0, "VmHWM": 0}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return figures
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            figures[name] = int(value.split()[0])
    return figures


def progress(message: str) -> None:
    """Progress on stderr (stdout holds the one JSON line)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class ChildServer:
    """The server process and its pipes."""

    process: trio.Process
    lines: trio.abc.ReceiveStream
    info: dict[str, Any]
    pending: bytes = b""

    async def line(self) -> dict[str, Any]:
        """The next JSON line the child prints."""
        while b"\n" not in self.pending:
            chunk = await self.lines.receive_some()
            if not chunk:
                raise RuntimeError("the server process ended early")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        value = json.loads(line)
        if not isinstance(value, dict):
            raise TypeError("the server printed something else than a JSON object")
        return value


async def start_server(folder: Path, nursery: trio.Nursery) -> ChildServer:
    """Start this script in ``--serve`` mode and wait for its ready line."""
    socket_path = folder / "identity.sock"
    command = [sys.executable, SCRIPT, "--serve", str(folder)]
    process = await nursery.start(
        partial(
            trio.run_process, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False
        )
    )
    if process.stdout is None:
        raise RuntimeError("the server process has no stdout pipe")
    child = ChildServer(process, process.stdout, {})
    with trio.fail_after(START_TIMEOUT):
        child.info = await child.line()
    child.info.setdefault("socket", str(socket_path))
    return child


async def stop_server(child: ChildServer) -> tuple[dict[str, Any], int]:
    """Close the server's stdin (it prints its statistics and stops); its figures and exit code.

    A server that died, or does not answer, is killed and reported with ``stop_error``.
    """
    try:
        if child.process.stdin is not None:
            await child.process.stdin.aclose()
        with trio.fail_after(STOP_TIMEOUT):
            stats = await child.line()
    except (RuntimeError, ValueError, TypeError, OSError, trio.TooSlowError) as exc:
        stats = {"stop_error": f"{type(exc).__name__}: {exc}"}
        child.process.kill()
    with trio.fail_after(STOP_TIMEOUT):
        code = await child.process.wait()
    return stats, code


async def fuzz(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run: server up, warm-up, fuzzing alongside the good client, server down."""
    budget = args.requests or (QUICK_REQUESTS if args.quick else FULL_REQUESTS)
    slow_budget = QUICK_SLOW_CASES if args.quick else FULL_SLOW_CASES
    folder = Path(tempfile.mkdtemp(prefix="uds-fuzz-", dir="/tmp"))
    started = time.perf_counter()
    tally = Tally()
    try:
        async with trio.open_nursery() as nursery:
            child = await start_server(folder, nursery)
            path = str(child.info["socket"])
            pid = int(child.process.pid)
            progress(f"server ready (pid {pid}) in {time.perf_counter() - started:.1f} s")
            gen = Generator(args.seed)
            slow_gen = Generator(args.seed + 1)
            # Warm-up: the first tenth of the requests, so caches and pools reach their size.
            warm = list(take_cases(gen, budget // 10))
            async with trio.open_nursery() as warmers:
                shared = iter(warm)
                for _ in range(WORKERS):
                    warmers.start_soon(fuzz_worker, path, shared, tally)
            rss_start = rss_kb(pid)
            done = trio.Event()
            peak = [rss_start["VmRSS"]]
            async with trio.open_nursery() as inner:
                inner.start_soon(good_client, path, tally, done)
                inner.start_soon(_sample_rss, pid, peak, done)
                async with trio.open_nursery() as workers:
                    cases = take_cases(gen, budget - tally.requests)
                    slow = iter([slow_gen.slow_case() for _ in range(slow_budget)])
                    for _ in range(WORKERS):
                        workers.start_soon(fuzz_worker, path, cases, tally)
                    for _ in range(SLOW_WORKERS):
                        workers.start_soon(fuzz_worker, path, slow, tally)
                    workers.start_soon(_report_progress, tally, budget, done)
                done.set()
            await trio.sleep(SERVER_TIMEOUT * 2)  # idle keep-alive connections time out
            rss_end = rss_kb(pid)
            stats, code = await stop_server(child)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    server_errors = int(stats.get("errors_logged", 0))
    crashes = (code != 0) + tally.unreachable + server_errors
    return {
        "requests": tally.requests,
        "crashes": crashes,
        "malformed_replies": tally.malformed,
        "status_counts": {str(k): v for k, v in sorted(tally.statuses.items())},
        "rss_growth_kb": rss_end["VmRSS"] - rss_start["VmRSS"],
        "good_client_answers": tally.good_answers,
        "good_client_failures": tally.good_failures,
        "wrong_answers": tally.wrong,
        "hangs": tally.hangs,
        "cases": dict(sorted(tally.cases.items())),
        "connections": sum(tally.cases.values()),
        "rss_start_kb": rss_start["VmRSS"],
        "rss_end_kb": rss_end["VmRSS"],
        "rss_peak_kb": max(peak[0], rss_end["VmRSS"]),
        "good_client_worst_ms": round(tally.good_worst_ms, 1),
        "server_exit_code": code,
        "server": stats,
        "seconds": round(time.perf_counter() - started, 1),
        "seed": args.seed,
        "failures": tally.failures,
    }


async def _sample_rss(pid: int, peak: list[int], done: trio.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], rss_kb(pid)["VmRSS"])
        with trio.move_on_after(0.5):
            await done.wait()


async def _report_progress(tally: Tally, budget: int, done: trio.Event) -> None:
    while tally.requests < budget and not done.is_set():
        with trio.move_on_after(5):
            await done.wait()
        progress(f"{tally.requests}/{budget} requests, {tally.good_answers} good answers")


# --------------------------------------------------------------------------- the server


class _ErrorCounter(logging.Handler):
    """Counts the server's error records (a handler crash logs one) and keeps a few."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < MAX_FAILURES_SHOWN:
            self.first.append(f"{record.name}: {record.getMessage()}"[:300])


def _emit_line(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def _log_in(ident: Identity, browser: httpx.AsyncClient) -> None:
    """Log the seeded user in under the main session, through the provider's form."""
    if ident.login_flow is None:
        raise RuntimeError("the system has no login flow")
    url = await ident.login_flow.start_login(MAIN)
    page = await submit_login_form(browser, url, username=DEV_USER, password=DEV_USER_PASSWORD)
    if page.status_code != 200 or await ident.sessions.get(MAIN) is None:
        raise RuntimeError(f"the login failed: HTTP {page.status_code}")


async def _serve_until_stdin_closes(ident: Identity, path: Path, errors: _ErrorCounter) -> None:
    """Serve the local server at ``path``; print statistics once stdin closes, then stop."""
    limits = HttpLimits(
        keep_alive_timeout=SERVER_TIMEOUT,
        head_timeout=SERVER_TIMEOUT,
        body_timeout=SERVER_TIMEOUT,
        send_timeout=SERVER_TIMEOUT,
    )
    gate = PeerGate(("python*",), fail_open=False)
    with open_unix_listener(path) as listener:
        async with trio.open_nursery() as nursery:
            server: UdsHttpServer = await nursery.start(
                partial(serve_uds_http, listener, LocalServerApp(ident), gate=gate, limits=limits)
            )
            _emit_line({"socket": str(path), "pid": os.getpid()})
            stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            while await stdin.receive_some():
                pass
            with trio.move_on_after(5):
                # The server keeps a counter, not an event: poll it while connections drain.
                while server.statistics().connections_open:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            stats = server.statistics()
            _emit_line(
                {
                    "connections_accepted": stats.connections_accepted,
                    "connections_open": stats.connections_open,
                    "connections_refused": stats.connections_refused,
                    "requests": stats.requests,
                    "handler_errors": stats.handler_errors,
                    "timeouts": stats.timeouts,
                    "responses": {str(k): v for k, v in sorted(stats.responses.items())},
                    "errors_logged": errors.count,
                    "first_errors": errors.first,
                }
            )
            nursery.cancel_scope.cancel()


async def serve(folder: Path) -> None:
    """The server process: sandbox, system, login, then the local server until stdin closes."""
    errors = _ErrorCounter()
    logging.getLogger().addHandler(errors)  # also keeps stderr quiet (no last-resort handler)
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        trio.open_nursery() as nursery,
    ):
        late = DeferredApp()
        base = await nursery.start(serve_callback_app, late, "127.0.0.1", 0)
        raw = dev_plugin_config(sb, callback_url=f"{base}{CALLBACK_PATH}", data_dir=folder / "data")
        async with open_identity(parse_plugin_config(raw), environ={}) as ident:
            late.app = ident.asgi_app
            await _log_in(ident, browser)
            await _serve_until_stdin_closes(ident, folder / "identity.sock", errors)
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 5,000 requests (CI)")
    parser.add_argument("--requests", type=int, help="requests to send (overrides the mode)")
    parser.add_argument("--seed", type=int, default=20_240_601, help="the case generator's seed")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child process
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fuzzer (or, with ``--serve``, the server it starts)."""
    args = parse_args(argv)
    if args.serve is not None:
        trio.run(serve, args.serve)
        return 0
    result = trio.run(fuzz, args)
    print(json.dumps(result), flush=True)
    bad = ("crashes", "malformed_replies", "wrong_answers", "hangs", "good_client_failures")
    return 1 if any(result[name] for name in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
