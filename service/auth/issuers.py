"""The trusted issuers: the ``CDS_TRUSTED_ISSUERS`` allow-list.

A JSON file ``{"issuers": [...]}``; each entry names its ``iss`` and either the
``jku`` it publishes its keys at, a pinned ``jwks`` copy, or both (the pinned
copy is then used, no fetching); optionally a ``tenant`` and the ``fhirServers``
(base URLs) its hook requests may have this service call. Every error names the
file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jwt

from service.auth.fhir_servers import FhirServerBase
from service.auth.keys import pinned_key_set
from service.config import ConfigError

#: Issuers whose signing private key is public: anyone can mint tokens "from" them.
#: Trusting one is for development only (the service warns at start-up).
PUBLICLY_KEYED_ISSUERS: Mapping[str, str] = MappingProxyType(
    {
        "https://sandbox.cds-hooks.org": (
            "the CDS Hooks sandbox publishes its signing key in its repository "
            "(github.com/cds-hooks/sandbox, keys/)"
        ),
    }
)


@dataclass(frozen=True)
class TrustedIssuer:
    iss: str
    #: where the issuer publishes its JWKS; a token's ``jku`` header must equal it
    jku: str | None = None
    #: a pinned copy of the issuer's public keys, used instead of fetching ``jku``
    pinned_keys: jwt.PyJWKSet | None = None
    #: tenant recorded in the audit when the token carries no ``tenant`` claim
    tenant: str | None = None
    #: the only FHIR servers its hook requests may have this service call (``fhirServers``)
    fhir_servers: tuple[FhirServerBase, ...] = ()


_ISSUER_FIELDS = {"iss", "jku", "jwks", "tenant", "fhirServers"}


def _http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _optional_text(entry: Mapping[str, Any], name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{name}: must be a non-empty string")
    return value


def _fhir_servers(value: Any, where: str) -> tuple[FhirServerBase, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of base URLs")
    bases: list[FhirServerBase] = []
    for index, text in enumerate(value):
        try:
            bases.append(FhirServerBase.parse(text))
        except ValueError as exc:
            raise ConfigError(f"{where}[{index}]: {exc}, got {str(text)[:200]!r}") from None
    return tuple(bases)


def _issuer(entry: Any, where: str) -> TrustedIssuer:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be an object")
    unknown = sorted(set(entry) - _ISSUER_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(_ISSUER_FIELDS))}"
        )
    iss = _optional_text(entry, "iss", where)
    if iss is None:
        raise ConfigError(f"{where}.iss: is required")
    jku = _optional_text(entry, "jku", where)
    if jku is not None and not _http_url(jku):
        raise ConfigError(f"{where}.jku: must be an absolute http(s) URL, got {jku!r}")
    pinned = pinned_key_set(entry["jwks"], f"{where}.jwks") if "jwks" in entry else None
    if jku is None and pinned is None:
        raise ConfigError(f"{where}: give 'jku' (a JWKS URL), 'jwks' (pinned keys), or both")
    tenant = _optional_text(entry, "tenant", where)
    fhir_servers = _fhir_servers(entry.get("fhirServers", []), f"{where}.fhirServers")
    return TrustedIssuer(
        iss=iss, jku=jku, pinned_keys=pinned, tenant=tenant, fhir_servers=fhir_servers
    )


def parse_trusted_issuers(data: Any, source: str) -> dict[str, TrustedIssuer]:
    """The allow-list from the decoded JSON document; errors name ``source`` and the field."""
    if not isinstance(data, Mapping) or not isinstance(data.get("issuers"), list):
        raise ConfigError(f'{source}: must be a JSON object {{"issuers": [...]}}')
    issuers: dict[str, TrustedIssuer] = {}
    for index, entry in enumerate(data["issuers"]):
        where = f"{source}: issuers[{index}]"
        issuer = _issuer(entry, where)
        if issuer.iss in issuers:
            raise ConfigError(f"{where}.iss: {issuer.iss!r} is listed twice")
        issuers[issuer.iss] = issuer
    return issuers


def publicly_keyed(issuers: Iterable[str]) -> dict[str, str]:
    """Those of ``issuers`` whose private key is public, with why it is."""
    return {iss: PUBLICLY_KEYED_ISSUERS[iss] for iss in issuers if iss in PUBLICLY_KEYED_ISSUERS}


def load_trusted_issuers(path: Path) -> dict[str, TrustedIssuer]:
    """Read the ``CDS_TRUSTED_ISSUERS`` file."""
    source = f"CDS_TRUSTED_ISSUERS ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: is not valid JSON ({exc})") from exc
    return parse_trusted_issuers(data, source)
