"""``backpain-cds``: serve | evaluate | rules check/vocabulary/concepts | dev-token | db | audit.

Every command fails the same way: one line on stderr (``Error: ...``) and exit
status 1, never a traceback (``CliGroup``, for the ``db`` and ``audit`` groups too).
Usage mistakes keep click's usage message and status 2. Read-only commands
(``evaluate``, ``rules ...``, ``audit show``, ``db current``)
never create a file.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
from pathlib import Path
from typing import Any

import click

from service.audit.cli import audit_group, db_group
from service.config import ConfigError, Settings
from service.http.server import gunicorn_options, run_gunicorn


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (SQL drivers add several), or its type."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return first or type(exc).__name__


class CliGroup(click.Group):
    """Turns any error a command raises into one ``Error:`` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise
        except click.ClickException as exc:
            if "\n" in exc.message:
                raise click.ClickException(" / ".join(exc.message.split("\n"))) from exc
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            raise click.ClickException(one_line(exc)) from exc


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc


@click.group(cls=CliGroup)
def main() -> None:
    """Back-pain red-flag CDS Hooks service."""


def ensure_port_free(host: str, port: int) -> None:
    """Refuse to start when ``host:port`` cannot be bound (checked before gunicorn starts)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is already in use; stop what is using it or "
                    f"choose another port (make run PORT={port + 1}, or --port {port + 1})"
                ) from exc
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="Default: WEB_CONCURRENCY or 2.")
@click.option("--threads", type=int, default=None, help="Default: GUNICORN_THREADS or 4.")
def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Run the production server (gunicorn)."""
    settings = _settings()  # fail fast on bad configuration, before forking
    ensure_port_free(host, port)
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
    auth = "on" if settings.auth_enabled else "OFF"
    logging.getLogger("service").info("serving http://%s:%s (auth %s)", host, port, auth)

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


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def evaluate(file: Path, fmt: str) -> None:
    """Screen a QuestionnaireResponse, a searchset Bundle of them (the newest authored
    wins) or a whole hook request, offline. The table shows the answers that fired
    each card.

    Exit status: 0 when the screen ran, 1 when the input was rejected.
    """
    from service.cli.offline import OfflineError, evaluate_request, load_request, table

    settings = _settings()
    try:
        result, knowledge = evaluate_request(settings, load_request(file))
    except OfflineError as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps(result.response, indent=2))
    else:
        click.echo(table(result, knowledge.ruleset.questions))


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


@rules.command("vocabulary")
def rules_vocabulary() -> None:
    """The predicates and placeholders rule files may use (markdown, from the engine)."""
    from service.cli.docgen import vocabulary_markdown

    click.echo(vocabulary_markdown())


@rules.command("concepts")
def rules_concepts() -> None:
    """The question concepts a form's items are read by (markdown, from terminology/)."""
    from service.app import load_knowledge
    from service.cli.docgen import concepts_markdown

    click.echo(concepts_markdown(load_knowledge(_settings())))


@main.command("dev-token")
@click.argument("url")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/dev-client-key.pem"),
    show_default=True,
    help="EC P-384 private key (PEM); created, mode 0600, when missing.",
)
@click.option("--iss", default="http://127.0.0.1/dev-client", show_default=True)
@click.option(
    "--issuers-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a trusted-issuers file pinning this key (for CDS_TRUSTED_ISSUERS).",
)
def dev_token(url: str, key_file: Path, iss: str, issuers_file: Path | None) -> None:
    """DEVELOPMENT ONLY: print a CDS Hooks client JWT for URL (the exact URL you will call),
    signed ES384 with a local key for a loopback issuer. Never for production."""
    from service.cli import devtoken

    try:
        devtoken.check_issuer(iss)
        key = devtoken.load_or_create_key(key_file)
        if issuers_file is not None:
            entry = devtoken.issuer_entry(key, iss)
            issuers_file.parent.mkdir(parents=True, exist_ok=True)
            issuers_file.write_text(json.dumps({"issuers": [entry]}, indent=2) + "\n")
            click.echo(f"wrote {issuers_file} (development only)", err=True)
        click.echo(devtoken.sign(key, iss, url))
    except devtoken.DevTokenError as exc:
        raise click.ClickException(str(exc)) from exc


main.add_command(db_group, "db")
main.add_command(audit_group, "audit")
