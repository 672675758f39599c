"""The console script: the same cards offline, and the knowledge check."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from jwt import PyJWK

from service.cli import main
from testkit.casekit import Case, hook_request, indicators_of, load_cases, topics_of
from tests.hookdata import quiet_qr, sample_qr, searchset, with_subject

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
    path.write_text(
        json.dumps(
            case.qr
            if case.patient is None
            else hook_request(case, "11111111-2222-4333-8444-555555555555")
        )
    )
    result = CliRunner().invoke(main, ["evaluate", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    cards = json.loads(result.output)["cards"]
    assert topics_of(cards) == case.expected_topics, case.description
    assert indicators_of(cards) == case.expected_indicators


# -- evaluate: searchset Bundles and the answers that fired ------------------------------


def _bundle_file(tmp_path: Path, *resources: dict[str, Any]) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(searchset(*resources)))
    return path


def test_evaluate_takes_a_searchset_bundle_and_the_newest_authored_wins(tmp_path: Path) -> None:
    alarming = with_subject(sample_qr(), "athlete-1", "2026-11-20T10:00:00Z")
    quiet = with_subject(quiet_qr(), "athlete-1", "2026-11-01T10:00:00Z")
    result = CliRunner().invoke(main, ["evaluate", str(_bundle_file(tmp_path, quiet, alarming))])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith("critical")

    alarming["authored"], quiet["authored"] = quiet["authored"], alarming["authored"]
    result = CliRunner().invoke(
        main, ["evaluate", str(_bundle_file(tmp_path, quiet, alarming)), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert set(indicators_of(json.loads(result.output)["cards"])) == {"info"}


def test_evaluate_of_a_bundle_without_an_intake_says_so_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(_bundle_file(tmp_path))])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.strip().count("\n") == 0
    assert "no QuestionnaireResponse" in result.output


def test_the_evaluate_table_shows_the_answers_that_fired_each_card() -> None:
    result = CliRunner().invoke(main, ["evaluate", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("critical") and "cauda-equina" in lines[1]
    fired = lines[2]
    assert "new trouble starting to pass urine" in fired and fired.rstrip().endswith("Yes")


# -- failures: one line, exit status 1, never a traceback; read-only creates nothing -----

READ_ONLY = [
    ["audit", "show"],
    ["db", "current"],
    ["evaluate", str(SAMPLE)],
    ["rules", "check"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=[" ".join(a[:2]) for a in READ_ONLY])
def test_read_only_commands_create_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Outside the repository, with the default DATABASE_URL (./var/audit.sqlite3)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, args)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert list(tmp_path.iterdir()) == []
    if args[0] in {"audit", "db"}:
        assert result.exit_code == 1
        assert result.output.strip().count("\n") == 0, result.output
        assert "var/audit.sqlite3" in result.output


FAILING = {
    "bad DATABASE_URL scheme": (["audit", "show"], {"DATABASE_URL": "mysql://db/x"}),
    "unreachable PostgreSQL": (
        ["audit", "show"],
        {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"},
    ),
    "db current, unreachable": (
        ["db", "current"],
        {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"},
    ),
    "db upgrade, unreachable": (
        ["db", "upgrade"],
        {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"},
    ),
    "bad setting": (["audit", "show"], {"DB_CONNECT_TIMEOUT_SECONDS": "soon"}),
    "no rules folder": (["rules", "check"], {"RULES_DIR": "/nonexistent/rules"}),
    "evaluate, no rules folder": (["evaluate", str(SAMPLE)], {"RULES_DIR": "/nonexistent"}),
}


@pytest.mark.parametrize("name", list(FAILING))
def test_every_failure_is_one_line_and_exit_status_1(name: str) -> None:
    args, env = FAILING[name]
    done = subprocess.run(
        [*_script(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("Error: ")


# -- serve: a busy port --------------------------------------------------------------------


def test_serve_on_a_busy_port_says_so_in_one_line_before_starting_gunicorn() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [*_script(), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CDS_AUTH": "off"},
        )
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: port {port} on 127.0.0.1 is already in use")
    assert f"PORT={port + 1}" in line


# -- rules vocabulary and dev-token -------------------------------------------------------


def test_rules_vocabulary_lists_every_predicate_and_placeholder_of_the_engine() -> None:
    from service.engine import PREDICATES
    from service.engine.text import PLACEHOLDERS

    result = CliRunner().invoke(main, ["rules", "vocabulary"])
    assert result.exit_code == 0, result.output
    for spec in PREDICATES.values():
        assert f"| `{spec.name}` |" in result.output and spec.description in result.output
    for name in PLACEHOLDERS:
        assert f"| `{{{name}}}` |" in result.output
    assert "| `choice-in` | `concept`, `concepts` or `valueSet` and `codes` |" in result.output
    assert "| `always` | `true` |" in result.output


def test_dev_token_signs_for_a_local_issuer_it_pins_in_an_issuers_file(tmp_path: Path) -> None:
    key, issuers = tmp_path / "keys" / "dev.pem", tmp_path / "issuers.json"
    url = "http://127.0.0.1:8080/cds-services"
    args = ["dev-token", url, "--key", str(key), "--issuers-file", str(issuers)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert key.stat().st_mode & 0o777 == 0o600
    token = result.stdout.strip()
    [entry] = json.loads(issuers.read_text())["issuers"]
    assert entry["iss"] == "http://127.0.0.1/dev-client" and "jku" not in entry
    [jwk] = entry["jwks"]["keys"]
    assert jwt.get_unverified_header(token) == {"alg": "ES384", "kid": jwk["kid"], "typ": "JWT"}
    claims = jwt.decode(token, PyJWK(jwk).key, algorithms=["ES384"], audience=url)
    assert claims["iss"] == entry["iss"] and claims["exp"] - claims["iat"] == 300
    # the same key next time; a fresh jti each time
    again = CliRunner().invoke(main, ["dev-token", url, "--key", str(key)])
    again_claims = jwt.decode(
        again.stdout.strip(), PyJWK(jwk).key, algorithms=["ES384"], audience=url
    )
    assert again_claims["jti"] != claims["jti"]


def test_dev_token_refuses_an_issuer_that_is_not_loopback(tmp_path: Path) -> None:
    args = ["dev-token", "http://127.0.0.1:8080/cds-services", "--key", str(tmp_path / "k.pem")]
    result = CliRunner().invoke(main, [*args, "--iss", "https://ehr.example.org"])
    assert result.exit_code == 1
    assert "development only" in result.output
    assert not (tmp_path / "k.pem").exists()


# -- audit show: several outcomes on one card --------------------------------------------


def test_audit_show_keeps_every_outcome_and_marks_the_latest_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent out of order: the outcome with the latest outcomeTimestamp is current."""
    from service.app import create_app
    from service.config import Settings
    from service.http.runtime import EXTENSION_KEY
    from tests.hookdata import PATIENT_VIEW, sample

    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    monkeypatch.setenv("DATABASE_URL", url)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    app = create_app(Settings(database_url=url, auth_enabled=False, spool_dir=tmp_path / "spool"))
    try:
        client = app.test_client()
        assert (
            client.post(PATIENT_VIEW, json=sample("patient-view-request.json")).status_code == 200
        )
        for name in ("feedback.json", "feedback-accepted.json"):  # 10:05 first, then 10:00
            assert client.post(f"{PATIENT_VIEW}/feedback", json=sample(name)).status_code == 200
    finally:
        app.extensions[EXTENSION_KEY].audit.close()

    table = CliRunner().invoke(main, ["audit", "show", "--patient", "athlete-1"])
    assert table.exit_code == 0, table.output
    feedback = [line.strip() for line in table.output.splitlines() if "feedback:" in line]
    assert feedback[0].startswith("feedback: accepted at 2026-11-24 10:00:00Z")
    assert "(current)" not in feedback[0]
    assert feedback[1].startswith("feedback: overridden at 2026-11-24 10:05:00Z (current)")

    shown = CliRunner().invoke(
        main, ["audit", "show", "--patient", "athlete-1", "--format", "json"]
    )
    [card] = json.loads(shown.output)[-1]["cards"]
    assert [f["outcome"] for f in card["feedback"]] == ["accepted", "overridden"]
    assert card["current_outcome"] == "overridden"
