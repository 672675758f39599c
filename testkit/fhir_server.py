"""A small FHIR server on loopback: real HTTP, answering QR and Questionnaire searches and
storing POSTed QuestionnaireResponses (conditional create by ``If-None-Exist: identifier=``).

Strict where real servers are: a QuestionnaireResponse ``subject`` search takes a typed
reference (``Patient/123``); a bare id is refused with 400 and an OperationOutcome,
since ``subject`` may point to any resource type. ``patient=123`` means the patient.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeFhirStore:
    """What the loopback server holds and what it saw."""

    questionnaire_responses: list[dict[str, Any]] = field(default_factory=list)
    questionnaires: list[dict[str, Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    #: QuestionnaireResponses stored by POST, with the id the server gave them
    created: list[dict[str, Any]] = field(default_factory=list)
    #: the next N POSTs answer ``post_status`` instead of storing (then storing resumes)
    failing_posts: int = 0
    post_status: int = 503

    def create(self, resource: dict[str, Any], condition: str | None) -> tuple[int, dict[str, Any]]:
        """Store ``resource`` (201), or return the match of ``identifier=system|value`` (200)."""
        if condition and condition.startswith("identifier="):
            system, _, value = condition.removeprefix("identifier=").partition("|")
            for stored in self.created:
                ident = stored.get("identifier") or {}
                if ident.get("system") == system and ident.get("value") == value:
                    return 200, stored
        stored = {**resource, "id": f"qr-{len(self.created) + 1}"}
        self.created.append(stored)
        self.questionnaire_responses.append(stored)
        return 201, stored

    def search(self, resource_type: str, params: dict[str, str]) -> dict[str, Any]:
        if resource_type == "QuestionnaireResponse":
            wanted = _subject_wanted(params)
            pool = [
                r
                for r in self.questionnaire_responses
                if wanted is None or r.get("subject", {}).get("reference") == wanted
            ]
            pool.sort(key=lambda r: r.get("authored", ""), reverse=True)
            pool = pool[: int(params.get("_count", "100"))]
        elif resource_type == "Questionnaire":
            pool = [q for q in self.questionnaires if q.get("url") == params.get("url")]
        else:
            pool = []
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(pool),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in pool],
        }


class SearchRefused(ValueError):
    """A search a strict FHIR server answers with 400."""


def _subject_wanted(params: dict[str, str]) -> str | None:
    """The subject reference a QuestionnaireResponse search asks for, or None (all)."""
    if "patient" in params:
        return f"Patient/{params['patient']}"
    subject = params.get("subject")
    if subject is not None and "/" not in subject:
        raise SearchRefused(
            f"subject={subject!r} is ambiguous: a reference search parameter that may point "
            "to several resource types needs a typed reference (subject=Patient/...) or use "
            "the patient search parameter"
        )
    return subject


def _outcome(diagnostics: str) -> bytes:
    issue = {"severity": "error", "code": "invalid", "diagnostics": diagnostics}
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()


def _handler(store: FakeFhirStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            resource_type = parts.path.rstrip("/").split("/")[-1]
            store.seen.append(
                {
                    "path": parts.path,
                    "params": params,
                    "authorization": self.headers.get("Authorization"),
                }
            )
            if store.status != 200:
                body = _outcome(f"the test told this server to answer {store.status}")
                self.send_response(store.status)
            else:
                try:
                    body = json.dumps(store.search(resource_type, params)).encode()
                    self.send_response(200)
                except SearchRefused as exc:
                    body = _outcome(str(exc))
                    self.send_response(400)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            store.seen.append(
                {
                    "method": "POST",
                    "path": parts.path,
                    "authorization": self.headers.get("Authorization"),
                    "content_type": self.headers.get("Content-Type"),
                    "if_none_exist": self.headers.get("If-None-Exist"),
                }
            )
            location = None
            if store.failing_posts > 0:
                store.failing_posts -= 1
                status, body = store.post_status, {"resourceType": "OperationOutcome", "issue": []}
            elif not parts.path.endswith("/QuestionnaireResponse"):
                status, body = 404, {"resourceType": "OperationOutcome", "issue": []}
            else:
                resource = json.loads(raw)
                status, body = store.create(resource, self.headers.get("If-None-Exist"))
                location = f"{parts.path}/{body['id']}/_history/1"
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(payload)))
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def fhir_server(store: FakeFhirStore, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``store`` on a free port of a loopback address; yields the base URL."""
    httpd = ThreadingHTTPServer((host, 0), _handler(store))
    # a short poll interval: shutdown() waits for it, at every end of a test
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{httpd.server_address[1]}/fhir"
    finally:
        httpd.shutdown()
        httpd.server_close()
