"""The request lifecycle in process: request ids, the JSON log line, /metrics per app,
and the audit record written with the status actually sent."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, Response, jsonify
from prometheus_client.parser import text_string_to_metric_families

from service.audit.records import InvocationRecord
from service.engine.model import Finding
from service.http import lifecycle
from service.http import trace as tracing
from service.http.errors import Problem, register_error_handlers
from service.http.logs import REQUEST_LOGGER, JsonFormatter, logging_config
from service.http.metrics import MetricsEndpoint
from service.http.trace import accepted_request_id


class Health:
    """The audit trail's health, as the test sets it; keeps the records it is given."""

    def __init__(self, database: str = "up", spool_depth: int = 0) -> None:
        self.state: dict[str, Any] = {"database": database, "spool_depth": spool_depth}
        self.records: list[InvocationRecord] = []
        self.refusals: list[tuple[str, int, datetime]] = []

    def health(self) -> Mapping[str, Any]:
        return dict(self.state)

    def record_invocation(self, record: InvocationRecord) -> None:
        self.records.append(record)

    def record_refusal(self, client_key: str, status: int, at: datetime) -> None:
        self.refusals.append((client_key, status, at))


def _finding(rule_id: str, indicator: str) -> Finding:
    return Finding(
        rule_id=rule_id,
        rule_version="1",
        topic="topic",
        indicator=indicator,
        card_uuid=str(uuid.uuid4()),
        evidence=(),
    )


def make_app(health: Health) -> Flask:
    app = Flask(__name__)
    register_error_handlers(app)
    endpoint = MetricsEndpoint(None)
    endpoint.bind(health)
    app.extensions["hooks"] = endpoint.metrics.audit_hooks()
    lifecycle.install(
        app,
        audit=health,  # type: ignore[arg-type]
        metrics=endpoint.metrics,
        services={},
        clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
        new_id=uuid.uuid4,
    )
    app.add_url_rule("/metrics", "metrics", endpoint.view)

    @app.post("/cds-services/<service_id>")
    def call(service_id: str) -> Any:
        trace = tracing.current()
        trace.hook = "patient-view"
        findings = (_finding("cauda-equina", "critical"), _finding("sciatica", "warning"))
        trace.result = SimpleNamespace(  # type: ignore[assignment]
            screening=SimpleNamespace(
                evaluation=SimpleNamespace(findings=findings, rules_version="r 1"),
                qr_id=None,
                qr_version=None,
                qr_sha256=None,
                questionnaire=None,
            ),
            qr_source="context",
        )
        return jsonify({"cards": []})

    @app.get("/broken")
    def broken() -> Any:
        raise Problem(412, "no intake", code="not-found")

    return app


def samples(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_request_id_is_echoed_generated_or_replaced() -> None:
    client = make_app(Health()).test_client()
    assert client.get("/healthz-missing", headers={"X-Request-ID": "abc-123"}).headers[
        "X-Request-ID"
    ] == ("abc-123")
    generated = client.get("/metrics").headers["X-Request-ID"]
    assert uuid.UUID(generated).version == 4
    for hostile in ("x" * 129, "bad\x01id", ""):
        replaced = client.get("/metrics", headers={"X-Request-ID": hostile}).headers["X-Request-ID"]
        assert replaced != hostile
        assert uuid.UUID(replaced).version == 4


def test_accepted_request_id_bounds() -> None:
    assert accepted_request_id("x" * 128) == "x" * 128
    assert accepted_request_id("x" * 129) is None
    assert accepted_request_id("tab\there") is None
    assert accepted_request_id("é") is None
    assert accepted_request_id(None) is None


def test_two_apps_in_one_process_count_separately() -> None:
    first, second = make_app(Health()), make_app(Health())
    first.test_client().post("/cds-services/backpain-redflags-intake", json={})
    key = (
        "backpain_cds_http_requests_total",
        (
            ("endpoint", "/cds-services/<service_id>"),
            ("method", "POST"),
            ("service", "unknown"),  # no catalogue in this bare app: ids stay bounded
            ("status", "200"),
        ),
    )
    assert samples(first)[key] == 1.0
    assert key not in samples(second)


def test_cards_are_counted_by_indicator_and_rule() -> None:
    app = make_app(Health())
    app.test_client().post("/cds-services/anything", json={})
    found = samples(app)
    base = "backpain_cds_cards_issued_total"
    assert (
        found[
            (base, (("indicator", "critical"), ("rule_id", "cauda-equina"), ("service", "unknown")))
        ]
        == 1.0
    )
    assert (
        found[(base, (("indicator", "warning"), ("rule_id", "sciatica"), ("service", "unknown")))]
        == 1.0
    )


def test_spool_depth_and_database_errors_come_from_audit_health() -> None:
    health = Health("down", spool_depth=7)
    app = make_app(health)
    found = samples(app)
    assert found[("backpain_cds_audit_spool_depth", ())] == 7.0
    assert found[("backpain_cds_database_up", ())] == 0.0
    assert found[("backpain_cds_database_errors_total", (("check", "metrics"),))] == 1.0
    health.state = {"database": "up", "spool_depth": 0}
    found = samples(app)
    assert found[("backpain_cds_database_up", ())] == 1.0
    assert found[("backpain_cds_audit_spool_depth", ())] == 0.0
    assert found[("backpain_cds_database_errors_total", (("check", "metrics"),))] == 1.0


def test_one_json_line_per_request_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(Health())
    token = "eyJhbGciOiJFUzM4NCJ9.secret-claims.signature"
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER):
        response = app.test_client().get(
            "/broken?patient=Patient%2F123",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-1"},
        )
    assert response.status_code == 412
    records = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    entry = json.loads(line)
    assert entry["request_id"] == "req-1"
    assert entry["status"] == 412
    assert entry["error"] == "not-found"
    assert entry["path"] == "/broken"  # never the query string
    assert entry["method"] == "GET"
    assert entry["latency_ms"] >= 0
    assert token not in line and "Patient/123" not in line and "Bearer" not in line


def test_json_formatter_outside_a_request() -> None:
    record = logging.LogRecord("service", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello x"
    assert entry["level"] == "WARNING"
    assert "request_id" not in entry
    assert entry["ts"].endswith("+00:00")


def test_logging_config_rejects_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        logging_config("LOUD")
    assert logging_config("debug")["root"]["level"] == "DEBUG"


def test_the_audit_adapter_reports_its_failures_as_they_happen() -> None:
    app = make_app(Health())
    hooks = app.extensions["hooks"]
    for _ in range(3):
        hooks.on_database_error("write")
    hooks.on_dead_letter("invocation")
    hooks.on_record_lost("feedback")
    hooks.on_spool_full("invocation")
    hooks.on_spool_full("invocation")
    found = samples(app)
    assert found[("backpain_cds_database_errors_total", (("check", "audit"),))] == 3.0
    assert found[("backpain_cds_audit_dead_letters_total", (("kind", "invocation"),))] == 1.0
    assert found[("backpain_cds_audit_records_lost_total", (("kind", "feedback"),))] == 1.0
    assert found[("backpain_cds_audit_records_dropped_total", (("kind", "invocation"),))] == 2.0


def test_metrics_do_not_poll_the_audit_on_each_request() -> None:
    class Counting(Health):
        calls = 0

        def health(self) -> Mapping[str, Any]:
            Counting.calls += 1
            return super().health()

    client = make_app(Counting()).test_client()
    for _ in range(5):
        client.post("/cds-services/x", json={})
    assert Counting.calls == 0


def test_refused_calls_are_counted_per_client_not_recorded_one_by_one() -> None:
    health = Health()
    app = make_app(health)

    @app.post("/cds-services/<service_id>/refused")
    def refused(service_id: str) -> Any:
        raise Problem(401, "Unauthorized", code="login")

    client = app.test_client()
    for _ in range(3):
        assert client.post("/cds-services/x/refused", json={}).status_code == 401
    assert health.records == []
    assert [(key, status) for key, status, _ in health.refusals] == [("127.0.0.1", 401)] * 3


def test_the_audit_records_the_status_sent_even_when_a_late_hook_fails() -> None:
    health = Health()
    app = make_app(health)

    @app.after_request
    def _fails(response: Response) -> Response:
        if response.status_code == 200 and response.mimetype == "application/json":
            raise RuntimeError("late failure after a successful screen")
        return response

    response = app.test_client().post("/cds-services/backpain-redflags-intake", json={})
    assert response.status_code == 500
    assert [r.http_status for r in health.records] == [500]
    assert response.headers["X-Request-ID"]


def test_one_trace_id_is_the_invocation_id_and_the_request_id() -> None:
    health = Health()
    response = make_app(health).test_client().post("/cds-services/x", json={})
    assert [str(r.id) for r in health.records] == [response.headers["X-Request-ID"]]
    assert health.records[0].occurred_at == datetime(2026, 12, 1, tzinfo=UTC)
