"""The shared error builder: one line, whatever the value."""

from __future__ import annotations

import numpy as np

from edgeperf import _validation as v


class Table:
    def __repr__(self) -> str:
        return "a | b\n1 | 2"


def test_a_value_with_a_multi_line_repr_is_named_by_its_type():
    for value, kind in ((np.arange(3000.0).reshape(30, 100), "ndarray"), (Table(), "Table")):
        assert "\n" in repr(value)
        message = str(v.fail("owner", "name", "a thing", value))
        assert "\n" not in message
        assert message == f"The 'name' parameter of owner must be a thing. Got {kind!r}."


def test_a_one_line_value_is_shown_as_it_is():
    assert str(v.fail("owner", "name", "positive", -2.5)).endswith("Got -2.5.")
    assert str(v.fail("owner", "name", "known", "x")).endswith("Got 'x'.")
    assert str(v.fail("owner", "name", "short", [1, 2])).endswith("Got [1, 2].")
    assert str(v.fail("owner", "name", "positive", np.float64(-2.0))).endswith("Got -2.0.")
