"""The feedback use case with a ten-line fake store: who may give feedback on which card."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pytest

from service.audit.records import FeedbackRecord
from service.cds.errors import UnknownCards
from service.cds.feedback import FeedbackDesk

EHR_A, EHR_B = "https://ehr-a.example.org", "https://ehr-b.example.org"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Store:
    def __init__(self, issued: dict[str, str | None]) -> None:
        self.issued = issued  # card uuid -> the client it was issued to
        self.stored: list[FeedbackRecord] = []

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]:
        return {u for u in uuids if u in self.issued and issuer in (None, self.issued[u])}

    def record_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        self.stored.extend(records)
        return len(records)


def item(card: str) -> dict[str, object]:
    return {
        "card": uuid.UUID(card),
        "outcome": "overridden",
        "outcomeTimestamp": NOW,
        "acceptedSuggestions": [],
        "overrideReason": None,
    }


def test_feedback_is_taken_only_from_the_client_the_card_was_issued_to() -> None:
    card = str(uuid.uuid4())
    store = Store({card: EHR_A})
    desk = FeedbackDesk(store, clock=lambda: NOW)
    with pytest.raises(UnknownCards) as refused:
        desk.record("svc", [item(card)], EHR_B)
    assert refused.value.positions == (0,)
    assert "never issued" in str(refused.value)  # the same words as for an unknown card
    assert store.stored == []
    assert desk.record("svc", [item(card)], EHR_A) == 1
    assert [(r.card_uuid, r.client_iss) for r in store.stored] == [(card, EHR_A)]


def test_with_auth_off_any_caller_may_give_feedback_on_an_issued_card() -> None:
    card = str(uuid.uuid4())
    desk = FeedbackDesk(Store({card: None}), clock=lambda: NOW)
    assert desk.record("svc", [item(card)], None) == 1
