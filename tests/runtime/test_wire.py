"""The wire format: round trips, and every bad message is one MalformedMessage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeperf.exceptions import EdgePerfError
from edgeperf.runtime._deployment import MAX_HEADER_BYTES
from edgeperf.runtime._wire import MalformedMessage, decode, encode, tensor_frames

BIG = 2**24


def job(**changes):
    header = {"kind": "job", "id": 7, "t_arrival": 1.5, "row": 3, "label": 2, "exit": None}
    return {**header, **changes}


def frames_of(header, payload=b""):
    return [json.dumps(header).encode(), payload]


ids = st.one_of(st.integers(0, 2**62), st.text(min_size=1, max_size=20))
times = st.floats(allow_nan=False, allow_infinity=False)
names = st.text(min_size=1, max_size=12).filter(str.strip)


@given(rid=ids, t=times, row=st.integers(0, 10**6), label=st.integers(0, 99),
       exit_=st.none() | st.integers(0, 9),
       shape=st.lists(st.integers(0, 5), min_size=0, max_size=4))
def test_a_job_round_trips_with_its_tensor(rid, t, row, label, exit_, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    header = {"kind": "job", "id": rid, "t_arrival": t, "row": row, "label": label, "exit": exit_}
    message = decode(tensor_frames(header, array), max_bytes=BIG)
    assert message.kind == "job" and message.id == rid
    assert message.header == {**header, "dtype": "float32", "shape": list(shape)}
    np.testing.assert_array_equal(message.tensor(), array)


@given(header=st.one_of(
    st.fixed_dictionaries({"kind": st.just("result"), "id": ids, "t_arrival": times,
                           "t_done": times, "exit": st.integers(0, 9),
                           "predicted": st.integers(0, 9), "label": st.integers(0, 9),
                           "station": names}),
    st.fixed_dictionaries({"kind": st.just("drop"), "id": st.none() | ids, "t": times,
                           "station": names,
                           "reason": st.sampled_from(["queue full", "malformed",
                                                      "worker failed"])}),
    st.fixed_dictionaries({"kind": st.just("accept"), "id": ids, "t": times, "station": names}),
    st.fixed_dictionaries({"kind": st.just("heartbeat"), "t": times, "station": names,
                           "counters": st.dictionaries(st.text(max_size=8),
                                                       st.integers(0, 10**9), max_size=6)})))
def test_every_other_kind_round_trips(header):
    message = decode(encode(header), max_bytes=BIG)
    assert (message.kind, message.header, message.payload) == (header["kind"], header, b"")


@given(frames=st.lists(st.binary(max_size=64), max_size=4))
def test_arbitrary_bytes_raise_only_malformed(frames):
    try:
        decode(frames, max_bytes=BIG)
    except MalformedMessage:
        pass


@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                         lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                         max_leaves=12),
       payload=st.binary(max_size=32))
def test_arbitrary_json_raises_only_malformed(data, payload):
    try:
        decode([json.dumps(data).encode(), payload], max_bytes=BIG)
    except MalformedMessage:
        pass


@pytest.mark.parametrize(("frames", "match"), [
    ([b"{}"], "expected 2 frames, got 1"),
    ([b"{}", b"", b""], "expected 2 frames, got 3"),
    ([b" " * (MAX_HEADER_BYTES + 1), b""], "header of 4097 bytes exceeds 4096"),
    ([b"{not json", b""], "not UTF-8 JSON"),
    ([b"\xff\xfe", b""], "not UTF-8 JSON"),
    ([b"[1, 2]", b""], "JSON list, not an object"),
    ([b'{"kind": "job", "t_arrival": NaN}', b""], "not UTF-8 JSON"),
    (frames_of({"kind": "gossip"}), "unknown kind 'gossip'"),
    (frames_of(job()), "job header lacks 'dtype'"),
    (frames_of(job(dtype="float64", shape=[1])), "'dtype' must be 'float32'"),
    (frames_of(job(row=-1)), "'row' must be an int >= 0"),
    (frames_of(job(label=True)), "'label' must be an int >= 0"),
    (frames_of(job(id=1.5)), "'id' must be an int >= 0 or a non-empty string"),
    (frames_of(job(dtype="float32", shape=[2, 2]), b"\0" * 15),
     "job payload of 15 bytes, expected 16"),
    (frames_of({"kind": "accept", "id": 1, "t": 0.0, "station": "d"}, b"x"),
     "accept payload of 1 bytes, expected 0"),
    (frames_of({"kind": "drop", "id": 1, "t": 0.0, "station": "d", "reason": "bored"}),
     "'reason' must be one of"),
    (frames_of({"kind": "heartbeat", "t": 0.0, "station": "d", "counters": {"a": -1}}),
     "'counters' must be a mapping"),
])
def test_each_rule_has_its_reason(frames, match):
    with pytest.raises(MalformedMessage, match=match):
        decode(frames, max_bytes=BIG)


def test_the_id_is_kept_when_readable_and_errors_are_edgeperf_value_errors():
    with pytest.raises(MalformedMessage) as caught:
        decode(frames_of(job(id="r-9", dtype="float32", shape=[3]), b"\0" * 4), max_bytes=BIG)
    assert caught.value.request_id == "r-9"
    assert isinstance(caught.value, EdgePerfError) and isinstance(caught.value, ValueError)
    with pytest.raises(MalformedMessage) as caught:
        decode([b"{oops", b""], max_bytes=BIG)
    assert caught.value.request_id is None


def test_a_message_over_max_bytes_is_malformed():
    frames = tensor_frames(job(), np.zeros(100, dtype=np.float32))
    assert decode(frames, max_bytes=1000).kind == "job"
    with pytest.raises(MalformedMessage, match=r"message of \d+ bytes exceeds 300"):
        decode(frames, max_bytes=300)


def test_tensor_frames_sends_float32_in_c_order():
    array = np.arange(6, dtype=np.float64).reshape(2, 3).T  # Fortran-ordered view
    message = decode(tensor_frames(job(), array), max_bytes=BIG)
    assert message.header["shape"] == [3, 2]
    np.testing.assert_array_equal(message.tensor(), array.astype(np.float32))
