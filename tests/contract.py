"""Check HTTP exchanges against openapi.yaml (openapi-core): real ones (``requests``) and
in-process ones (the Flask test client)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TypeVar

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"

R = TypeVar("R", requests.Response, TestResponse)


@cache
def spec() -> OpenAPI:
    # FHIR's media type is JSON; openapi-core needs telling.
    config = Config(extra_media_type_deserializers={"application/fhir+json": json.loads})
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


def _replayable(request: Request) -> Request:
    """The test client's request with its body readable again (the app has read it)."""
    environ = dict(request.environ)
    stream = environ.get("wsgi.input")
    if stream is not None and hasattr(stream, "seek"):
        stream.seek(0)
    return Request(environ)


def conforms(response: R) -> R:
    """Raise if the response (and its request) violates the contract; return it."""
    if isinstance(response, TestResponse):
        response.get_data()  # buffer a streamed body (openapi-core would drop its close())
        spec().validate_response(
            WerkzeugOpenAPIRequest(_replayable(response.request)), WerkzeugOpenAPIResponse(response)
        )
    else:
        spec().validate_response(
            RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response)
        )
    return response
