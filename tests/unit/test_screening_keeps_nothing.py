"""A Screener reuses validated QRs by content hash; different content is validated afresh."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service import fhir
from service.cds import screen as screen_module
from service.cds.screen import BoundedCache, Screener
from service.knowledge import Knowledge
from testkit.casekit import build_qr, topics_of


class CountingParser:
    """Wraps a screener's parser; counts the QRs it is asked to validate."""

    def __init__(self, screener: Screener) -> None:
        self.calls = 0
        self.real = screener.parser.parse

    def __call__(self, data: object) -> Any:
        self.calls += 1
        return self.real(data)


def test_same_content_is_validated_once(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    screener = Screener(knowledge, cache_size=4)
    parser = CountingParser(screener)
    monkeypatch.setattr(screener.parser, "parse", parser)
    qr = build_qr({"id": "cache-1", "answers": {"saddle-anaesthesia": "yes"}})

    first = screener.screen(qr, hook_instance="a")
    second = screener.screen(copy.deepcopy(qr), hook_instance="b")
    assert parser.calls == 1
    assert topics_of(first.evaluation.cards) == topics_of(second.evaluation.cards)
    assert first.evaluation.cards[0]["uuid"] != second.evaluation.cards[0]["uuid"]

    changed = build_qr({"id": "cache-1", "answers": {"saddle-anaesthesia": "no"}})
    third = screener.screen(changed, hook_instance="c")
    assert parser.calls == 2
    assert "cauda-equina" not in topics_of(third.evaluation.cards)


def test_two_screeners_keep_their_own_cache(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    qr = build_qr({"id": "cache-3"})
    calls = 0
    for screener in (Screener(knowledge), Screener(knowledge)):
        parser = CountingParser(screener)
        monkeypatch.setattr(screener.parser, "parse", parser)
        screener.screen(qr, hook_instance="a")
        calls += parser.calls
    assert calls == 2


def test_invalid_content_is_never_cached(knowledge: Knowledge) -> None:
    screener = Screener(knowledge, cache_size=4)
    qr = build_qr({"id": "cache-2"})
    qr["authored"] = "not a date"
    for _ in range(2):
        with pytest.raises(fhir.InvalidResource):
            screener.screen(qr, hook_instance="x")


def test_cache_is_bounded() -> None:
    cache: BoundedCache[str, fhir.QuestionnaireResponse] = BoundedCache(2)
    models = [fhir.parse_questionnaire_response(build_qr({"id": f"b{i}"})) for i in range(3)]
    for index, model in enumerate(models):
        cache.put(str(index), model)
    assert cache.get("0") is None
    assert cache.get("1") is models[1] and cache.get("2") is models[2]


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
