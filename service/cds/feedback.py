"""The feedback use case (CDS Hooks 2.0 §Feedback): what the clinician did with our cards.

Card uuids are checked against what the audit says was issued; the records are
stored through the audit port. Clock and ids are injected.

Several outcomes on one card (accepted, then overridden; a repeat after a network
retry) are all kept, as history: the card's current outcome is the one with the
latest ``outcomeTimestamp``. An identical repeat is stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from service.audit.records import FeedbackRecord
from service.cds.errors import UnknownCards


class FeedbackStore(Protocol):
    """The part of the audit trail feedback needs (``AuditTrail``)."""

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]: ...

    def record_feedback(self, records: Sequence[FeedbackRecord]) -> int: ...


@dataclass(frozen=True)
class FeedbackDesk:
    store: FeedbackStore
    clock: Callable[[], datetime]
    new_id: Callable[[], uuid.UUID] = uuid.uuid4

    def record(
        self, service_id: str, items: Sequence[Mapping[str, Any]], client_iss: str | None
    ) -> int:
        """Store validated feedback items; returns how many were new. Raises
        ``UnknownCards``, or the store's errors (``AuditUnavailable`` while it cannot say
        what was issued, ``FeedbackRefused``)."""
        uuids = [str(item["card"]) for item in items]
        # only the client a card was issued to may say what it did with it; with auth
        # off there is no verified client and any issued card is known
        known = self.store.known_card_uuids(uuids, issuer=client_iss)
        unknown = [index for index, card in enumerate(uuids) if card not in known]
        if unknown:
            raise UnknownCards(unknown, uuids)
        now = self.clock()
        records = [
            FeedbackRecord(
                id=self.new_id(),
                received_at=now,
                service_id=service_id,
                card_uuid=str(item["card"]),
                outcome=item["outcome"],
                outcome_timestamp=item["outcomeTimestamp"],
                accepted_suggestions=tuple(
                    str(s.get("id")) for s in item["acceptedSuggestions"] if s.get("id") is not None
                ),
                override_reason=item["overrideReason"],
                client_iss=client_iss,
            )
            for item in items
        ]
        return self.store.record_feedback(records)
