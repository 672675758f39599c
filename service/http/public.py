"""Health, readiness, the contract, and the bundled intake Questionnaire(s)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_file

from service import PROJECT_ROOT
from service.http.errors import Problem
from service.http.runtime import runtime

bp = Blueprint("public", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    health = runtime().audit.health()
    ready = health.get("database") == "up"
    response = jsonify({"status": "ready" if ready else "degraded", **health})
    response.status_code = 200 if ready else 503
    return response


@bp.get("/openapi.yaml")
def openapi() -> Response:
    return send_file(PROJECT_ROOT / "openapi.yaml", mimetype="application/yaml")


def _fhir_json(resource: object, status: int = 200) -> Response:
    response = jsonify(resource)
    response.status_code = status
    response.mimetype = "application/fhir+json"
    return response


@bp.get("/Questionnaire/<questionnaire_id>")
def read_questionnaire(questionnaire_id: str) -> Response:
    found = runtime().handler.knowledge.library.by_id(questionnaire_id)
    if found is None:
        raise Problem(404, f"Questionnaire/{questionnaire_id} is not known", code="not-found")
    return _fhir_json(found)


@bp.get("/Questionnaire")
def search_questionnaire() -> Response:
    url = request.args.get("url")
    matches = runtime().handler.knowledge.library.search(url)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "entry": [
            {
                "fullUrl": f"{runtime().settings.public_url}/Questionnaire/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in matches
        ],
    }
    return _fhir_json(bundle)
