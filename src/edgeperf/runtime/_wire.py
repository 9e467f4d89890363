"""The runtime's messages: two ZeroMQ frames, a JSON header and a raw payload.

Never pickle: a worker may face any peer, so :func:`decode` checks every
frame against the table of docs/background/runtime.md and turns anything
else into one :class:`MalformedMessage` with a one-line reason. Only
float32 tensors travel (``dtype``/``shape`` in the header, C order).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import EdgePerfError
from ._deployment import MAX_HEADER_BYTES

__all__ = ["Message", "MalformedMessage", "encode", "tensor_frames", "decode", "KINDS",
           "DROP_REASONS", "COUNTERS"]

DROP_REASONS = ("queue full", "malformed", "worker failed")
COUNTERS = ("received", "accepted", "dropped", "malformed", "completed", "forwarded")
_DTYPE = "float32"
_MAX_DIMS = 8


class MalformedMessage(EdgePerfError, ValueError):
    """A message that breaks the wire format; ``request_id`` is its id when readable."""

    def __init__(self, reason: str, request_id: int | str | None = None) -> None:
        super().__init__(reason)
        self.request_id = request_id


# ------------------------------------------------------------------ key checks

def _is_int(x: object, low: int = 0) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= low


def _is_time(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _is_id(x: object) -> bool:
    return _is_int(x) or (isinstance(x, str) and 0 < len(x) <= 256)


def _is_name(x: object) -> bool:
    return isinstance(x, str) and bool(x.strip())


def _is_shape(x: object) -> bool:
    return isinstance(x, list) and len(x) <= _MAX_DIMS and all(_is_int(s) for s in x)


def _is_counters(x: object) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) and _is_int(n) for k, n in x.items())


_Check = Callable[[object], bool]
_ID: tuple[_Check, str] = (_is_id, "an int >= 0 or a non-empty string")
_ID_OR_NULL: tuple[_Check, str] = (lambda x: x is None or _is_id(x), "an id or null")
_TIME: tuple[_Check, str] = (_is_time, "a finite number")
_INDEX: tuple[_Check, str] = (_is_int, "an int >= 0")
_NAME: tuple[_Check, str] = (_is_name, "a non-empty string")

#: Per kind, the keys it must hold: (check, rule). Extra keys are allowed.
SCHEMA: dict[str, dict[str, tuple[_Check, str]]] = {
    "job": {"id": _ID, "t_arrival": _TIME, "row": _INDEX, "label": _INDEX,
            "exit": (lambda x: x is None or _is_int(x), "an int >= 0 or null"),
            "dtype": (lambda x: x == _DTYPE, f"{_DTYPE!r}"),
            "shape": (_is_shape, f"a list of at most {_MAX_DIMS} ints >= 0")},
    "result": {"id": _ID, "t_arrival": _TIME, "t_done": _TIME, "exit": _INDEX,
               "predicted": _INDEX, "label": _INDEX, "station": _NAME},
    "drop": {"id": _ID_OR_NULL, "t": _TIME, "station": _NAME,
             "reason": (lambda x: x in DROP_REASONS, f"one of {list(DROP_REASONS)}")},
    "accept": {"id": _ID, "t": _TIME, "station": _NAME},
    "heartbeat": {"t": _TIME, "station": _NAME,
                  "counters": (_is_counters, "a mapping of names to ints >= 0")},
}
KINDS = tuple(SCHEMA)


# ------------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class Message:
    """A decoded, checked message: its ``kind``, ``header`` and raw ``payload``."""

    kind: str
    header: dict[str, Any]
    payload: bytes = b""

    @property
    def id(self) -> int | str | None:
        return self.header.get("id")

    def tensor(self) -> np.ndarray:
        """A job's payload as a read-only float32 array of the header's shape."""
        return np.frombuffer(self.payload, dtype=np.float32).reshape(self.header["shape"])


def encode(header: dict[str, Any], payload: bytes | np.ndarray = b"") -> list[bytes]:
    """The two frames of a message (a NumPy payload is sent as its C-order bytes)."""
    if isinstance(payload, np.ndarray):
        payload = payload.tobytes(order="C")
    text = json.dumps(header, separators=(",", ":"), allow_nan=False)
    return [text.encode("utf-8"), bytes(payload)]


def tensor_frames(header: dict[str, Any], array: np.ndarray) -> list[bytes]:
    """A job's frames: ``array`` as float32, its dtype and shape set in the header."""
    data = np.asarray(array, dtype=np.float32, order="C")
    return encode({**header, "dtype": _DTYPE, "shape": list(data.shape)}, data)


def decode(frames: Sequence[bytes], *, max_bytes: int) -> Message:
    """Check ``frames`` against the wire format; raise MalformedMessage if they break it."""
    if len(frames) != 2:
        raise MalformedMessage(f"expected 2 frames, got {len(frames)}")
    raw, payload = bytes(frames[0]), bytes(frames[1])
    if len(raw) > MAX_HEADER_BYTES:
        raise MalformedMessage(f"header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    header = _parse_header(raw)
    rid = header.get("id") if _is_id(header.get("id")) else None
    if len(raw) + len(payload) > max_bytes:
        raise MalformedMessage(f"message of {len(raw) + len(payload)} bytes exceeds "
                               f"{max_bytes}", rid)
    kind = header.get("kind")
    if kind not in SCHEMA:
        raise MalformedMessage(f"unknown kind {str(kind)[:40]!r}", rid)
    for key, (check, rule) in SCHEMA[kind].items():
        if key not in header:
            raise MalformedMessage(f"{kind} header lacks {key!r}", rid)
        if not check(header[key]):
            raise MalformedMessage(f"{kind} header key {key!r} must be {rule}", rid)
    _check_payload(kind, header, len(payload), rid)
    return Message(kind, header, payload)


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise MalformedMessage(f"header is not UTF-8 JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise MalformedMessage(f"header is a JSON {type(header).__name__}, not an object")
    return header


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _check_payload(kind: str, header: dict[str, Any], size: int, rid: int | str | None) -> None:
    want = math.prod(header["shape"]) * 4 if kind == "job" else 0
    if size != want:
        raise MalformedMessage(f"{kind} payload of {size} bytes, expected {want}", rid)
