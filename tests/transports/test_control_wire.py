"""The control wire without sockets: message shapes, frames, limits, malformed input."""

from __future__ import annotations

import itertools
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_identity.transports.control_wire import (
    HEADER_SIZE,
    MAX_REQUEST_SIZE,
    ActorRow,
    ApprovalRow,
    ApprovalsReply,
    ApprovalsRequest,
    ApproveRequest,
    ControlReply,
    ControlRequest,
    DecisionReply,
    ErrorReply,
    FlushTipsReply,
    FlushTipsRequest,
    FrameReader,
    FrameTooLargeError,
    MalformedMessageError,
    RejectRequest,
    ReloadReply,
    ReloadRequest,
    RevokeReply,
    RevokeRequest,
    SessionRow,
    SessionsReply,
    SessionsRequest,
    ShutdownReply,
    ShutdownRequest,
    StatusReply,
    StatusRequest,
    SupervisorRow,
    TipCacheRow,
    decode_reply,
    decode_request,
    encode_frame,
)

REQUESTS: list[ControlRequest] = [
    StatusRequest(),
    SessionsRequest(),
    RevokeRequest(session_key="agent:main:main"),
    FlushTipsRequest(),
    ReloadRequest(),
    ApprovalsRequest(),
    ApproveRequest(approval_id="apr_x"),
    RejectRequest(approval_id="apr_y"),
    ShutdownRequest(),
]

APPROVAL = ApprovalRow(
    id="apr_1",
    session_key="agent:main:main",
    tool_name="exec",
    risk="high",
    reason="pipe to shell",
    summary="curl x | sh",
    status="pending",
    expires_in=299.5,
)

REPLIES: list[ControlReply] = [
    StatusReply(
        version="1.0",
        pid=1,
        uptime=2.0,
        actors=(
            ActorRow(
                name="session_store",
                running=True,
                mailbox_depth=0,
                mailbox_size=64,
                peak_depth=1,
                handled=3,
                restarts=0,
                busy=False,
            ),
        ),
        supervisors=(
            SupervisorRow(
                name="root",
                strategy="rest_for_one",
                running=True,
                restarts=0,
                max_restarts=3,
                period=30.0,
                children=4,
            ),
        ),
        sessions=1,
        bound_sessions=0,
        pending_logins=0,
        credentials=0,
        tips=TipCacheRow(
            cached=1,
            hits=2,
            misses=1,
            mints=1,
            refreshes=0,
            failures=0,
            logged_out=0,
            renewals=0,
            scheduled=1,
            in_flight=0,
            linked=0,
        ),
        approvals=(APPROVAL,),
    ),
    SessionsReply(
        sessions=(
            SessionRow(
                session_key="k",
                sub="alice",
                login_at=1.0,
                expires_in=3600.0,
                renewable=True,
                bindings={"openai": "OPENAI_API_KEY"},
            ),
        )
    ),
    RevokeReply(
        session_key="k",
        session_removed=True,
        tip_dropped=True,
        credentials_dropped=1,
        bindings_removed=1,
        approvals_cancelled=0,
    ),
    FlushTipsReply(dropped=3),
    ReloadReply(ok=False, message="kept", problems=("identity.endpoint: must be a URL",)),
    ApprovalsReply(approvals=(APPROVAL,)),
    DecisionReply(ok=True, approval_id="apr_1", message="Approved.", approval=APPROVAL),
    ShutdownReply(message="stopping"),
    ErrorReply(code="busy", message="try again"),
]


def frames_of(data: bytes, reader: FrameReader | None = None) -> list[bytes]:
    reader = reader or FrameReader(MAX_REQUEST_SIZE)
    reader.feed(data)
    found = []
    while (body := reader.next_frame()) is not None:
        found.append(body)
    return found


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_round_trips_through_a_frame(request_: ControlRequest) -> None:
    frame = encode_frame(request_)
    (length,) = struct.unpack(">I", frame[:HEADER_SIZE])
    assert length == len(frame) - HEADER_SIZE
    [body] = frames_of(frame)
    assert decode_request(body) == request_


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_every_reply_round_trips_through_a_frame(reply: ControlReply) -> None:
    [body] = frames_of(encode_frame(reply), FrameReader(1 << 20))
    assert decode_reply(body) == reply


def test_messages_are_tagged_camel_case_json() -> None:
    body = encode_frame(RevokeRequest(session_key="agent:main:main"))[HEADER_SIZE:]
    assert json.loads(body) == {"type": "revoke", "sessionKey": "agent:main:main"}
    body = encode_frame(FlushTipsReply(dropped=2))[HEADER_SIZE:]
    assert json.loads(body) == {"type": "flush-tips", "dropped": 2}
    # Scripts can write requests by hand.
    assert decode_request(b'{"type": "approve", "approvalId": "apr_1"}') == ApproveRequest(
        approval_id="apr_1"
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "truncated"),
        (b"{not json", "malformed request"),
        (b"[1, 2]", "Expected `object`"),
        (b'{"sessionKey": "k"}', "type"),
        (b'{"type": "format-disk"}', "$.type"),
        (b'{"type": "revoke"}', "sessionKey"),
        (b'{"type": "revoke", "sessionKey": 7}', "Expected `str`"),
        (b'{"type": "status", "verbose": true}', "unknown field `verbose`"),
        (b'{"type": "flush-tips", "dropped": 1}', "unknown field"),  # a reply is no request
    ],
)
def test_malformed_requests_raise_with_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessageError, match="malformed request") as caught:
        decode_request(body)
    assert problem in str(caught.value)


def test_a_request_is_not_a_reply() -> None:
    with pytest.raises(MalformedMessageError, match="malformed reply"):
        decode_reply(encode_frame(StatusRequest())[HEADER_SIZE:])


def test_reader_waits_for_whole_frames_fed_byte_by_byte() -> None:
    data = encode_frame(StatusRequest()) + encode_frame(RevokeRequest(session_key="k"))
    reader = FrameReader(MAX_REQUEST_SIZE)
    found = []
    for index in range(len(data)):
        reader.feed(data[index : index + 1])
        if (body := reader.next_frame()) is not None:
            found.append(decode_request(body))
            assert reader.buffered == 0  # fed one byte at a time: nothing beyond the frame
    assert found == [StatusRequest(), RevokeRequest(session_key="k")]
    assert reader.buffered == 0


def test_reader_splits_several_frames_from_one_chunk_and_keeps_the_rest() -> None:
    data = b"".join(encode_frame(r) for r in REQUESTS)
    partial = encode_frame(StatusRequest())[:3]
    reader = FrameReader(MAX_REQUEST_SIZE)
    assert [decode_request(b) for b in frames_of(data + partial, reader)] == REQUESTS
    assert reader.buffered == 3


def test_an_empty_frame_is_a_frame() -> None:
    assert frames_of(struct.pack(">I", 0)) == [b""]


def test_an_oversized_length_is_refused_before_its_body_arrives() -> None:
    reader = FrameReader(100)
    reader.feed(struct.pack(">I", 101))
    with pytest.raises(FrameTooLargeError) as caught:
        reader.next_frame()
    assert (caught.value.length, caught.value.limit) == (101, 100)
    assert "101 bytes" in str(caught.value)
    exact = FrameReader(100)
    exact.feed(struct.pack(">I", 100) + b"x" * 100)
    assert exact.next_frame() == b"x" * 100


@given(
    keys=st.lists(st.text(max_size=40), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_any_chunking_yields_the_same_messages(keys: list[str], cuts: list[int]) -> None:
    sent = [RevokeRequest(session_key=key) for key in keys]
    data = b"".join(encode_frame(r) for r in sent)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    reader = FrameReader(MAX_REQUEST_SIZE)
    received = []
    for start, end in itertools.pairwise(bounds):
        received += [decode_request(b) for b in frames_of(data[start:end], reader)]
    assert received == sent
    assert reader.buffered == 0
