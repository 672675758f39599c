from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, Settings


def test_defaults_are_safe() -> None:
    settings = Settings.from_env({})
    assert settings.auth_enabled is True
    assert settings.cors_origins == ()
    assert settings.database_url.startswith("sqlite:///")


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "CDS_AUTH": "off",
            "CDS_PUBLIC_URL": "https://cds.example.org/",
            "CDS_TRUSTED_ISSUERS": "/etc/cds/issuers.json",
            "CORS_ORIGINS": "https://sandbox.cds-hooks.org, https://portal.example.org",
            "MAX_BODY_BYTES": "2048",
        }
    )
    assert settings.auth_enabled is False
    assert settings.public_url == "https://cds.example.org"
    assert settings.trusted_issuers_file == Path("/etc/cds/issuers.json")
    assert settings.cors_origins == ("https://sandbox.cds-hooks.org", "https://portal.example.org")
    assert settings.max_body_bytes == 2048
    assert Settings.from_env({}).emergency_number is None
    assert Settings.from_env({"EMERGENCY_NUMBER": " 112 "}).emergency_number == "112"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CDS_AUTH", "maybe"),
        ("MAX_BODY_BYTES", "lots"),
        ("MAX_BODY_BYTES", "0"),
        ("FHIR_TIMEOUT_SECONDS", "-1"),
        ("EMERGENCY_NUMBER", "call 999 now"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
