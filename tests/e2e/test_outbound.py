"""Calls this service makes (the client's fhirServer, an issuer's jku) against real loopback
servers, well-behaved or not."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from service.auth.keys import KeySourceError, fetch_jwks
from service.fhir.client import FhirClient, FhirServerError
from testkit.fhir_server import FakeFhirStore, fhir_server
from testkit.server import ServerProcess
from tests.e2e.conftest import ServerFactory
from tests.e2e.misbehaving_server import BadAnswer, misbehaving_server

QUERY = "QuestionnaireResponse?subject=athlete-1&status=completed"
GENERIC = "fhirServer gave no usable answer"


@pytest.mark.parametrize("status", [401, 403, 404, 500, 503])
def test_a_failing_fhir_server_is_not_echoed_but_logged_without_the_token(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    token = "access-" + uuid.uuid4().hex
    with fhir_server(FakeFhirStore(status=status)) as base:
        client = FhirClient(timeout=5)
        with (
            caplog.at_level(logging.INFO, logger="service.fhir.client"),
            pytest.raises(FhirServerError) as caught,
        ):
            client.search(base, QUERY, token)
    assert str(caught.value) == GENERIC  # what a 412 may show: no remote detail
    [line] = [r.getMessage() for r in caplog.records if r.name == "service.fhir.client"]
    assert f"HTTP {status}" in line and base in line
    assert token not in line and "athlete-1" not in line


def test_an_unreachable_fhir_server_reads_the_same_as_a_failing_one() -> None:
    with fhir_server(FakeFhirStore()) as base:
        pass  # stopped: nothing listens there any more
    with pytest.raises(FhirServerError) as caught:
        FhirClient(timeout=5).search(base, QUERY, None)
    assert str(caught.value) == GENERIC


# -- one deadline per call, one size cap: finding 5 ------------------------------------------

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PATIENT_VIEW = "/cds-services/backpain-redflags-patient-view"
CAP = 65_536
HUGE = 10 * 1024 * 1024


def sample_request() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "patient-view-request.json").read_text())
    data["hookInstance"] = str(uuid.uuid4())
    return data


def intake_bundle(padding: int = 0) -> bytes:
    """The sample's intake search answer (a Bundle with the QR), padded to any size."""
    bundle = sample_request()["prefetch"]["intake"]
    if padding:
        pad = {"resourceType": "Basic", "id": "pad", "text": {"div": "x" * padding}}
        bundle["entry"].append({"resource": pad})
    return json.dumps(bundle).encode()


@pytest.mark.parametrize("drip_in", ["head", "body"])
def test_a_dripping_fhir_server_cannot_hold_a_call_past_its_deadline(
    drip_in: str, caplog: pytest.LogCaptureFixture
) -> None:
    # each byte comes well within a per-read timeout of 2 s; the call as a whole may not
    answer = BadAnswer(intake_bundle(), drip=6, drip_in=drip_in, interval=1.0)
    with misbehaving_server(answer) as base:
        client = FhirClient(timeout=2.0, max_bytes=CAP)
        with (
            caplog.at_level(logging.INFO, logger="service.fhir.client"),
            pytest.raises(FhirServerError),
        ):
            client.search(base, QUERY, None)
        assert answer.outcome() == "client gone"
    assert "no complete answer within 2.0s" in caplog.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_huge_fhir_answer_is_not_read_past_the_cap(
    chunked: bool, caplog: pytest.LogCaptureFixture
) -> None:
    answer = BadAnswer(intake_bundle(padding=HUGE), chunked=chunked)
    with misbehaving_server(answer) as base:
        client = FhirClient(timeout=10.0, max_bytes=CAP)
        with (
            caplog.at_level(logging.INFO, logger="service.fhir.client"),
            pytest.raises(FhirServerError),
        ):
            client.search(base, QUERY, None)
        assert answer.outcome() == "client gone"
    assert "more than the 65536 bytes allowed" in caplog.text
    expected = "sent more than" if chunked else f"announced {len(answer.body)} bytes"
    assert expected in caplog.text


def test_an_answer_within_the_cap_and_the_deadline_is_read() -> None:
    answer = BadAnswer(intake_bundle(), chunked=True)
    with misbehaving_server(answer) as base:
        bundle = FhirClient(timeout=5.0, max_bytes=CAP).search(base, QUERY, None)
    assert bundle["resourceType"] == "Bundle" and bundle["entry"]


@pytest.fixture(scope="module")
def bounded_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory({"FHIR_TIMEOUT_SECONDS": "2", "FHIR_MAX_RESPONSE_BYTES": str(CAP)})


@pytest.mark.parametrize(
    "answer",
    [
        BadAnswer(intake_bundle(), drip=6, interval=1.0),
        BadAnswer(intake_bundle(padding=HUGE), chunked=True),
    ],
    ids=["dripping", "huge"],
)
def test_the_service_answers_412_when_its_fhir_server_misbehaves(
    bounded_server: ServerProcess, answer: BadAnswer
) -> None:
    request = sample_request()
    del request["prefetch"]
    with misbehaving_server(answer) as base:
        response = requests.post(
            bounded_server.url(PATIENT_VIEW), json={**request, "fhirServer": base}, timeout=30
        )
        assert answer.outcome() == "client gone"
    assert response.status_code == 412, response.text
    assert response.json()["issue"][0]["diagnostics"].endswith(GENERIC)


def test_a_jwks_fetch_is_capped_and_bounded_too() -> None:
    keys = json.dumps({"keys": []}).encode()
    huge = BadAnswer(keys + b" " * HUGE, chunked=True)
    with (
        misbehaving_server(huge) as base,
        pytest.raises(KeySourceError, match="more than the 512000 bytes allowed"),
    ):
        fetch_jwks(base, 5.0)
    slow = BadAnswer(keys, drip=4, interval=1.0)
    with (
        misbehaving_server(slow) as base,
        pytest.raises(KeySourceError, match=r"no complete answer within 1.5s"),
    ):
        fetch_jwks(base, 1.5)


@pytest.mark.parametrize("body", [b"[1]", b'{"entry": 5}', b'"text"', b"[" * 100_000])
def test_an_odd_questionnaire_answer_is_no_questionnaire_not_a_crash(body: bytes) -> None:
    with misbehaving_server(BadAnswer(body)) as base:
        found = FhirClient(timeout=5.0).questionnaire(base, "https://x.example/Q|1", None)
    assert found is None
