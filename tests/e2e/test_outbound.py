"""Calls this service makes (the client's fhirServer) against real loopback servers."""

from __future__ import annotations

import logging
import uuid

import pytest

from service.fhir.client import FhirClient, FhirServerError
from testkit.fhir_server import FakeFhirStore, fhir_server

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
