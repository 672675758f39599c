"""``count_items`` (raw JSON, before validation) counts what ``walk_items`` walks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.fhir import InvalidResource, count_items, walk_items

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=2)
nodes = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.fixed_dictionaries({}, optional={"item": inner, "answer": inner, "linkId": scalars})
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(nodes)
def test_counts_what_walk_items_walks(items: Any) -> None:
    qr = {"resourceType": "QuestionnaireResponse", "item": items}
    expected = sum(1 for _ in walk_items(items if isinstance(items, list) else []))
    assert count_items(qr, 10_000) == expected
    if expected:
        with pytest.raises(InvalidResource):
            count_items(qr, expected - 1)


def test_items_under_answers_count() -> None:
    qr = {
        "item": [
            {"linkId": "1", "answer": [{"item": [{"linkId": "1.1"}, {"linkId": "1.2"}]}, "x"]},
            {"linkId": "2", "item": [{"linkId": "2.1"}, 7]},
        ]
    }
    assert count_items(qr, 100) == 5
    assert count_items([qr], 100) == 0
