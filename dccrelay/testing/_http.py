"""JSON in and out of twisted.web requests, for the simulator's HTTP APIs."""

from __future__ import annotations

from typing import Any

import orjson
from twisted.web.resource import Resource
from twisted.web.server import Request

#: Largest request body the simulator reads.
MAX_BODY = 64 * 1024


class BodyError(Exception):
    """A request body that is not a JSON object (or is too large)."""


def respond(request: Request, status: int, body: Any) -> bytes:
    """Set the status and content type; return ``body`` as JSON."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return orjson.dumps(body)


def no_content(request: Request) -> bytes:
    """An empty 204 response."""
    request.setResponseCode(204)
    return b""


def read_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """
    The request body as a JSON object.

    :param empty_ok: treat an empty body as ``{}``.
    :raise BodyError: when it is larger than 64 KiB, not JSON or not an object.
    """
    content = request.content
    raw = content.read(MAX_BODY + 1) if content is not None else b""
    if len(raw) > MAX_BODY:
        raise BodyError("the body is larger than 64 KiB")
    if not raw.strip() and empty_ok:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BodyError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BodyError("the body must be a JSON object")
    return value


def route(request: Request) -> list[str]:
    """The unconsumed path segments, decoded, without a trailing empty one."""
    segments = [segment.decode("utf-8", "replace") for segment in request.postpath or []]
    while segments and segments[-1] == "":
        segments.pop()
    return segments


class NotFound(Resource):
    """A JSON 404 for every method, shaped like Discord's."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Answer 404."""
        return respond(request, 404, {"message": "404: Not Found", "code": 0})


class Root(Resource):
    """The site root: named children, JSON 404 for everything else."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Anything not registered with putChild is not found."""
        return NotFound()

    def render(self, request: Request) -> bytes:
        """``/`` itself is not found either."""
        return NotFound().render(request)
