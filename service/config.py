"""Settings: one frozen object, read from the environment once.

Every knob is documented in README.md ("Configuration"). Nothing else in the
package reads ``os.environ`` (prometheus-client reads its own
``PROMETHEUS_MULTIPROC_DIR`` at import; the service reads it here too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from service import PROJECT_ROOT


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}: expected on/off, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    return _int(env, name, 0) if env.get(name) else None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw) if raw else default


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name}: expected an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _phone(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"\+?[0-9][0-9 ]{1,14}", raw):
        raise ConfigError(f"{name}: expected a telephone number such as 112 or 999, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told from outside."""

    database_url: str = "sqlite:///var/audit.sqlite3"
    #: Authentication of CDS clients (CDS Hooks 2.0 JWT). Off only for local runs.
    auth_enabled: bool = True
    #: This service's public base URL; a JWT's ``aud`` must equal it + the path called.
    public_url: str = "http://127.0.0.1:8080"
    #: JSON file listing trusted issuers (``{"issuers": [...]}``).
    trusted_issuers_file: Path | None = None
    #: Origins allowed to call from a browser (intake portals, the CDS Hooks sandbox).
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    #: Caps on the QuestionnaireResponse shape (hostile-input limits).
    max_qr_items: int = 2_000
    max_json_depth: int = 64
    #: With CDS_AUTH off: the fhirServer base URLs that may be called (empty: loopback only).
    fhir_servers_allowed: tuple[str, ...] = ()
    #: Largest answer read from a fhirServer, bytes (a larger one is a failed call).
    fhir_max_response_bytes: int = 4_000_000
    #: Timeouts, seconds (FHIR and JWKS: one deadline for the whole call).
    fhir_timeout: float = 5.0
    db_connect_timeout: int = 3
    jwks_timeout: float = 3.0
    #: Allowed clock skew for JWT ``exp``/``iat``/``nbf``, seconds.
    jwt_leeway: int = 30
    #: A JWT whose ``exp - iat`` exceeds this (plus the leeway) is refused, seconds.
    jwt_max_lifetime: int = 300
    #: Local, fsync'd spool for audit records while the database is unreachable.
    spool_dir: Path = Path("var/spool")
    #: Seconds between attempts to drain the spool into the database.
    spool_drain_interval: float = 2.0
    #: Cap on the spool directory (all workers' files); past it, records are dropped.
    spool_max_bytes: int = 256 * 1024 * 1024
    #: Longest an audit or replay statement may run / wait for a lock, milliseconds;
    #: past it the record is spooled and the call answered (the database counts as down).
    audit_statement_timeout_ms: int = 1000
    audit_lock_timeout_ms: int = 200
    #: Calls refused before authentication are counted per client per window this long.
    audit_refusal_window_seconds: int = 60
    #: Refuse authenticated calls (503) while PostgreSQL, the replay store shared by all
    #: pods, is unreachable, instead of relying on this pod's own replay ledger.
    replay_fail_closed: bool = False
    rules_dir: Path = PROJECT_ROOT / "rules"
    questionnaires_dir: Path = PROJECT_ROOT / "questionnaires"
    terminology_dir: Path = PROJECT_ROOT / "terminology"
    log_level: str = "INFO"
    #: gunicorn: settings file, worker processes, threads per worker (None: the file's).
    gunicorn_config: Path = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"
    web_concurrency: int | None = None
    gunicorn_threads: int | None = None
    #: prometheus-client's multi-process directory (several gunicorn workers).
    prometheus_multiproc_dir: str | None = None
    #: The emergency telephone number patients are told to call (intake portal); None:
    #: the patient text says "call emergency services" without a number.
    emergency_number: str | None = None
    #: The intake portal (``GET /intake``; README "For clinics: the intake portal").
    portal_enabled: bool = True
    #: The clinic's FHIR server that receives completed intakes; None: print/download only.
    portal_fhir_server: str | None = None
    #: Bearer token for ``portal_fhir_server`` (never logged).
    portal_fhir_token: str | None = field(default=None, repr=False)
    #: Tries of one delivery to the clinic's FHIR server before the patient is told.
    portal_delivery_attempts: int = 3
    #: Screens per minute and burst per client (token bucket, per server process).
    portal_rate_per_minute: int = 60
    portal_rate_burst: int = 30
    #: Header a trusted reverse proxy sets to the client's address (else the TCP peer).
    portal_client_ip_header: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base = cls()
        issuers = env.get("CDS_TRUSTED_ISSUERS")
        return cls(
            database_url=env.get("DATABASE_URL") or base.database_url,
            auth_enabled=_bool(env, "CDS_AUTH", True),
            public_url=(env.get("CDS_PUBLIC_URL") or base.public_url).rstrip("/"),
            trusted_issuers_file=Path(issuers) if issuers else None,
            cors_origins=_list(env, "CORS_ORIGINS"),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", base.max_body_bytes),
            max_qr_items=_int(env, "MAX_QR_ITEMS", base.max_qr_items),
            max_json_depth=_int(env, "MAX_JSON_DEPTH", base.max_json_depth),
            fhir_servers_allowed=_list(env, "FHIR_SERVERS_ALLOWED"),
            fhir_max_response_bytes=_int(
                env, "FHIR_MAX_RESPONSE_BYTES", base.fhir_max_response_bytes
            ),
            fhir_timeout=_float(env, "FHIR_TIMEOUT_SECONDS", base.fhir_timeout),
            db_connect_timeout=_int(env, "DB_CONNECT_TIMEOUT_SECONDS", base.db_connect_timeout),
            jwks_timeout=_float(env, "JWKS_TIMEOUT_SECONDS", base.jwks_timeout),
            jwt_leeway=_int(env, "JWT_LEEWAY_SECONDS", base.jwt_leeway, minimum=0),
            jwt_max_lifetime=_int(env, "JWT_MAX_LIFETIME_SECONDS", base.jwt_max_lifetime),
            spool_dir=_path(env, "AUDIT_SPOOL_DIR", base.spool_dir),
            spool_drain_interval=_float(
                env, "AUDIT_SPOOL_DRAIN_SECONDS", base.spool_drain_interval
            ),
            spool_max_bytes=_int(env, "AUDIT_SPOOL_MAX_BYTES", base.spool_max_bytes),
            audit_statement_timeout_ms=_int(
                env, "AUDIT_STATEMENT_TIMEOUT_MS", base.audit_statement_timeout_ms
            ),
            audit_lock_timeout_ms=_int(env, "AUDIT_LOCK_TIMEOUT_MS", base.audit_lock_timeout_ms),
            audit_refusal_window_seconds=_int(
                env, "AUDIT_REFUSAL_WINDOW_SECONDS", base.audit_refusal_window_seconds
            ),
            replay_fail_closed=_bool(env, "CDS_REPLAY_FAIL_CLOSED", base.replay_fail_closed),
            rules_dir=_path(env, "RULES_DIR", base.rules_dir),
            questionnaires_dir=_path(env, "QUESTIONNAIRES_DIR", base.questionnaires_dir),
            terminology_dir=_path(env, "TERMINOLOGY_DIR", base.terminology_dir),
            log_level=(env.get("LOG_LEVEL") or base.log_level).upper(),
            gunicorn_config=_path(env, "GUNICORN_CONFIG", base.gunicorn_config),
            web_concurrency=_optional_int(env, "WEB_CONCURRENCY"),
            gunicorn_threads=_optional_int(env, "GUNICORN_THREADS"),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            emergency_number=_phone(env, "EMERGENCY_NUMBER"),
            portal_enabled=_bool(env, "PORTAL", True),
            portal_fhir_server=_url(env, "PORTAL_FHIR_SERVER"),
            portal_fhir_token=env.get("PORTAL_FHIR_TOKEN") or None,
            portal_delivery_attempts=_int(
                env, "PORTAL_DELIVERY_ATTEMPTS", base.portal_delivery_attempts
            ),
            portal_rate_per_minute=_int(env, "PORTAL_RATE_PER_MINUTE", base.portal_rate_per_minute),
            portal_rate_burst=_int(env, "PORTAL_RATE_BURST", base.portal_rate_burst),
            portal_client_ip_header=env.get("PORTAL_CLIENT_IP_HEADER") or None,
        )
