"""Issue 12 content the vignettes' topics alone do not show: what the cards say."""

from __future__ import annotations

from typing import Any

import pytest

from service.cds.screen import screen
from service.knowledge import Knowledge
from testkit.casekit import build_qr

HOOK = "11111111-2222-4333-8444-555555555555"


def card(knowledge: Knowledge, topic: str, voice: str = "clinician", **spec: Any) -> dict[str, Any]:
    qr = build_qr({"id": "c", **spec})
    cards = screen(qr, knowledge, hook_instance=HOOK, voice=voice).evaluation.cards
    return next(c for c in cards if c["source"]["topic"]["code"] == topic)


@pytest.mark.parametrize("voice", ["clinician", "patient"])
def test_self_care_follows_the_hours_since_onset(knowledge: Knowledge, voice: str) -> None:
    early = card(knowledge, "immediate-steps", voice, answers={"hours-since-onset": 12})
    late = card(knowledge, "immediate-steps", voice, answers={"hours-since-onset": 60})
    assert "ice" in early["detail"].lower() and "not ice" not in early["detail"].lower()
    assert "not ice" in late["detail"].lower()
    assert "24-48" not in late["detail"] and "24-48" not in late["summary"]


def test_self_care_swaps_free_weights_only_when_the_pain_is_minor(knowledge: Knowledge) -> None:
    minor = card(knowledge, "immediate-steps", answers={"pain-severity": 2})
    moderate = card(knowledge, "immediate-steps", answers={"pain-severity": 5})
    assert "The pain is minor" in minor["detail"]
    assert "not minor yet" in moderate["detail"]


@pytest.mark.parametrize("voice", ["clinician", "patient"])
def test_stabilisation_names_tight_hamstrings(knowledge: Knowledge, voice: str) -> None:
    detail = card(knowledge, "stabilisation", voice)["detail"].lower()
    assert "hamstrings" in detail or "backs of your thighs" in detail


def test_combination_card_takes_the_family_topic_with_its_own_text(knowledge: Knowledge) -> None:
    found = card(knowledge, "systemic", answers={"history-of-cancer": "yes", "leg-weakness": "yes"})
    assert found["indicator"] == "critical"
    assert "metastatic spinal cord compression" in found["detail"]
    assert found["extension"]["dev.backpain-cds.provenance"]["rules"][0]["id"] == "mscc-suspected"
    assert found["suggestions"][0]["actions"][0]["resource"]["priority"] == "stat"


def test_persistence_reads_still_present(knowledge: Knowledge) -> None:
    found = card(knowledge, "persistence", answers={"hours-since-onset": 504, "pain-severity": 6})
    assert "still present" in found["detail"]
    assert "- How bad is the pain right now" in found["detail"]
