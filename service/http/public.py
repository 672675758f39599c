"""Health, readiness, the contract, the bundled intake Questionnaire(s), and the rule pages
cards link to (`GET /rules/{rule-id}`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_file

from service import PROJECT_ROOT
from service.http.errors import Problem
from service.http.rule_page import rule_html, rule_json
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


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


@bp.get("/rules/<rule_id>")
def read_rule(rule_id: str) -> Response:
    """The rule a card's source.url names: HTML for people, JSON on Accept: application/json."""
    ruleset = runtime().handler.knowledge.ruleset
    rule = ruleset.rule(rule_id)
    if rule is None:
        raise Problem(404, f"Rule {rule_id} is not known", code="not-found")
    if _wants_json():
        url = f"{runtime().settings.public_url}/rules/{rule.id}"
        response = jsonify(rule_json(ruleset, rule, url))
    else:
        response = Response(rule_html(ruleset, rule), mimetype="text/html")
    response.headers["Vary"] = "Accept"
    return response
