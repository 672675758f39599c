"""A Screener keeps nothing of the QRs it screened: each object kept alive after a call is
scanned by every later garbage collection of the worker (with 256 validated models kept,
collections paused a worker for 35-80 ms: bench/README.md)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from service import fhir
from service.cds import screen as screen_module
from service.cds.screen import Screener
from service.knowledge import Knowledge
from testkit.casekit import build_qr, topics_of


def _tracked_after_collection() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_screening_distinct_qrs_leaves_no_objects_behind(knowledge: Knowledge) -> None:
    screener = Screener(knowledge)
    answers = {"saddle-anaesthesia": "yes", "bladder-dysfunction-new": "yes"}
    for i in range(5):  # warm: first calls may build what is kept by design (compiled paths)
        screener.screen(build_qr({"id": f"warm-{i}", "answers": answers}), hook_instance="w")
    qrs = [build_qr({"id": f"kept-{i}", "answers": answers}) for i in range(40)]
    before = _tracked_after_collection()
    for qr in qrs:
        screening = screener.screen(qr, hook_instance="x")
        assert "cauda-equina" in topics_of(screening.evaluation.cards)
    del screening
    grown = _tracked_after_collection() - before
    assert grown < 40, f"{grown} objects are still alive after 40 screens"


def test_the_same_qr_screened_twice_gives_the_same_findings(knowledge: Knowledge) -> None:
    screener = Screener(knowledge)
    qr = build_qr({"id": "twice", "answers": {"saddle-anaesthesia": "yes"}})
    first = screener.screen(qr, hook_instance="a")
    second = screener.screen(qr, hook_instance="b")
    assert first.qr_sha256 == second.qr_sha256
    assert topics_of(first.evaluation.cards) == topics_of(second.evaluation.cards)
    assert first.evaluation.cards[0]["uuid"] != second.evaluation.cards[0]["uuid"]


def test_invalid_content_is_refused_every_time(knowledge: Knowledge) -> None:
    screener = Screener(knowledge)
    qr = build_qr({"id": "cache-2"})
    qr["authored"] = "not a date"
    for _ in range(2):
        with pytest.raises(fhir.InvalidResource):
            screener.screen(qr, hook_instance="x")


@pytest.mark.parametrize(
    "qr",
    [
        build_qr({"id": "ascii", "answers": {"saddle-anaesthesia": "yes"}}),
        {"resourceType": "QuestionnaireResponse", "id": "é-ü", "text": {"div": "Schmerz ✓ 痛"}},
        {"b": [1, 2.5, 1e-07, 10**20, None, True], "a": {"z": '\n\t"\\', "y": "\u2028"}},
    ],
    ids=["intake", "non-ascii", "numbers-and-escapes"],
)
def test_the_audits_qr_hash_is_the_sha256_of_the_canonical_json(qr: dict[str, Any]) -> None:
    """``qr_sha256`` (stored in the audit) keeps its definition whatever makes it faster:
    sha256 of the UTF-8 of ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``."""
    import hashlib
    import json

    text = json.dumps(qr, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert screen_module.canonical_sha256(qr) == hashlib.sha256(text.encode()).hexdigest()
