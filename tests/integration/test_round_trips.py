"""Issue 15: one database round trip and one commit per authenticated hook call, for its
``jti`` and its audit record, with every guarantee of issue 11 kept.

The app is the one ``create_app`` builds, with real ES384 tokens, on a real PostgreSQL
reached through ``WireCounter``, which counts round trips and commits on the wire.
Two apps on two spool directories sharing the database are two pods.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from service.app import create_app
from service.audit.factory import create_audit_trail
from service.audit.spooling import SpoolingAuditTrail
from service.cds.locate import FhirSource
from service.config import Settings
from service.knowledge import Knowledge
from testkit.casekit import build_qr, critical_card_call
from testkit.pg import DatabaseFactory
from testkit.signing import ClientKey, claims, jwks
from tests.hookdata import fhir_authorization
from tests.integration.wire import WireCounter, WireCounts

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://cds.example.org"
INTAKE = "/cds-services/backpain-redflags-intake"
EHR = "https://ehr.example.org"
KEY = ClientKey.es384("ehr-1")
CALLS = 12
FHIR_SERVER = "https://fhir.example.org/r4"
PATIENT_VIEW = "/cds-services/backpain-redflags-patient-view"


@dataclass
class Pod:
    app: Flask
    trail: SpoolingAuditTrail

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()


def token(path: str = INTAKE, **overrides: Any) -> str:
    return KEY.sign(claims(EHR, PUBLIC_URL + path, **overrides))


def post(pod: Pod, body: dict[str, Any], bearer: str | None) -> Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return pod.client.post(INTAKE, json=body, headers=headers)


@pytest.fixture
def url(make_database: DatabaseFactory) -> str:
    return make_database()


@pytest.fixture
def wire(url: str) -> Iterator[WireCounter]:
    with WireCounter.in_front_of(url) as counter:
        yield counter


@pytest.fixture
def pods(
    url: str, wire: WireCounter, tmp_path: Path, knowledge: Knowledge
) -> Iterator[dict[str, Any]]:
    """``make(name, auth=True)``: a pod (its drainer not started: no stray round trips)."""
    issuers = tmp_path / "issuers.json"
    issuer = {"iss": EHR, "jwks": jwks(KEY), "fhirServers": [FHIR_SERVER]}
    issuers.write_text(json.dumps({"issuers": [issuer]}))
    made: list[Pod] = []

    def make(
        name: str, *, auth: bool = True, fhir: FhirSource | None = None, **options: Any
    ) -> Pod:
        settings = Settings(
            database_url=wire.url(url),
            auth_enabled=auth,
            public_url=PUBLIC_URL,
            trusted_issuers_file=issuers,
            spool_dir=tmp_path / name,
            **options,
        )
        trail = create_audit_trail(settings, start=False)
        app = create_app(settings, audit=trail, replay=trail.replay, knowledge=knowledge, fhir=fhir)
        pod = Pod(app, trail)
        made.append(pod)
        return pod

    yield {"make": make}
    for pod in made:
        pod.trail.close()


def rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(text(sql), params).mappings()]
    finally:
        engine.dispose()


def measured(wire: WireCounter, pod: Pod, bodies: list[dict[str, Any]], auth: bool) -> WireCounts:
    for _ in range(3):  # warm up: the first connection, psycopg's prepared statements
        assert post(pod, critical_card_call(), token() if auth else None).status_code == 200
    before = wire.counts()
    for body in bodies:
        response = post(pod, body, token() if auth else None)
        assert response.status_code == 200, response.text
        assert response.get_json()["cards"]
    return wire.counts() - before


def test_an_authenticated_hook_call_costs_one_round_trip_and_one_commit(
    url: str, wire: WireCounter, pods: dict[str, Any]
) -> None:
    """Before: two transactions (the jti, then the invocation and its cards), 7 round
    trips and 2 commits per call."""
    pod = pods["make"]("pod-a")
    bodies = [critical_card_call() for _ in range(CALLS)]
    spent = measured(wire, pod, bodies, auth=True)
    assert spent == WireCounts(round_trips=CALLS, commits=CALLS)
    # and all of it is there: each call's jti, invocation (with its caller) and card
    instances = [body["hookInstance"] for body in bodies]
    stored = rows(
        url,
        "SELECT i.client_iss, i.http_status, count(c.card_uuid) AS cards FROM invocation i "
        "JOIN issued_card c ON c.invocation_id = i.id WHERE i.hook_instance = ANY(:i) "
        "GROUP BY i.id, i.client_iss, i.http_status",
        i=instances,
    )
    assert (
        sorted((r["client_iss"], r["http_status"], r["cards"] > 0) for r in stored)
        == [(EHR, 200, True)] * CALLS
    )
    assert rows(url, "SELECT count(*) AS n FROM used_jti")[0]["n"] == CALLS + 3


def test_a_hook_call_without_a_token_costs_one_round_trip_and_one_commit(
    url: str, wire: WireCounter, pods: dict[str, Any]
) -> None:
    """Auth off: the invocation and its cards in one statement (before: 4 round trips)."""
    pod = pods["make"]("pod-a", auth=False)
    spent = measured(wire, pod, [critical_card_call() for _ in range(CALLS)], auth=False)
    assert spent == WireCounts(round_trips=CALLS, commits=CALLS)


def test_a_token_replayed_on_another_pod_gets_401_no_card_no_row_but_a_refusal_count(
    url: str, wire: WireCounter, pods: dict[str, Any]
) -> None:
    first, second = pods["make"]("pod-a"), pods["make"]("pod-b")
    bearer = token()
    original, replay = critical_card_call(), critical_card_call()
    assert post(first, original, bearer).get_json()["cards"]
    post(second, critical_card_call(), token())  # warm up the second pod
    before = wire.counts()
    refused = post(second, replay, bearer)
    spent = wire.counts() - before
    assert refused.status_code == 401
    assert refused.get_json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "Unauthorized"}],
    }
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.headers["X-Request-ID"]
    assert spent == WireCounts(round_trips=1, commits=1)  # found by the one statement
    # the replay left no invocation and no card; the original keeps its own
    found = rows(
        url,
        "SELECT hook_instance FROM invocation WHERE hook_instance IN (:a, :b)",
        a=original["hookInstance"],
        b=replay["hookInstance"],
    )
    assert found == [{"hook_instance": original["hookInstance"]}]
    # counted as a refusal of its client, not a row of its own
    second.trail.flush_refusals(everything=True)
    counted = rows(url, "SELECT http_status, count FROM refused_call")
    assert counted == [{"http_status": 401, "count": 1}]
    # within a pod the ledger refuses it at the gate, before any work or round trip
    before = wire.counts()
    assert post(first, critical_card_call(), bearer).status_code == 401
    assert (wire.counts() - before).round_trips == 0


def test_the_status_recorded_is_the_status_sent(
    url: str, wire: WireCounter, pods: dict[str, Any]
) -> None:
    """A status changed after the view (an ``after_request`` hook) is what the audit keeps,
    on the way that settles the jti with the record too."""
    pod = pods["make"]("pod-a")

    @pod.app.after_request
    def _fail_late(response: Response) -> Response:
        if response.status_code == 200:
            response.status_code = 500
        return response

    body = critical_card_call()
    sent = post(pod, body, token())
    assert sent.status_code == 500
    [row] = rows(
        url,
        "SELECT http_status, client_iss FROM invocation WHERE hook_instance = :i",
        i=body["hookInstance"],
    )
    assert row == {"http_status": 500, "client_iss": EHR}


def test_each_call_keeps_its_own_card_rows_when_a_hook_instance_repeats(
    url: str, wire: WireCounter, pods: dict[str, Any]
) -> None:
    pod = pods["make"]("pod-a")
    body = critical_card_call()
    uuids = {post(pod, body, token()).get_json()["cards"][0]["uuid"] for _ in range(3)}
    assert len(uuids) == 1  # the same card uuid, issued three times
    found = rows(
        url,
        "SELECT count(*) AS n FROM issued_card WHERE card_uuid = :u",
        u=uuids.pop(),
    )
    assert found == [{"n": 3}]


class CountingFhirServer:
    """The client's FHIR server, answering every search with one red-flag intake."""

    def __init__(self) -> None:
        self.calls = 0

    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]:
        self.calls += 1
        qr = build_qr({"id": "fetched", "answers": {"saddle-anaesthesia": "yes"}})
        qr["subject"] = {"reference": "Patient/athlete-3"}
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": qr}]}

    def questionnaire(self, base: str, canonical: str, token: str | None) -> dict[str, Any] | None:
        self.calls += 1
        return None


def test_a_replayed_token_never_makes_the_service_call_the_fhir_server(
    pods: dict[str, Any],
) -> None:
    """The claim is settled before any outbound call, not at the end of the request."""
    first_server, second_server = CountingFhirServer(), CountingFhirServer()
    first = pods["make"]("pod-a", fhir=first_server)
    second = pods["make"]("pod-b", fhir=second_server)
    bearer = token(PATIENT_VIEW)

    def fetching_call(pod: Pod) -> Response:
        body = {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/physio-1", "patientId": "athlete-3"},
            "fhirServer": FHIR_SERVER,
            "fhirAuthorization": fhir_authorization("opaque"),
        }
        headers = {"Authorization": f"Bearer {bearer}"}
        return pod.client.post(PATIENT_VIEW, json=body, headers=headers)

    accepted = fetching_call(first)
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert accepted.get_json()["cards"]
    assert first_server.calls >= 1
    refused = fetching_call(second)
    assert refused.status_code == 401
    assert second_server.calls == 0
