"""Property-based fuzzing of the HTTP API from openapi.yaml (schemathesis), in-process.

schemathesis calls the WSGI app directly. Schema-valid and schema-violating requests
for every operation; a bounded number of cases per operation. Fails on any 5xx and on
any response the contract does not describe (status code, content type, body schema).
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.config import Settings
from tests.conftest import TEST_HOST
from tests.contract import SPEC_PATH as SPEC

#: per operation and generation mode
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def settings() -> Settings:
    # Generated fhirServer URLs are fetched: keep that short, and never leave loopback hanging.
    return Settings(auth_enabled=False, public_url=f"http://{TEST_HOST}", fhir_timeout=1.0)


# GET /openapi.yaml takes no input to fuzz, and the WSGI client would leave its file
# response open; tests/http/test_hook_calls.py checks it against the contract instead.
schema = schemathesis.openapi.from_path(SPEC).exclude(path="/openapi.yaml")
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_honours_its_contract(case: schemathesis.Case, app: Flask) -> None:
    case.call_and_validate(app=app, checks=CHECKS)
