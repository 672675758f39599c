"""A completed intake POSTed to the clinic's FHIR server (a real loopback HTTP server)."""

from __future__ import annotations

from typing import Any

import pytest

from service.portal.delivery import ClinicDelivery, DeliveryFailed
from testkit.fhir_server import FakeFhirStore, fhir_server
from testkit.server import free_port

IDENTIFIER = {
    "system": "urn:ietf:rfc:3986",
    "value": "urn:uuid:0b6f0a52-3f2e-4f8a-9f3c-4d1e2a7b9c10",
}


def completed() -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "identifier": dict(IDENTIFIER),
        "subject": {"display": "A patient (born 1990-01-01)"},
        "item": [{"linkId": "2.1", "answer": [{"valueBoolean": False}]}],
    }


def delivery(base: str, attempts: int = 3, sleeps: list[float] | None = None) -> ClinicDelivery:
    waits = sleeps if sleeps is not None else []
    return ClinicDelivery(base, "clinic-token", attempts=attempts, timeout=2.0, sleep=waits.append)


def test_stored_with_bearer_token_and_conditional_create() -> None:
    store = FakeFhirStore()
    with fhir_server(store) as base:
        stored = delivery(base).send(completed())
    assert stored == "QuestionnaireResponse/qr-1"
    assert store.created[0]["subject"] == {"display": "A patient (born 1990-01-01)"}
    (seen,) = store.seen
    assert seen["authorization"] == "Bearer clinic-token"
    assert seen["content_type"] == "application/fhir+json"
    assert seen["if_none_exist"] == f"identifier={IDENTIFIER['system']}|{IDENTIFIER['value']}"


def test_a_passing_failure_is_retried_with_backoff() -> None:
    store = FakeFhirStore(failing_posts=2, post_status=503)
    sleeps: list[float] = []
    with fhir_server(store) as base:
        stored = delivery(base, attempts=3, sleeps=sleeps).send(completed())
    assert stored == "QuestionnaireResponse/qr-1"
    assert len(store.seen) == 3
    assert sleeps == [0.5, 1.0]


def test_a_retry_after_a_lost_answer_does_not_store_twice() -> None:
    store = FakeFhirStore()
    with fhir_server(store) as base:
        first = delivery(base).send(completed())
        again = delivery(base).send(completed())
    assert first == again == "QuestionnaireResponse/qr-1"
    assert len(store.created) == 1


def test_bounded_tries_then_the_reason() -> None:
    store = FakeFhirStore(failing_posts=10, post_status=503)
    with fhir_server(store) as base, pytest.raises(DeliveryFailed, match="HTTP 503"):
        delivery(base, attempts=3).send(completed())
    assert len(store.seen) == 3
    assert store.created == []


def test_a_refusal_is_not_retried() -> None:
    store = FakeFhirStore(failing_posts=10, post_status=400)
    with fhir_server(store) as base, pytest.raises(DeliveryFailed, match="HTTP 400"):
        delivery(base, attempts=3).send(completed())
    assert len(store.seen) == 1


def test_an_unreachable_server_is_reported() -> None:
    base = f"http://127.0.0.1:{free_port()}/fhir"
    with pytest.raises(DeliveryFailed, match="unreachable"):
        delivery(base, attempts=2).send(completed())
