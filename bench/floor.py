"""The floor: the least a Flask app under the service's gunicorn settings can do.

It reads the same JSON body the hook gets and answers ``{"cards": []}``. Whatever
the service costs above this is the service's own work (auth, FHIR, rules, audit).

Run: ``python -m bench.floor --host 127.0.0.1 --port 8099`` (same gunicorn options
as ``backpain-cds serve``: ``deploy/gunicorn.conf.py``, WEB_CONCURRENCY, GUNICORN_THREADS).
"""

from __future__ import annotations

import argparse

from flask import Flask, Response, jsonify, request

from service.config import Settings
from service.http.server import gunicorn_options, run_gunicorn


def create_floor_app() -> Flask:
    app = Flask("bench.floor")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        body = request.get_json(force=True)
        if not isinstance(body, dict):
            return Response(status=400)
        return jsonify({"cards": []})

    return app


def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    run_gunicorn(
        gunicorn_options(Settings.from_env(), host, port, workers, threads), create_floor_app
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    serve(args.host, args.port, args.workers, args.threads)


if __name__ == "__main__":
    main()
