"""Fuzzing the Unix-socket HTTP server: its parser directly, and the raw-socket fuzzer's quick run.

* :func:`~agent_identity.transports.http_parse.split_head` and
  :func:`~agent_identity.transports.http_parse.parse_head` on arbitrary bytes and on mutated
  valid heads: an :class:`~agent_identity.transports.http_parse.HttpError` with a status a
  client fault may cause (never an other exception), a message that never echoes the request,
  and, when a head is accepted, a :class:`~agent_identity.transports.http_parse.RequestHead`
  that h11 (an independent parser) reads the same way: method, target and body framing.
* Valid heads built from their parts parse back to those parts.
* :func:`~agent_identity.transports.http_messages.encode_response` on arbitrary responses: a
  ``ValueError`` or bytes that h11, as a client, reads back as the same response.
* ``scripts/fuzz/uds_http_fuzz.py``: its oracle (reply parser and judge) is checked on known
  bad answers, so a fuzzer that cannot fail cannot pass; then its ``--quick`` mode runs as a
  subprocess against the real server and must find nothing.

Hypothesis runs derandomized with no example database and bounded example counts, so a CI
run is reproducible and takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
import string
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote, urlencode

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent_identity.transports.http_messages import HttpResponse, encode_response
from agent_identity.transports.http_parse import HttpError, RequestHead, parse_head, split_head
from agent_identity.transports.uds_http import HttpLimits

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz" / "uds_http_fuzz.py"
#: The quick mode takes about ten seconds; this only keeps a hung run from hanging CI.
RUN_TIMEOUT = 180.0

LIMITS = HttpLimits()
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Put into every generated request; no error message may ever contain it.
MARKER = "Zq8xMarker"
SPLIT_STATUSES = frozenset({400, 414, 431})
PARSE_STATUSES = frozenset({400, 411, 414, 417, 431, 501, 505})
TCHAR = "!#$%&'*+.^_`|~-" + string.ascii_letters + string.digits
#: Fields the request builder sets itself (framing, connection handling).
RESERVED = frozenset({"host", "content-length", "transfer-encoding", "expect", "connection"})
INTERESTING = [
    b"\r\n", b"\r", b"\n", b"\r\n\r\n", b" ", b"\t", b":", b"\x00", b"\x7f", b"\x80", b"\xff",
    b"%", b"%ff", b"%00", b"?", b"#", b"&", b"=", b",", b"Host: y\r\n", b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Expect: 100-continue\r\n", b"Connection: close\r\n",
    b"HTTP/1.0", b"HTTP/2.0", b"999999999999999999999",
]  # fmt: skip


# --------------------------------------------------------------------------- valid heads

tokens = st.text(alphabet=TCHAR, min_size=1, max_size=10)
methods = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]) | tokens
# Any text but control characters (a decoded control character is refused, on purpose).
segments = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=8)
query_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
# Field values: visible ASCII, spaces and obs-text (sent as latin-1 bytes).
visible = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
)
field_names = tokens.filter(lambda name: name.lower() not in RESERVED)


@st.composite
def valid_heads(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A valid request head and the parsed form it must give."""
    method = draw(methods)
    parts = draw(st.lists(segments, max_size=4))
    path = "/" + "/".join(parts) + MARKER
    query = draw(st.dictionaries(query_text.filter(bool), query_text, max_size=6))
    target = "/" + "/".join(quote(part, safe="") for part in parts) + MARKER
    if query:
        target += "?" + urlencode(query)
    http10 = draw(st.booleans())
    fields = draw(st.lists(st.tuples(field_names, visible), max_size=8))
    fields.append(("X-Marker", MARKER))
    if not http10 or draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), ("Host", draw(visible)))
    length = draw(st.none() | st.integers(0, 10**17))
    if length is not None:
        fields.append(("Content-Length", str(length)))
    close = draw(st.booleans())
    if close:
        fields.append(
            ("Connection", draw(st.sampled_from(["close", "Close", "keep-alive, close"])))
        )
    lines = [f"{method} {target} HTTP/1.{0 if http10 else 1}".encode()]
    lines.extend(f"{name}: {value}".encode("latin-1") for name, value in fields)
    head = b"\r\n".join(lines) + b"\r\n"
    headers: dict[str, str] = {}
    for name, value in fields:
        key, text = name.lower(), value.strip(" \t")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    expected = {
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "content_length": length or 0,
        "keep_alive": not http10 and not close,
    }
    return head, expected


@st.composite
def mutated_heads(draw: st.DrawFn) -> bytes:
    """A valid head (with its blank line), then one to four mutations."""
    head, _ = draw(valid_heads())
    data = bytearray(head + b"\r\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 5))
        if op == 0 and data:
            at = min(at, len(data) - 1)
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            data[at:at] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=8))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 12))]
        elif op == 3:
            end = min(len(data), at + draw(st.integers(1, 40)))
            data[end:end] = data[at:end]
        elif op == 4:
            piece = draw(st.sampled_from(INTERESTING))
            data[at : at + len(piece)] = piece
        else:
            end = min(len(data), at + draw(st.integers(1, 20)))
            data[at:end] = data[at:end].swapcase()
    return bytes(data)


def as_dict(head: RequestHead) -> dict[str, Any]:
    return {
        "method": head.method,
        "path": head.path,
        "query": head.query,
        "headers": head.headers,
        "content_length": head.content_length,
        "keep_alive": head.keep_alive,
    }


@FUZZ
@given(valid_heads())
def test_valid_heads_parse_back_to_their_parts(built: tuple[bytes, dict[str, Any]]) -> None:
    head, expected = built
    rest = b"NEXT"
    assert split_head(b"\r\n" + head + b"\r\n" + rest, LIMITS) == (head, rest)
    assert as_dict(parse_head(head, LIMITS)) == expected


# --------------------------------------------------------------------------- any bytes


def check_error(error: HttpError, allowed: frozenset[int]) -> None:
    assert error.status in allowed, (error.status, error.message)
    assert error.code
    assert error.message.isascii()
    assert error.message.isprintable()
    assert MARKER not in error.message


def split_or_error(data: bytes) -> tuple[bytes, bytes] | None:
    try:
        head, rest = split_head(data, LIMITS)
    except HttpError as exc:
        check_error(exc, SPLIT_STATUSES)
        return None
    if head:
        assert head.endswith(b"\r\n")
        assert b"\r\n\r\n" not in head
        assert len(head) <= LIMITS.max_head_bytes
    else:
        assert b"\r\n\r\n" not in rest
    # Only leading empty lines (whole CRLF pairs) and the blank line are dropped.
    assert (head + b"\r\n" + rest if head else rest) == _drop_empty_lines(data)
    return head, rest


def _drop_empty_lines(data: bytes) -> bytes:
    while data.startswith(b"\r\n"):
        data = data[2:]
    return data


def parse_or_error(head: bytes) -> RequestHead | None:
    try:
        parsed = parse_head(head, LIMITS)
    except HttpError as exc:
        check_error(exc, PARSE_STATUSES)
        return None
    assert parsed.method
    assert all(char in TCHAR for char in parsed.method)
    assert parsed.path == "*" or parsed.path.startswith("/")
    assert not any(ord(char) < 0x20 or char == "\x7f" for char in parsed.path)
    assert 0 <= parsed.content_length < 10**18
    assert all(name == name.lower() for name in parsed.headers)
    assert not parsed.expect_continue or parsed.content_length > 0
    return parsed


@FUZZ
@given(st.binary(max_size=3000) | mutated_heads())
@example(b"\r\n" * 9000)
@example(b"GET /" + b"a" * 9000)
@example(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 17000 + b"\r\n\r\n")
@example(b"GET / HTTP/1.1\nHost: a\n\n")
def test_any_bytes_split_or_refused(data: bytes) -> None:
    split = split_or_error(data)
    if split is not None and split[0]:
        parse_or_error(split[0])


# --------------------------------------------------------------------------- against h11


def h11_reads(head: bytes) -> h11.Request | h11.RemoteProtocolError:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(head + b"\r\n")
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        return exc
    assert isinstance(event, h11.Request), event
    return event


@FUZZ
@given(mutated_heads())
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
def test_what_we_accept_h11_reads_the_same_way(data: bytes) -> None:
    """No smuggling gap: a head we accept, h11 accepts, with the same method and framing."""
    split = split_or_error(data)
    if split is None or not split[0]:
        return
    head = split[0]
    ours = parse_or_error(head)
    if ours is None:
        return
    theirs = h11_reads(head)
    assert isinstance(theirs, h11.Request), f"h11 refuses what we accept: {theirs}"
    assert theirs.method.decode("ascii") == ours.method
    fields = {name.decode("ascii"): value for name, value in theirs.headers}
    assert "transfer-encoding" not in fields  # we never accept a coded body
    length = fields.get("content-length")
    assert (int(length) if length is not None else 0) == ours.content_length
    target = theirs.target.decode("ascii")
    if target.startswith("/"):
        assert unquote(target.partition("?")[0]) == ours.path


# --------------------------------------------------------------------------- responses

header_names = st.text(alphabet=TCHAR, min_size=1, max_size=10) | st.text(max_size=6)
responses = st.builds(
    HttpResponse,
    status=st.integers(0, 1000) | st.sampled_from([200, 204, 304, 404, 503, 599]),
    body=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "", "text/plain; charset=utf-8"])
    | st.text(max_size=20),
    headers=st.lists(st.tuples(header_names, st.text(max_size=20)), max_size=4).map(tuple),
)


@FUZZ
@given(responses, st.booleans(), st.booleans())
def test_encoded_responses_read_back_with_h11(
    response: HttpResponse, keep_alive: bool, head_only: bool
) -> None:
    try:
        wire = encode_response(response, keep_alive, head_only=head_only)
    except ValueError:
        return
    assert 200 <= response.status <= 599
    client = h11.Connection(h11.CLIENT)
    method = "HEAD" if head_only else "GET"
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    client.receive_data(b"")
    start = client.next_event()
    assert isinstance(start, h11.Response), start
    assert start.status_code == response.status
    fields = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in start.headers]
    names = [name for name, _ in fields]
    assert names.count("date") == 1
    assert ("connection", "close") in fields or keep_alive
    body = b""
    while not isinstance(event := client.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    bodiless = response.status in {204, 304}
    assert body == (b"" if head_only or bodiless else response.body)
    if not bodiless:
        assert ("content-length", str(len(response.body))) in fields


# --------------------------------------------------------------------------- the fuzzer script


def load_fuzzer() -> ModuleType:
    """Import the fuzzer script as a module (once), to test its oracle."""
    name = "uds_http_fuzz"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


DATE = b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" + DATE + b"\r\n{}"
)
ERROR_BODY = b'{"error": "bad_request", "message": "no"}'
BAD = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    % len(ERROR_BODY)
    + DATE
    + b"Connection: close\r\n\r\n"
    + ERROR_BODY
)


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.0 200 OK\r\n" + DATE + b"Content-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  # no Date
        b"HTTP/1.1 200 OK\r\n" + DATE + b"\r\n",  # no Content-Length
        b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Length: 9\r\n\r\n{}",  # short body
        b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n1",
        b"HTTP/1.1 200 OK\r\n" + DATE + b"Bad Header\r\nContent-Length: 0\r\n\r\n",
        BAD + OK,  # bytes after Connection: close
        BAD.replace(b"application/json", b"text/html"),
        BAD.replace(b'"message": "no"', b'"message": "no", "x": ""'),
        b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n" % len(ERROR_BODY)
        + DATE
        + b"\r\n"
        + ERROR_BODY,  # no Allow
        b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\n" + OK,
        OK + b"garbage",
    ],
)
def test_the_fuzzer_rejects_malformed_answers(wire: bytes) -> None:
    fuzzer = load_fuzzer()
    with pytest.raises(fuzzer.MalformedReplyError):
        fuzzer.parse_replies(wire)


def test_the_fuzzer_judges_statuses() -> None:
    fuzzer = load_fuzzer()
    replies = fuzzer.parse_replies(b"HTTP/1.1 100 Continue\r\n\r\n" + OK + OK + BAD)
    assert [reply.status for reply in replies] == [100, 200, 200, 400]
    head = fuzzer.parse_replies(OK.replace(b"{}", b""), heads=[True])
    assert head[0].body == b""
    exact = fuzzer.Case("x", [], 1, [200, 200, 400])
    assert fuzzer.judge(exact, replies) is None
    assert "expected" in fuzzer.judge(fuzzer.Case("x", [], 1, [200, 400]), replies)
    loose = fuzzer.Case("x", [], 1, None, prefix=[200], max_replies=3)
    assert fuzzer.judge(loose, replies) is None
    assert "answers" in fuzzer.judge(fuzzer.Case("x", [], 1, None, max_replies=2), replies)
    boom = OK.replace(b"200 OK", b"500 Internal Server Error").replace(b"{}", b"")
    boom = boom.replace(b"Content-Length: 2", b"Content-Length: %d" % len(ERROR_BODY))
    crashed = fuzzer.parse_replies(boom + ERROR_BODY)
    assert "500" in fuzzer.judge(fuzzer.Case("x", [], 1, None, max_replies=1), crashed)
    early_close = fuzzer.parse_replies(OK.replace(DATE, DATE + b"Connection: close\r\n"))
    early_close_then_more = [*early_close, replies[1]]
    assert "before the last" in fuzzer.judge(
        fuzzer.Case("x", [], 2, [200, 200]), early_close_then_more
    )
    unclosed = fuzzer.parse_replies(
        BAD.replace(b"400 Bad Request", b"431 Too Large").replace(b"Connection: close\r\n", b"")
    )
    assert "Connection: close" in fuzzer.judge(fuzzer.Case("x", [], 1, [431]), unclosed)


def test_the_fuzzer_cases_are_reproducible_and_varied() -> None:
    fuzzer = load_fuzzer()
    one, two = fuzzer.Generator(7), fuzzer.Generator(7)
    a = [one.next_case() for _ in range(300)]
    b = [two.next_case() for _ in range(300)]
    assert [(c.kind, c.data, c.expect) for c in a] == [(c.kind, c.data, c.expect) for c in b]
    kinds = {case.kind for case in a}
    assert {"valid", "pipelined", "mutated", "framing", "target", "sizes"} <= kinds
    slow = {one.slow_case().kind for _ in range(60)}
    assert {"slow_trickle", "slow_head", "slow_body", "slow_idle", "slow_reader"} <= slow


@pytest.mark.slow
def test_quick_fuzz_run_finds_nothing() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert lines, completed.stderr[-3000:]
    figures = json.loads(lines[-1])
    explain = json.dumps(figures)[:4000]
    assert completed.returncode == 0, explain
    assert figures["requests"] >= 5000
    assert figures["crashes"] == 0, explain
    assert figures["malformed_replies"] == 0, explain
    assert figures["wrong_answers"] == 0, explain
    assert figures["hangs"] == 0, explain
    assert figures["good_client_failures"] == 0, explain
    assert figures["good_client_answers"] > 50, explain
    # The run hit the interesting paths: refusals of every kind, timeouts, successes.
    statuses = {int(status) for status in figures["status_counts"]}
    assert {200, 400, 404, 405, 408, 411, 413, 414, 431, 501, 505} <= statuses, explain
    assert 500 not in statuses, explain
    # Memory stays bounded: a few MB of allocator slack at most, not growth per request.
    assert figures["rss_growth_kb"] < 32 * 1024, explain
    assert figures["server"]["connections_open"] == 0, explain
