"""An in-memory ``AuditTrail`` for in-process tests: what the HTTP layer wrote, kept in lists.

Behaves like the SQL trail where a test can see it: feedback is accepted only for
card uuids an invocation issued, an identical feedback repeat is stored once, a
``jti`` is accepted once. It never spools and never goes down (outages are tested
against real PostgreSQL in tests/integration).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from service.audit.records import AuditTrail, FeedbackRecord, InvocationRecord, ReplayStore


def _feedback_key(record: FeedbackRecord) -> str:
    """What makes two feedback records "identical" (everything the client sent)."""
    return json.dumps(
        [
            record.service_id,
            record.card_uuid,
            record.outcome,
            record.outcome_timestamp.isoformat(),
            list(record.accepted_suggestions),
            record.override_reason,
            record.client_iss,
        ],
        sort_keys=True,
        default=str,
    )


class FakeAuditTrail:
    """The audit port in memory. ``invocations`` and ``feedback`` are in write order."""

    def __init__(self) -> None:
        self.invocations: list[InvocationRecord] = []
        self.feedback: list[FeedbackRecord] = []
        #: calls refused before anyone was trusted: (client, status, at)
        self.refusals: list[tuple[str, int, datetime]] = []
        self.closed = False
        self._feedback_keys: set[str] = set()
        self._jtis: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def record_invocation(self, record: InvocationRecord) -> None:
        with self._lock:
            self.invocations.append(record)

    def record_refusal(self, client_key: str, status: int, at: datetime) -> None:
        with self._lock:
            self.refusals.append((client_key, status, at))

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]:
        with self._lock:
            issued = {
                card.uuid
                for record in self.invocations
                if issuer is None or record.client_iss == issuer
                for card in record.cards
            }
        return set(uuids) & issued

    def record_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        new = 0
        with self._lock:
            for record in records:
                key = _feedback_key(record)
                if key not in self._feedback_keys:
                    self._feedback_keys.add(key)
                    self.feedback.append(record)
                    new += 1
        return new

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """The replay store's port too, for in-process tests with CDS_AUTH on."""
        with self._lock:
            if (iss, jti) in self._jtis:
                return False
            self._jtis[(iss, jti)] = expires_at
            return True

    def health(self) -> dict[str, Any]:
        return {"database": "up", "spool_depth": 0, "database_errors": 0}

    def close(self) -> None:
        self.closed = True

    # -- for assertions ------------------------------------------------------------------

    @property
    def last(self) -> InvocationRecord:
        """The newest invocation record (fails the test when there is none)."""
        with self._lock:
            assert self.invocations, "no invocation was audited"
            return self.invocations[-1]


def _conforms(trail: FakeAuditTrail) -> tuple[AuditTrail, ReplayStore]:
    """mypy checks here that the fake still implements the ports."""
    return trail, trail
