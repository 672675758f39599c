"""``backpain-cds``: serve | evaluate | rules check | db upgrade | audit show."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from service.audit.cli import audit_group, db_group
from service.config import ConfigError, Settings
from service.http.server import gunicorn_options, run_gunicorn


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc


@click.group()
def main() -> None:
    """Back-pain red-flag CDS Hooks service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="Default: WEB_CONCURRENCY or 2.")
@click.option("--threads", type=int, default=None, help="Default: GUNICORN_THREADS or 4.")
def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Run the production server (gunicorn)."""
    settings = _settings()  # fail fast on bad configuration, before forking
    from service.http.logs import configure_logging

    configure_logging(settings.log_level)
    from service.app import load_knowledge
    from service.audit.factory import check_spool_dir
    from service.http.security import check_settings

    try:
        check_spool_dir(settings.spool_dir)  # writable before gunicorn binds
        check_settings(settings)  # issuers file, CORS origins
        load_knowledge(settings)  # rules/terminology/questionnaires validate before binding
    except (ConfigError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc

    def load() -> Any:
        """Runs in each worker after the fork: one app, its audit trail closed at exit."""
        import atexit

        from service.app import create_app
        from service.http.runtime import EXTENSION_KEY

        app = create_app(settings)
        # a final replay of the spool, and its files released, when the worker exits
        atexit.register(app.extensions[EXTENSION_KEY].audit.close)
        return app

    run_gunicorn(gunicorn_options(settings, host, port, workers, threads), load)


def _load_request(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: expected a JSON object")
    if "hook" in data:
        return data
    if data.get("resourceType") in {"QuestionnaireResponse", "Bundle"}:
        return {
            "hook": "questionnaire-inprogress",
            "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"file:{path.name}")),
            "context": (
                {"questionnaireResponse": data}
                if data["resourceType"] == "QuestionnaireResponse"
                else {}
            ),
            **({"prefetch": {"intake": data}} if data["resourceType"] == "Bundle" else {}),
        }
    raise click.ClickException(
        f"{path}: expected a CDS Hooks request or a QuestionnaireResponse/Bundle"
    )


def _table(cards: list[dict[str, Any]]) -> str:
    if not cards:
        return "No cards."
    rows = [("INDICATOR", "TOPIC", "SUMMARY")]
    rows += [
        (
            card.get("indicator", ""),
            (card.get("source", {}).get("topic") or {}).get("code", ""),
            card.get("summary", ""),
        )
        for card in cards
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def evaluate(file: Path, fmt: str) -> None:
    """Screen a QuestionnaireResponse (or a whole hook request) offline.

    Exit status: 0 when the screen ran, 1 when the input was rejected.
    """
    from service.app import load_knowledge
    from service.auth.fhir_servers import FhirServerPolicy
    from service.cds.errors import BadRequest, DataUnavailable, QuestionnaireResponseInvalid
    from service.cds.hook import HookHandler
    from service.cds.screen import Screener
    from service.fhir.client import FhirClient
    from service.http.schemas import HookRequestSchema

    settings = _settings()
    screener = Screener(
        load_knowledge(settings),
        max_items=settings.max_qr_items,
        cache_size=0,
        public_url=settings.public_url,
    )
    handler = HookHandler(
        screener,
        FhirClient(timeout=settings.fhir_timeout, max_bytes=settings.fhir_max_response_bytes),
        # offline: no client token, so the auth-off list applies (loopback by default)
        FhirServerPolicy.without_auth(settings.fhir_servers_allowed),
    )
    raw = _load_request(file)
    service = next((s for s in handler.catalogue if s.hook == raw.get("hook")), None)
    if service is None:
        raise click.ClickException(f"no service answers hook {raw.get('hook')!r}")
    from marshmallow import ValidationError

    try:
        request = HookRequestSchema().load(raw)
        result = handler.handle(service, request)
    except ValidationError as exc:
        raise click.ClickException(f"invalid request: {exc.messages}") from exc
    except (BadRequest, DataUnavailable, QuestionnaireResponseInvalid) as exc:
        raise click.ClickException(str(exc)) from exc
    cards = result.response["cards"]
    if fmt == "json":
        click.echo(json.dumps(result.response, indent=2))
    else:
        click.echo(_table(cards))


@main.group()
def rules() -> None:
    """Clinical knowledge: rules, terminology, questionnaires."""


@rules.command("check")
def rules_check() -> None:
    """Load and validate every rule, terminology and questionnaire file."""
    from service.app import load_knowledge

    try:
        knowledge = load_knowledge(_settings())
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"OK: {knowledge.ruleset.version}, {len(knowledge.ruleset.rules)} rules, "
        f"intake form {knowledge.library.intake_canonical}"
    )


main.add_command(db_group, "db")
main.add_command(audit_group, "audit")


if __name__ == "__main__":  # python -m service.cli
    sys.exit(main())
