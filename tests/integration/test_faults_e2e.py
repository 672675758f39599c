"""Issue 11, audit faults reproduced against real ``backpain-cds serve`` processes.

Real gunicorn workers, real PostgreSQL (a database of its own per test, sometimes
behind ``TcpProxy`` so the test can cut it), real HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import make_url

from testkit.pg import DatabaseFactory, scalar_int
from testkit.server import ROOT, ServerProcess, clean_env, free_port, serve_args, start_server
from testkit.signing import ClientKey, claims, jwks
from tests.integration.proxy import TcpProxy
from tests.integration.test_timeouts import table_locked

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PATIENT_VIEW = "/cds-services/backpain-redflags-patient-view"
DISCOVERY = "/cds-services"
PUBLIC_URL = "https://cds.example.org"
EHR = "https://ehr.example.org"
#: generous bound on every wait: the behaviour under test takes well under a second
BOUND_SECONDS = 30.0


def sample_request() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "patient-view-request.json").read_text())
    data["hookInstance"] = str(uuid.uuid4())
    return data


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {BOUND_SECONDS}s: {what}")
        time.sleep(0.1)


def readiness(server: ServerProcess) -> int:
    return requests.get(server.url("/readyz"), timeout=5).status_code


def test_a_locked_invocation_table_neither_stalls_calls_nor_hides_from_readyz(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    """Finding 3: ``LOCK TABLE invocation`` held made each call wait while /readyz said ready."""
    url = make_database()
    server = start_server(
        tmp_path, {"DATABASE_URL": url, "CDS_AUTH": "off", "AUDIT_SPOOL_DRAIN_SECONDS": "0.2"}
    )
    try:
        body = sample_request()
        with table_locked(url, "invocation"):
            try:
                answered = requests.post(server.url(PATIENT_VIEW), json=body, timeout=BOUND_SECONDS)
            except requests.Timeout:
                pytest.fail("the hook call waited for the table lock")
            ready_while_locked = readiness(server)
        assert answered.status_code == 200
        assert ready_while_locked == 503
        wait_until(lambda: readiness(server) == 200, "ready again once the lock is gone")
        instance = body["hookInstance"]
        sql = "SELECT count(*) FROM invocation WHERE hook_instance = :i"
        wait_until(
            lambda: scalar_int(url, sql, i=instance) == 1, "the spooled call reached the database"
        )
    finally:
        server.stop()


@pytest.mark.parametrize("path", [DISCOVERY, PATIENT_VIEW], ids=["discovery", "hook-call"])
def test_a_token_is_accepted_once_per_pod_through_an_outage_and_then_once_anywhere(
    make_database: DatabaseFactory, tmp_path: Path, path: str
) -> None:
    """Finding 2: replays were accepted once per worker during an outage, and a token
    accepted during it was accepted again by another pod afterwards. A hook call's jti
    is settled with its audit record (issue 15): the same holds, and no refused call
    gets a card."""
    url = make_database()
    real = make_url(url)
    key = ClientKey.es384("ehr-1")
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": EHR, "jwks": jwks(key)}]}))
    auth = {
        "CDS_AUTH": "on",
        "CDS_PUBLIC_URL": PUBLIC_URL,
        "CDS_TRUSTED_ISSUERS": str(issuers),
        "DB_CONNECT_TIMEOUT_SECONDS": "1",
        "AUDIT_SPOOL_DRAIN_SECONDS": "0.2",
    }

    def token() -> str:
        return key.sign(claims(EHR, PUBLIC_URL + path, jti=str(uuid.uuid4())))

    def status(server: ServerProcess, bearer: str) -> int:
        headers = {"Authorization": f"Bearer {bearer}"}
        if path == DISCOVERY:
            return requests.get(server.url(path), headers=headers, timeout=10).status_code
        answer = requests.post(server.url(path), json=sample_request(), headers=headers, timeout=10)
        assert answer.status_code == 200 or "cards" not in answer.json(), answer.text
        return answer.status_code

    for pod_dir in ("a", "b", "c"):
        (tmp_path / pod_dir).mkdir()
    with TcpProxy.in_front_of(real) as proxy:
        via_proxy = proxy.url(real)
        pod = start_server(tmp_path / "a", {**auth, "DATABASE_URL": via_proxy}, workers=2)
        strict = start_server(
            tmp_path / "c",
            {**auth, "DATABASE_URL": via_proxy, "CDS_REPLAY_FAIL_CLOSED": "on"},
        )
        other_pod = start_server(tmp_path / "b", {**auth, "DATABASE_URL": url})
        try:
            before, during = token(), token()
            assert status(pod, before) == 200

            proxy.cut()
            assert [status(pod, before) for _ in range(6)] == [401] * 6
            assert [status(pod, during) for _ in range(6)] == [200] + [401] * 5
            assert status(strict, token()) == 503  # fail-closed: cannot ask PostgreSQL

            proxy.restore()

            def caught_up() -> bool:
                health = requests.get(pod.url("/readyz"), timeout=5).json()
                return bool(health["database"] == "up" and health["replay_pending"] == 0)

            wait_until(caught_up, "the pod wrote the jtis it accepted to PostgreSQL")
            assert status(other_pod, during) == 401
            assert status(other_pod, before) == 401
            assert status(other_pod, token()) == 200
            if path == PATIENT_VIEW:  # what was sent is what the audit holds
                by_status = "SELECT count(*) FROM invocation WHERE http_status = :s"
                wait_until(lambda: scalar_int(url, by_status, s=200) == 3, "the 3 accepted calls")
                # the fail-closed pod's answer, spooled there until its drainer got through
                wait_until(lambda: scalar_int(url, by_status, s=503) == 1, "the 503 recorded")
                assert scalar_int(url, by_status, s=401) == 0  # replays are refusals, not rows
        finally:
            for server in (pod, strict, other_pod):
                server.stop()
        assert "Traceback" not in pod.log() + strict.log()


def test_an_unwritable_spool_directory_stops_serve_before_it_binds(tmp_path: Path) -> None:
    """Finding 13: found only after binding, each worker crashing with a traceback."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be\n")
    port = free_port()
    env = clean_env(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
            "CDS_AUTH": "off",
            "AUDIT_SPOOL_DIR": str(blocker / "spool"),
        }
    )
    done = subprocess.run(
        [sys.executable, *serve_args(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS * 2,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert "Listening at" not in output  # gunicorn never bound
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert "AUDIT_SPOOL_DIR" in error and str(blocker / "spool") in error
