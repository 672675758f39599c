"""QuestionnaireResponses for the differential test of FHIR validation (fast path vs reference).

* ``known_qrs()``: every QR the other tests use: the clinical vignettes
  (``tests/cases``), the sample request, the bad-input corpus (``hostile_cases.yaml``).
* ``generated(seed)``: one QR built from a known valid QR by seeded, reproducible
  edits: 0 to 3 *valid* variations (every answer type, answers with nested items,
  primitive extensions, contained forms, unicode, extreme but legal numbers...) and,
  two times in three, one *mutation* of a kind named in ``MUTATIONS`` (wrong types,
  bad dates and codes, empty strings, extra fields, value[x] collisions, nulls, huge
  numbers, control characters...). The kind comes back with the QR, so a failure
  names what was done and ``generated(seed)`` rebuilds it.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testkit.casekit import build_qr, load_cases
from tests.http.hostile import load_cases as load_hostile_cases
from tests.http.hostile import overlay, valid_qr
from tests.unit.qr_edits import VALID_EDITS, Json
from tests.unit.qr_mutations import MUTATIONS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "samples" / "patient-view-request.json"


# -- the QRs of the other tests ------------------------------------------------------------


def _hostile_qrs() -> Iterator[tuple[str, Json]]:
    for case in load_hostile_cases():
        body = case.get("body") or {}
        if "qr" in body:
            yield f"hostile: {case['name']}", overlay(valid_qr(), body["qr"])
        context = (body.get("envelope") or {}).get("context") or {}
        if "questionnaireResponse" in context:
            yield f"hostile: {case['name']}", context["questionnaireResponse"]
        prefetch = (body.get("envelope") or {}).get("prefetch") or {}
        for key, value in prefetch.items() if isinstance(prefetch, dict) else ():
            yield f"hostile: {case['name']} (prefetch {key})", value


def known_qrs() -> list[tuple[str, Json]]:
    found: list[tuple[str, Json]] = [(f"case: {c.id}", c.qr) for c in load_cases()]
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    found += [(f"sample: prefetch {k}", v) for k, v in sample.get("prefetch", {}).items()]
    found.append(("hostile: base", valid_qr()))
    found += list(_hostile_qrs())
    return found


def valid_bases() -> list[dict[str, Any]]:
    return [
        build_qr({"id": "base-intake"}),
        build_qr({"id": "base-foreign", "form": "foreign"}),
        build_qr({"id": "base-snomed", "style": "snomed", "form": "snomed-only"}),
        build_qr({"id": "base-boolean", "style": "boolean", "form": "none"}),
        build_qr({"id": "base-self", "form": "unknown", "self_describing": ["fever"]}),
        valid_qr(),
    ]


def generated(seed: int, bases: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """One reproducible QR (``seed``) and what was done to it."""
    rng = random.Random(seed)
    qr = copy.deepcopy(rng.choice(bases))
    done = []
    for _ in range(rng.randint(0, 3)):
        edit = rng.choice(VALID_EDITS)
        edit(rng, qr)
        done.append(edit.__name__.lstrip("_"))
    kind = "valid"
    if rng.random() < 2 / 3:
        kind = rng.choice(sorted(MUTATIONS))
        MUTATIONS[kind](rng, qr)
    return f"{kind} (seed {seed}; {', '.join(done) or 'no variation'})", qr
