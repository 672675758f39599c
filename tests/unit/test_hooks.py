"""The use case with 10-line fakes: where the QuestionnaireResponse comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from service.cds.catalogue import build_catalogue
from service.cds.errors import BadRequest, DataUnavailable, QuestionnaireResponseInvalid
from service.cds.hook import check_subject
from service.cds.locate import locate, newest_questionnaire_response

CANONICAL = "https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake"


@dataclass
class FakeFhir:
    bundle: dict[str, Any] | None = None
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]:
        self.calls.append((base, query, token))
        if self.bundle is None:
            raise RuntimeError("connection refused")
        return self.bundle

    def questionnaire(self, base: str, canonical: str, token: str | None) -> None:
        return None


def qr(authored: str | None, ident: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "id": ident}
    if authored is not None:
        resource["authored"] = authored
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}


def request(**extra: Any) -> dict[str, Any]:
    return {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p1"}, **extra}


def test_newest_authored_wins_across_offsets_and_partial_dates() -> None:
    found = newest_questionnaire_response(
        bundle(
            qr("2026-11-20T11:00:00+02:00", "older"),  # 09:00Z
            qr("2026-11-20T10:00:00Z", "newest"),
            qr("2026-11", "partial"),
            qr(None, "undated"),
            {"resourceType": "Patient", "id": "p1"},
        )
    )
    assert found is not None and found["id"] == "newest"


def test_bundle_without_qr_has_none() -> None:
    assert newest_questionnaire_response(bundle({"resourceType": "Patient"})) is None
    assert newest_questionnaire_response({"resourceType": "Bundle"}) is None


def test_catalogue_ids_and_prefetch() -> None:
    services = {s.id: s for s in build_catalogue(CANONICAL)}
    assert services["backpain-redflags-patient-view"].prefetch == {
        "intake": f"QuestionnaireResponse?patient={{{{context.patientId}}}}&questionnaire="
        f"{CANONICAL}&status=completed&_sort=-authored&_count=1",
        "patient": "Patient/{{context.patientId}}",
    }
    assert services["backpain-redflags-intake"].prefetch is None


def test_context_wins_over_prefetch() -> None:
    found, source = locate(
        request(
            context={"questionnaireResponse": qr(None, "ctx")},
            prefetch={"intake": qr(None, "pre")},
        ),
        FakeFhir(),
        CANONICAL,
        server_allowed=True,
    )
    assert (found["id"], source) == ("ctx", "context")


def test_prefetch_then_fhir_server() -> None:
    fhir = FakeFhir(bundle=bundle(qr("2026-01-01", "remote")))
    found, source = locate(
        request(prefetch={"intake": qr(None, "pre")}), fhir, CANONICAL, server_allowed=True
    )
    assert (found["id"], source) == ("pre", "prefetch")
    assert fhir.calls == []
    found, source = locate(
        request(fhirServer="http://fhir", fhirAuthorization={"access_token": "t"}),
        fhir,
        CANONICAL,
        server_allowed=True,
    )
    assert (found["id"], source) == ("remote", "fhirServer")
    assert fhir.calls[0][0] == "http://fhir" and fhir.calls[0][2] == "t"
    assert "?patient=p1&" in fhir.calls[0][1] and "subject=" not in fhir.calls[0][1]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"prefetch": {}, "fhirServer": "http://down"},
        {"prefetch": None, "fhirServer": "http://down"},
    ],
)
def test_unobtainable_is_data_unavailable(extra: dict[str, Any]) -> None:
    with pytest.raises(DataUnavailable):
        locate(request(**extra), FakeFhir(bundle=None), CANONICAL, server_allowed=True)


@pytest.mark.parametrize(
    ("extra", "remote", "source"),
    [
        # CDS Hooks: a prefetch key is null when the client has no data for it
        ({"prefetch": {"intake": None}}, None, "prefetch"),
        ({"prefetch": {"intake": bundle()}}, None, "prefetch"),
        ({"prefetch": {"intake": bundle({"resourceType": "OperationOutcome"})}}, None, "prefetch"),
        ({"fhirServer": "http://fhir"}, bundle(), "fhirServer"),
    ],
)
def test_a_search_that_found_no_intake_is_no_intake_not_an_error(
    extra: dict[str, Any], remote: dict[str, Any] | None, source: str
) -> None:
    found = locate(request(**extra), FakeFhir(bundle=remote), CANONICAL, server_allowed=True)
    assert found == (None, source)


@pytest.mark.parametrize(
    "intake",
    [[1], {"resourceType": "Bundle", "entry": [1, "x"]}, bundle({"id": "no-type"}) | {"entry": 7}],
)
def test_prefetch_that_is_not_a_resource_or_searchset_is_bad_request(intake: Any) -> None:
    with pytest.raises(BadRequest):
        locate(request(prefetch={"intake": intake}), FakeFhir(), CANONICAL, server_allowed=True)


def test_a_fhir_server_answer_with_broken_entries_is_data_unavailable() -> None:
    broken = {"resourceType": "Bundle", "entry": [{"resource": 7}]}
    with pytest.raises(DataUnavailable):
        locate(
            request(fhirServer="http://fhir"),
            FakeFhir(bundle=broken),
            CANONICAL,
            server_allowed=True,
        )


def test_subject_must_be_the_context_patient() -> None:
    with pytest.raises(QuestionnaireResponseInvalid):
        check_subject({"subject": {"reference": "Patient/p2"}}, {"patientId": "p1"})
    check_subject({"subject": {"reference": "Patient/p1"}}, {"patientId": "p1"})
    check_subject({"subject": {"reference": "Patient/p1/_history/3"}}, {"patientId": "p1"})


def test_a_server_not_allowed_is_never_contacted() -> None:
    fhir = FakeFhir(bundle=bundle(qr("2026-01-01", "remote")))
    with pytest.raises(DataUnavailable, match="not allowed"):
        locate(
            request(fhirServer="http://elsewhere", fhirAuthorization={"access_token": "t"}),
            fhir,
            CANONICAL,
            server_allowed=False,
        )
    assert fhir.calls == []
    found, source = locate(
        request(prefetch={"intake": qr(None, "pre")}, fhirServer="http://elsewhere"),
        fhir,
        CANONICAL,
        server_allowed=False,
    )
    assert (found["id"], source) == ("pre", "prefetch")
