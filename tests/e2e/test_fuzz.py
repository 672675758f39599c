"""Property-based fuzzing of the HTTP API from openapi.yaml (schemathesis) against a real server.

Schema-valid and schema-violating requests for every operation; a bounded number
of cases per operation. Fails on any 5xx and on any response the contract does
not describe (status code, content type, body schema).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from testkit.server import ServerProcess
from tests.e2e.conftest import ServerFactory

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"
#: per operation and generation mode; keeps the whole module well under a minute
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(SPEC)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)


@pytest.fixture(scope="module")
def fuzz_server(server_factory: ServerFactory) -> ServerProcess:
    # Generated fhirServer URLs are fetched: keep that short, and never leave loopback hanging.
    return server_factory({"FHIR_TIMEOUT_SECONDS": "1"})


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_honours_its_contract(case: schemathesis.Case, fuzz_server: ServerProcess) -> None:
    case.call_and_validate(base_url=fuzz_server.base_url, checks=CHECKS, timeout=15)
