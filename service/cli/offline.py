"""``backpain-cds evaluate``: the same cards offline, from a file, through the same hook use case.

A file holds a CDS Hooks request, a QuestionnaireResponse, or a searchset Bundle (the
newest ``authored`` wins, as in the hook). The table shows each card and the answers
that fired it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.cds.hook import HookResult
from service.cds.locate import newest_questionnaire_response
from service.config import Settings


class OfflineError(ValueError):
    """The file cannot be evaluated (the message names the file and why)."""


def load_request(path: Path) -> dict[str, Any]:
    """The file as a hook request: as is, or a QR/Bundle wrapped for the intake hook."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OfflineError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise OfflineError(f"{path}: expected a JSON object")
    if "hook" in data:
        return data
    if data.get("resourceType") == "Bundle":
        newest = newest_questionnaire_response(data)
        if newest is None:
            raise OfflineError(f"{path}: the Bundle holds no QuestionnaireResponse to screen")
        data = newest
    if data.get("resourceType") != "QuestionnaireResponse":
        raise OfflineError(
            f"{path}: expected a CDS Hooks request, a QuestionnaireResponse or a searchset Bundle"
        )
    return {
        "hook": "questionnaire-inprogress",
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"file:{path.name}")),
        "context": {"questionnaireResponse": data},
    }


def evaluate_request(settings: Settings, raw: Mapping[str, Any]) -> tuple[HookResult, Any]:
    """Run the hook use case on ``raw``; returns the result and the loaded knowledge."""
    from marshmallow import ValidationError

    from service.app import load_knowledge
    from service.auth.fhir_servers import FhirServerPolicy
    from service.cds.errors import BadRequest, DataUnavailable, QuestionnaireResponseInvalid
    from service.cds.hook import HookHandler
    from service.cds.screen import Screener
    from service.fhir.client import FhirClient
    from service.http.schemas import HookRequestSchema

    knowledge = load_knowledge(settings)
    screener = Screener(knowledge, max_items=settings.max_qr_items, public_url=settings.public_url)
    fhir = FhirClient(timeout=settings.fhir_timeout, max_bytes=settings.fhir_max_response_bytes)
    # offline: no client token, so the auth-off list applies (loopback by default)
    handler = HookHandler(
        screener, fhir, FhirServerPolicy.without_auth(settings.fhir_servers_allowed)
    )
    service = next((s for s in handler.catalogue if s.hook == raw.get("hook")), None)
    if service is None:
        raise OfflineError(f"no service answers hook {raw.get('hook')!r}")
    try:
        request = HookRequestSchema().load(raw)
        return handler.handle(service, request), knowledge
    except ValidationError as exc:
        raise OfflineError(f"invalid request: {json.dumps(exc.messages)}") from exc
    except (BadRequest, DataUnavailable, QuestionnaireResponseInvalid) as exc:
        raise OfflineError(str(exc)) from exc


def table(result: HookResult, questions: Mapping[str, str]) -> str:
    """Indicator, topic and summary per card; under each, the answers that fired it and
    the red-flag questions it found unanswered."""
    cards: list[dict[str, Any]] = result.response["cards"]
    if not cards:
        return "No cards." + ("" if result.screening else " (no intake on file)")
    findings = result.screening.evaluation.findings if result.screening else ()
    rows = [("INDICATOR", "TOPIC", "SUMMARY")] + [
        (
            str(card.get("indicator", "")),
            str((card.get("source", {}).get("topic") or {}).get("code", "")),
            str(card.get("summary", "")),
        )
        for card in cards
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    indent = " " * (widths[0] + widths[1] + 4)
    lines = [f"{rows[0][0]:<{widths[0]}}  {rows[0][1]:<{widths[1]}}  {rows[0][2]}"]
    for card, row in zip(cards, rows[1:], strict=True):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
        mine = [f for f in findings if f.card_uuid == card.get("uuid")]
        seen: set[tuple[str, str]] = set()
        for answer in (a for f in mine for a in f.evidence):
            fired = (answer.question or answer.concept, answer.display or str(answer.value))
            if fired not in seen:
                seen.add(fired)
                lines.append(f"{indent}fired by: {fired[0]} = {fired[1]}")
        for concept in dict.fromkeys(c for f in mine for c in f.missing):
            lines.append(f"{indent}not answered: {questions.get(concept, concept)}")
    return "\n".join(lines)
