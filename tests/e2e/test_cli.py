"""The console script: the same cards offline, and the knowledge check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main
from testkit.casekit import Case, indicators_of, load_cases, topics_of

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "patient-view-request.json"
CASES = load_cases()


def _script() -> list[str]:
    found = shutil.which("backpain-cds", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "service.cli"]


def test_console_script_evaluates_the_sample_request() -> None:
    done = subprocess.run(
        [*_script(), "evaluate", str(SAMPLE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    first_card_line = done.stdout.splitlines()[1]
    assert first_card_line.startswith("critical") and "cauda-equina" in first_card_line


def test_console_script_rules_check() -> None:
    done = subprocess.run(
        [*_script(), "rules", "check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK:")


def test_evaluate_rejects_a_file_that_is_not_fhir(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    result = CliRunner().invoke(main, ["evaluate", str(bad)])
    assert result.exit_code == 1
    assert "expected a CDS Hooks request" in result.output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_clinical_case_through_cli(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "qr.json"
    path.write_text(json.dumps(case.qr))
    result = CliRunner().invoke(main, ["evaluate", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    cards = json.loads(result.output)["cards"]
    assert topics_of(cards) == case.expected_topics, case.description
    assert indicators_of(cards) == case.expected_indicators
