"""Reading a JSON request body under the service's limits."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from service.http.errors import Problem

_JSON_TYPES = {"application/json", "application/fhir+json"}
_TOO_LARGE = "Request body too large"
#: A surrogate escaped in JSON (``\\ud800``) or sent as (invalid) UTF-8 bytes: the body may
#: hold a lone surrogate, which no database, hash or log can encode. Pairs are fine.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when containers nest deeper than ``limit`` (iterative, no recursion).

    Level by level over the containers only, by exact type (``json.loads`` makes plain
    dicts and lists): about 2.5 times faster than a depth-first stack of every value.
    """
    if type(value) is not dict and type(value) is not list:
        return False
    level: list[Any] = [value]
    depth = 1
    while level:
        below: list[Any] = []
        keep = below.append
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)
                if kind is dict or kind is list:
                    keep(child)
        if below and depth >= limit:
            return True
        level = below
        depth += 1
    return False


def _lone_surrogate(value: Any) -> bool:
    """True when a string (key or value) anywhere in ``value`` holds a lone surrogate."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _may_hold_surrogate(raw: bytes) -> bool:
    """The regular expression only when a byte it needs is there: ``in`` on bytes is a
    fast substring search (~1 us on a 7 KB body, the expression alone ~18 us)."""
    return (b"\\u" in raw or b"\xed" in raw) and _MAYBE_SURROGATE.search(raw) is not None


def _body_bytes(request: Request) -> bytes:
    """The raw body; 413 past the limit, whether the length was declared or chunked."""
    limit = request.max_content_length
    if request.content_length is None and limit is not None:
        if not request.environ.get("wsgi.input_terminated"):
            return b""  # no declared length and no chunked framing: no body (WSGI)
        # werkzeug silently truncates an undeclared (chunked) body at the limit: read
        # one byte past it ourselves to tell a body that fits from one that does not
        stream = request.environ["wsgi.input"]
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Problem(413, _TOO_LARGE, code="too-costly")
        return b"".join(chunks)
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise Problem(413, _TOO_LARGE, code="too-costly") from exc


def read_json_object(request: Request, *, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object, or a Problem (400, 413 or 415)."""
    if request.mimetype not in _JSON_TYPES:
        raise Problem(415, "Content-Type must be application/json", code="not-supported")
    raw = _body_bytes(request)
    if not raw:
        raise Problem(400, "Request body is empty; a JSON object is required", code="required")
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise Problem(400, "Request body nests too deeply", code="too-costly") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "Request body is not valid JSON", code="structure") from exc
    if not isinstance(body, dict):
        raise Problem(400, "Request body must be a JSON object", code="structure")
    if json_depth_exceeds(body, max_depth):
        raise Problem(400, f"Request body nests deeper than {max_depth} levels", code="too-costly")
    if _may_hold_surrogate(raw) and _lone_surrogate(body):
        raise Problem(
            400, "Request body holds a lone Unicode surrogate (not valid text)", code="structure"
        )
    return body
