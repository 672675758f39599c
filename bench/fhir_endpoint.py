"""A loopback FHIR server for the ``fhirServer`` benchmark (its own process).

Reuses the test suite's fake store; serves HTTP/1.1 keep-alive so the service's
``requests.Session`` can reuse connections the way it would with a real EHR.
Usage: ``python -m bench.fhir_endpoint --port N resources.json`` where the JSON file
holds ``{"questionnaireResponses": [...], "questionnaires": [...]}``.
"""

from __future__ import annotations

import argparse
import json
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testkit.fhir_server import FakeFhirStore, _handler


def make_handler(store: FakeFhirStore) -> type[Any]:
    base = _handler(store)

    class Handler(base):  # type: ignore[valid-type,misc]
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/metadata"):
                body = b'{"resourceType": "CapabilityStatement"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()
            store.seen.clear()  # the bench sends thousands of requests; keep memory flat

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fhir_endpoint")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("resources", type=Path)
    args = parser.parse_args()
    data = json.loads(args.resources.read_text(encoding="utf-8"))
    store = FakeFhirStore(
        questionnaire_responses=list(data.get("questionnaireResponses", [])),
        questionnaires=list(data.get("questionnaires", [])),
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(store))
    httpd.daemon_threads = True
    httpd.serve_forever()


if __name__ == "__main__":
    main()
