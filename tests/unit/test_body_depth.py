"""``json_depth_exceeds`` against a plain recursive definition of JSON depth."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.http.body import json_depth_exceeds

json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=4)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    """Containers on the deepest path (a scalar is 0, ``{}`` and ``[]`` are 1)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(json_documents, st.integers(1, 8))
def test_depth_is_compared_exactly_to_the_limit(document: Any, limit: int) -> None:
    assert json_depth_exceeds(document, limit) == (depth(document) > limit)


def test_exact_boundary() -> None:
    value: Any = 1
    for level in range(1, 12):
        value = [value] if level % 2 else {"k": value}
        assert not json_depth_exceeds(value, level)
        if level > 1:
            assert json_depth_exceeds(value, level - 1)
