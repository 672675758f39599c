"""Check real HTTP exchanges against openapi.yaml (openapi-core)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"


@cache
def spec() -> OpenAPI:
    # FHIR's media type is JSON; openapi-core needs telling.
    config = Config(extra_media_type_deserializers={"application/fhir+json": json.loads})
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


def conforms(response: requests.Response) -> requests.Response:
    """Raise if the response (and its request) violates the contract; return it."""
    openapi_request = RequestsOpenAPIRequest(response.request)
    openapi_response = RequestsOpenAPIResponse(response)
    spec().validate_response(openapi_request, openapi_response)
    return response
