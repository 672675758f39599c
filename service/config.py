"""Settings: one frozen object, read from the environment once.

Every knob is documented in README.md ("Configuration"). Nothing else in the
package reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(item.strip() for item in raw.split(",") if item.strip())


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
    #: Timeouts, seconds.
    fhir_timeout: float = 5.0
    db_connect_timeout: int = 3
    jwks_timeout: float = 3.0
    #: Allowed clock skew for JWT ``exp``/``iat``/``nbf``, seconds.
    jwt_leeway: int = 30
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
    #: Free-form extras for tests; never read from the environment.
    extra: Mapping[str, Any] = field(default_factory=dict)

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
            fhir_timeout=_float(env, "FHIR_TIMEOUT_SECONDS", base.fhir_timeout),
            db_connect_timeout=_int(env, "DB_CONNECT_TIMEOUT_SECONDS", base.db_connect_timeout),
            jwks_timeout=_float(env, "JWKS_TIMEOUT_SECONDS", base.jwks_timeout),
            jwt_leeway=_int(env, "JWT_LEEWAY_SECONDS", base.jwt_leeway, minimum=0),
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
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)
