"""/metrics, X-Request-ID and the JSON request log against real `backpain-cds serve` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from testkit.casekit import build_qr
from testkit.server import ROOT, ServerProcess, free_port
from tests.e2e.conftest import ServerFactory
from tests.unit.test_deploy import image_command

pytestmark = pytest.mark.e2e

INTAKE_SERVICE = "backpain-redflags-intake"
INTAKE = f"/cds-services/{INTAKE_SERVICE}"
HOOK_ROUTE = "/cds-services/<service_id>"
#: A JWT-shaped secret: it must never reach the log.
TOKEN = "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJvYnNlcnZhYmlsaXR5LXRlc3QifQ.c2lnbmF0dXJlLW5ldmVyLWxvZ2dlZA"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def red_flag_request() -> dict[str, Any]:
    """Saddle anaesthesia ticked in the intake: a critical cauda equina card."""
    qr = build_qr({"id": f"obs-{uuid.uuid4().hex[:8]}", "answers": {"saddle-anaesthesia": "yes"}})
    return {
        "hook": "questionnaire-inprogress",
        "hookInstance": str(uuid.uuid4()),
        "context": {"questionnaireResponse": qr},
    }


def scrape(server: ServerProcess, request_id: str | None = None) -> Samples:
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = requests.get(server.url("/metrics"), headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_entries(server: ServerProcess) -> Iterator[dict[str, Any]]:
    for line in server.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if isinstance(entry, dict):
                yield entry


def request_line(server: ServerProcess, request_id: str) -> dict[str, Any]:
    """The one ``service.request`` line of this request (waits briefly for the write)."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            entry
            for entry in log_entries(server)
            if entry.get("logger") == "service.request" and entry.get("request_id") == request_id
        ]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"expected one request line for {request_id}, got {found}"
            return found[0]
        time.sleep(0.05)


def call_hook(server: ServerProcess, request_id: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return requests.post(server.url(INTAKE), json=red_flag_request(), headers=headers, timeout=10)


def test_metrics_count_requests_latency_and_cards(server: ServerProcess) -> None:
    before = scrape(server)
    response = call_hook(server)
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert "critical" in {card["indicator"] for card in cards}
    after = scrape(server)

    labels = {"endpoint": HOOK_ROUTE, "service": INTAKE_SERVICE, "status": "200"}
    requests_total = "backpain_cds_http_requests_total"
    assert value(after, requests_total, method="POST", **labels) - value(
        before, requests_total, method="POST", **labels
    ) == pytest.approx(1)
    count = "backpain_cds_http_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == pytest.approx(1)
    bucket = "backpain_cds_http_request_duration_seconds_bucket"
    assert value(after, bucket, le="+Inf", **labels) >= 1

    issued = "backpain_cds_cards_issued_total"
    new_cards = {
        (dict(key[1])["indicator"], dict(key[1])["rule_id"]): count - before.get(key, 0.0)
        for key, count in after.items()
        if key[0] == issued and count - before.get(key, 0.0) > 0
    }
    assert new_cards[("critical", "cauda-equina-red-flag")] == pytest.approx(1)
    assert sorted(indicator for indicator, _ in new_cards) == sorted(
        card["indicator"] for card in cards
    )
    new_card_services = {
        dict(key[1])["service"]
        for key, count in after.items()
        if key[0] == issued and count - before.get(key, 0.0) > 0
    }
    assert new_card_services == {INTAKE_SERVICE}


def test_metrics_report_audit_health(server: ServerProcess) -> None:
    samples = scrape(server)
    assert value(samples, "backpain_cds_database_up") == 1.0
    assert value(samples, "backpain_cds_audit_spool_depth") == 0.0


def test_unknown_service_ids_do_not_become_labels(server: ServerProcess) -> None:
    hostile = f"no-such-service-{uuid.uuid4().hex}"
    response = requests.post(server.url(f"/cds-services/{hostile}"), json={}, timeout=10)
    assert response.status_code == 404
    text = requests.get(server.url("/metrics"), timeout=10).text
    assert hostile not in text
    assert 'service="unknown"' in text


def test_request_id_is_echoed_or_generated(server: ServerProcess) -> None:
    mine = f"ehr-{uuid.uuid4()}"
    assert call_hook(server, mine).headers["X-Request-ID"] == mine
    generated = requests.get(server.url("/healthz"), timeout=10).headers["X-Request-ID"]
    assert uuid.UUID(generated).version == 4
    too_long = "r" * 129
    replaced = requests.get(
        server.url("/healthz"), headers={"X-Request-ID": too_long}, timeout=10
    ).headers["X-Request-ID"]
    assert replaced != too_long and uuid.UUID(replaced).version == 4


def test_one_json_log_line_per_request_without_the_token(server: ServerProcess) -> None:
    request_id = f"log-{uuid.uuid4()}"
    response = call_hook(server, request_id)
    assert response.status_code == 200
    entry = request_line(server, request_id)
    assert entry["level"] == "INFO"
    assert entry["method"] == "POST"
    assert entry["path"] == INTAKE
    assert entry["service"] == INTAKE_SERVICE
    assert entry["status"] == 200
    assert entry["hook"] == "questionnaire-inprogress"
    assert isinstance(entry["latency_ms"], int | float) and entry["latency_ms"] > 0
    assert "cauda-equina-red-flag" in entry["rules"]
    assert sorted(entry["indicators"]) == sorted(c["indicator"] for c in response.json()["cards"])
    assert uuid.UUID(entry["invocation_id"])
    assert entry["error"] is None
    assert entry["ts"].endswith("+00:00")
    log = server.log()
    assert TOKEN not in log
    assert "Bearer" not in log
    assert "saddle" not in log  # no answers, no QR content


def test_error_line_carries_the_error_code(server: ServerProcess) -> None:
    request_id = f"err-{uuid.uuid4()}"
    response = requests.post(
        server.url(INTAKE),
        data=b"not json",
        headers={"Content-Type": "text/plain", "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 415
    entry = request_line(server, request_id)
    assert entry["status"] == 415
    assert entry["error"] == "not-supported"
    assert entry["rules"] == [] and entry["indicators"] == []


def test_every_log_line_is_json(server: ServerProcess) -> None:
    call_hook(server)
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            not_json.append(line)
    assert not not_json, f"non-JSON log lines: {not_json[:5]}"


def test_workers_add_up_in_multiprocess_mode(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two gunicorn workers sharing PROMETHEUS_MULTIPROC_DIR: the calls served by workers
    that have since exited still count, on whichever worker answers /metrics."""
    metrics_dir = tmp_path_factory.mktemp("prometheus-multiproc")
    (metrics_dir / "counter_99999999.db").write_bytes(b"left over from a previous run")
    server = server_factory({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=2)
    assert not (metrics_dir / "counter_99999999.db").exists()  # emptied at start

    calls = 16
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: call_hook(server).status_code, range(calls)))
    assert statuses == [200] * calls
    serving = {
        entry["pid"]
        for entry in log_entries(server)
        if entry.get("logger") == "service.request" and entry.get("path") == INTAKE
    }
    assert serving and server.process.pid not in serving

    # Stop every worker that served a call; the master replaces them.
    for pid in serving:
        os.kill(pid, signal.SIGTERM)
    labels = {"endpoint": HOOK_ROUTE, "service": INTAKE_SERVICE, "method": "POST", "status": "200"}
    deadline = time.monotonic() + 30
    while True:
        request_id = f"scrape-{uuid.uuid4()}"
        try:
            samples = scrape(server, request_id)
        except requests.RequestException:
            samples = None  # between a worker's exit and its replacement
        if samples is not None:
            assert value(samples, "backpain_cds_http_requests_total", **labels) == calls
            assert value(
                samples,
                "backpain_cds_cards_issued_total",
                service=INTAKE_SERVICE,
                indicator="critical",
                rule_id="cauda-equina-red-flag",
            ) == pytest.approx(calls)
            if request_line(server, request_id)["pid"] not in serving:
                return  # a process that served none of the calls reported all of them
        assert time.monotonic() < deadline, "no replacement worker answered /metrics in 30 s"
        time.sleep(0.2)


def test_image_command_starts_the_compose_configuration(database_url: str, tmp_path: Path) -> None:
    """The Dockerfile's ENTRYPOINT+CMD through the installed console script, auth on with
    the issuers file compose mounts (only the address is changed: loopback, a free port)."""
    command = image_command()
    assert command[:2] == ["backpain-cds", "serve"]
    port = free_port()
    argv = [str(Path(sys.executable).with_name("backpain-cds")), *command[1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    env = {
        key: val
        for key, val in os.environ.items()
        if not key.startswith(("CDS_", "DATABASE_URL", "CORS_", "AUDIT_", "PROMETHEUS_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "CDS_AUTH": "on",
            "CDS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CDS_TRUSTED_ISSUERS": str(ROOT / "deploy" / "trusted-issuers.example.json"),
            "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus-multiproc"),
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_path = tmp_path / "image-command.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log_file, stderr=log_file)
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path, env)
    try:
        _wait_healthy(server)
        request_id = f"image-{uuid.uuid4()}"
        response = call_hook(server, request_id)  # a bearer token that is not a valid JWT
        assert response.status_code == 401
        assert response.headers["X-Request-ID"] == request_id
        entry = request_line(server, request_id)
        assert (entry["status"], entry["error"]) == (401, "login")
        samples = scrape(server)
        labels = {"endpoint": HOOK_ROUTE, "service": INTAKE_SERVICE, "method": "POST"}
        assert value(samples, "backpain_cds_http_requests_total", status="401", **labels) == 1
        assert TOKEN not in server.log()
    finally:
        server.stop()


def _wait_healthy(server: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url("/healthz"), timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not healthy in {timeout}s:\n{server.log()}")
