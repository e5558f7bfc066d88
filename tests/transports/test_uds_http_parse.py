"""The request-head parser and response encoder of the Unix-socket HTTP server (no sockets)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_identity.transports.http_messages import HttpResponse, encode_response, json_error
from agent_identity.transports.http_parse import HttpError, RequestHead, parse_head, split_head
from agent_identity.transports.uds_http import HttpLimits

LINE = 64
HEAD = 256
COUNT = 4
LIMITS = HttpLimits(max_request_line=LINE, max_head_bytes=HEAD, max_header_count=COUNT)


def split(buf: bytes) -> tuple[bytes, bytes]:
    return split_head(buf, LIMITS)


def parse(raw: bytes) -> RequestHead:
    head, rest = split(raw)
    assert head, "the head should be complete"
    assert rest == b""
    return parse_head(head, LIMITS)


def split_and_parse(raw: bytes) -> RequestHead | None:
    head, _ = split(raw)
    return parse_head(head, LIMITS) if head else None


def refused(raw: bytes) -> HttpError:
    with pytest.raises(HttpError) as info:
        split_and_parse(raw)
    return info.value


# --------------------------------------------------------------------------- good heads


def test_a_simple_get() -> None:
    head = parse(b"GET /token?session=a%20b+c HTTP/1.1\r\nHost: x\r\nX-Thing:  v  \r\n\r\n")
    assert head.method == "GET"
    assert head.path == "/token"
    assert head.query == {"session": "a b c"}
    assert head.headers == {"host": "x", "x-thing": "v"}
    assert head.content_length == 0
    assert head.keep_alive is True
    assert head.expect_continue is False


def test_header_names_are_lower_cased_and_repeats_joined() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHOST: x\r\nAccept: a\r\naccept: b\r\n\r\n")
    assert head.headers == {"host": "x", "accept": "a, b"}


def test_an_empty_header_value_is_kept() -> None:
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n").headers["x-empty"] == ""


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", True),  # a later 1.x is read as 1.1
    ],
)
def test_keep_alive(raw: bytes, keep_alive: bool) -> None:
    assert parse(raw).keep_alive is keep_alive


def test_a_body_length() -> None:
    head = parse(b"POST /tool/x HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
    assert head.content_length == 12


def test_expect_continue_only_matters_with_a_body() -> None:
    with_body = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
    assert parse(with_body).expect_continue is True
    without = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
    assert parse(without).expect_continue is False
    # RFC 9110 10.1.1: an HTTP/1.0 client cannot mean it.
    old = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    assert parse(old).expect_continue is False


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://localhost/token?session=s", "/token"),
        (b"HTTPS://localhost", "/"),
        (b"/a%2Fb/%C3%A9", "/a/b/\u00e9"),
    ],
)
def test_request_targets(target: bytes, path: str) -> None:
    assert parse(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n").path == path


def test_options_star() -> None:
    assert parse(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").path == "*"


def test_split_keeps_what_follows_the_head() -> None:
    first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\n"
    head, rest = split(b"\r\n\r\n" + first + second)  # empty lines before a request are skipped
    assert head == first[:-2]
    assert rest == second
    assert split(rest) == (b"", rest)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"GET /" + b"a" * LINE + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request line"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * COUNT + b"\r\n", 431, "too many"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBig: " + b"v" * HEAD + b"\r\n\r\n", 431, "too large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folding"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA\rB: c\r\n\r\n", 400, "bare CR"),
        (b"GET / HTTP/1.1\r\nHost: x\nA: b\r\n\r\n", 400, "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "whitespace"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", 400, "no colon"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA(b): c\r\n\r\n", 400, "header name"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n", 400, "header value"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one host"),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
        (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
        (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, "request line"),
        (b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
        (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.1"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/1.1"),
        (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, "HTTP/1.1"),
        (b"GET token HTTP/1.1\r\nHost: x\r\n\r\n", 400, "target"),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "target"),
        (b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "target"),
        (b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "fragment"),
        (b"GET /%FF HTTP/1.1\r\nHost: x\r\n\r\n", 400, "UTF-8"),
        (b"GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "control"),
        (b"GET /?q=%FF HTTP/1.1\r\nHost: x\r\n\r\n", 400, "UTF-8"),
        (b"GET /?s=a&s=b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "repeated"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417, "100-continue"),
    ],
)
def test_malformed_heads_are_refused(raw: bytes, status: int, words: str) -> None:
    error = refused(raw)
    assert error.status == status
    assert words.lower() in error.message.lower()


@pytest.mark.parametrize(
    "value", [b"+5", b"5 5", b"0x5", b"-1", b"5,5", "\u00b2".encode("latin-1")]
)
def test_content_length_must_be_plain_digits(value: bytes) -> None:
    error = refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n")
    assert (error.status, error.message) == (400, "invalid Content-Length")


def test_too_many_query_parameters() -> None:
    target = "&".join(f"p{i}" for i in range(65)).encode()
    head = b"GET /?" + target + b" HTTP/1.1\r\nHost: x\r\n"
    long_lines = HttpLimits(max_request_line=1000)
    with pytest.raises(HttpError, match="too many query parameters"):
        parse_head(head, long_lines)
    fewer = b"GET /?p1&p2 HTTP/1.1\r\nHost: x\r\n"
    assert parse_head(fewer, long_lines).query == {
        "p1": "",
        "p2": "",
    }


def test_content_length_too_many_digits() -> None:
    error = refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 19 + b"\r\n\r\n")
    assert error.status == 400


def test_a_second_content_length_is_refused_even_when_equal() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
    assert refused(raw).status == 400


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),  # smuggling pair
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n", 411),
        (b"Transfer-Encoding: gzip, chunked\r\n", 411),
        (b"Transfer-Encoding: gzip\r\n", 501),
    ],
)
def test_transfer_encoding(fields: bytes, status: int) -> None:
    assert refused(b"POST / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n").status == status


def test_transfer_encoding_from_http10_is_refused() -> None:
    assert refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").status == 400


@pytest.mark.parametrize(
    ("partial", "status"),
    [
        (b"GET /" + b"a" * LINE, 414),  # no end of line in sight
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"b" * HEAD, 431),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),  # bare LF heads never complete
        (b"GET / HTTP/1.1\r\nHost: x\n\r\n", 400),
    ],
)
def test_incomplete_heads_are_refused_early(partial: bytes, status: int) -> None:
    with pytest.raises(HttpError) as info:
        split(partial)
    assert info.value.status == status


def test_an_incomplete_head_within_limits_waits() -> None:
    assert split(b"GET / HTTP/1.1\r\nHost: x\r\n") == (b"", b"GET / HTTP/1.1\r\nHost: x\r\n")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_http_errors(data: bytes) -> None:
    status = 0
    try:
        split_and_parse(data)
    except HttpError as exc:
        status = exc.status
    assert status == 0 or 400 <= status <= 505


# --------------------------------------------------------------------------- responses


def test_encode_a_response() -> None:
    data = encode_response(HttpResponse(200, b'{"a":1}', headers=(("X-A", "b"),)), True)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Type: application/json" in lines
    assert b"Content-Length: 7" in lines
    assert b"X-A: b" in lines
    assert any(line.startswith(b"Date: ") and line.endswith(b" GMT") for line in lines)
    assert b"Connection: close" not in lines
    assert body == b'{"a":1}'


def test_encode_closing_and_head_responses() -> None:
    data = encode_response(HttpResponse(404, b"nope", "text/plain"), False, head_only=True)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n")
    assert b"\r\nContent-Length: 4\r\n" in head + b"\r\n"
    assert head.endswith(b"\r\nConnection: close")
    assert body == b""


def test_no_content_has_no_length_or_body() -> None:
    data = encode_response(HttpResponse(204, b"ignored", ""), True)
    assert b"Content-Length" not in data
    assert b"Content-Type" not in data
    assert data.endswith(b"\r\n\r\n")


def test_unknown_status_has_an_empty_reason() -> None:
    assert encode_response(HttpResponse(299, b""), True).startswith(b"HTTP/1.1 299 \r\n")


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse(101, b""),
        HttpResponse(600, b""),
        HttpResponse(200, b"", headers=(("X-A", "b\r\nSet-Cookie: evil"),)),
        HttpResponse(200, b"", headers=(("X A", "b"),)),
        HttpResponse(200, b"", headers=(("Content-Length", "0"),)),
        HttpResponse(200, b"", headers=(("transfer-encoding", "chunked"),)),
        HttpResponse(200, b"", "text/html\r\nX-Evil: 1"),
    ],
)
def test_unsafe_responses_are_refused(response: HttpResponse) -> None:
    with pytest.raises(ValueError, match=r"status|header|content type"):
        encode_response(response, True)


def test_json_error_body() -> None:
    error = json_error(405, "method_not_allowed", "use GET", headers=(("Allow", "GET"),))
    assert error.status == 405
    assert error.content_type == "application/json"
    assert error.headers == (("Allow", "GET"),)
    assert json.loads(error.body) == {"error": "method_not_allowed", "message": "use GET"}
