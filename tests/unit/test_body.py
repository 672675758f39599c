from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask, request

from service.http.body import json_depth_exceeds, read_json_object
from service.http.errors import Problem


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]}
    return value


def test_depth() -> None:
    assert not json_depth_exceeds(nested(5), 10)
    assert json_depth_exceeds(nested(6), 10)
    assert not json_depth_exceeds({"a": 1, "b": [1, 2]}, 2)


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{}", "text/plain", 415),
        (b"", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b'{"a": ' * 5000 + b"1" + b"}" * 5000, "application/json", 400),
        (b'{"n": ' + b"9" * 10000 + b"}", "application/json", 400),
    ],
)
def test_bad_bodies_are_problems(data: bytes, content_type: str, status: int) -> None:
    app = Flask(__name__)
    with (
        app.test_request_context("/", method="POST", data=data, content_type=content_type),
        pytest.raises(Problem) as caught,
    ):
        read_json_object(request, max_depth=64)
    assert caught.value.status == status


def test_body_over_the_cap_is_413() -> None:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10
    with (
        app.test_request_context(
            "/", method="POST", data=b'{"x": "0123456789"}', content_type="application/json"
        ),
        pytest.raises(Problem) as caught,
    ):
        read_json_object(request, max_depth=64)
    assert caught.value.status == 413


def test_fhir_json_is_accepted() -> None:
    app = Flask(__name__)
    with app.test_request_context(
        "/", method="POST", data=b'{"a": 1}', content_type="application/fhir+json"
    ):
        assert read_json_object(request, max_depth=64) == {"a": 1}


@pytest.mark.parametrize(
    "data",
    [
        b'{"qr": {"item": [{"linkId": "1", "text": "\\ud800"}]}}',
        b'{"k\\udfff": 1}',
        b'{"a": ["ok", "tail \\udc00"]}',
        b'{"a": "\xed\xa0\x80"}',
    ],
)
def test_a_lone_surrogate_is_a_400_not_a_500(data: bytes) -> None:
    app = Flask(__name__)
    with (
        app.test_request_context("/", method="POST", data=data, content_type="application/json"),
        pytest.raises(Problem) as caught,
    ):
        read_json_object(request, max_depth=64)
    assert caught.value.status == 400
    assert "surrogate" in caught.value.diagnostics


def test_an_escaped_surrogate_pair_is_text() -> None:
    app = Flask(__name__)
    data = b'{"a": "\\ud83d\\ude00 \\u00e9"}'
    with app.test_request_context("/", method="POST", data=data, content_type="application/json"):
        assert read_json_object(request, max_depth=64) == {"a": "\U0001f600 \u00e9"}


def chunked(data: bytes) -> dict[str, Any]:
    return {
        "method": "POST",
        "input_stream": io.BytesIO(data),
        "content_type": "application/json",
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


def test_a_chunked_body_over_the_cap_is_413_not_truncated_json() -> None:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 100
    body = b'{"a": "' + b"x" * 10_000 + b'"}'
    with app.test_request_context("/", **chunked(body)), pytest.raises(Problem) as caught:
        read_json_object(request, max_depth=64)
    assert caught.value.status == 413


def test_a_chunked_body_under_the_cap_is_read_whole() -> None:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 100
    with app.test_request_context("/", **chunked(b'{"a": "' + b"x" * 80 + b'"}')):
        assert read_json_object(request, max_depth=64) == {"a": "x" * 80}
