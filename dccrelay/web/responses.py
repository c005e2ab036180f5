"""
JSON answers and errors for the registration API, and the HTML pages'
answers, from one place.

Every error is ``{"error": "...", "field": "<json pointer>"}`` with a status
code; handlers raise :class:`HTTPError` and return ``(code, body)``.
"""

from __future__ import annotations

from functools import wraps
from http import HTTPStatus
from typing import Any, Callable

import orjson
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.template import Tag, flattenString

_log = Logger()


class HTTPError(Exception):
    """
    An answer other than success, with a message a person can act on.
    """

    def __init__(
        self,
        code: int,
        message: str,
        field: str | None = None,
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            answer["field"] = self.field
        return answer


def reason_phrase(code: int) -> bytes:
    """
    The standard reason phrase of ``code``: twisted.web knows none for some
    codes it did not have when written (429 came out "Unknown Status").
    """
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return b"Unknown Status"


#: What the status pages may load: nothing but their own inline style and
#: inline SVG, and forms that come back here (the pages show bots' aliases,
#: errors and close reasons, which strangers chose).
PAGE_POLICY = (
    b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)


def write_json(request: Request, code: int, body: Any) -> None:
    """
    Finish ``request`` with a JSON body.
    """
    request.setResponseCode(code, reason_phrase(code))
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.write(orjson.dumps(body))
    request.finish()


def json_handler(
    handler: Callable[..., Any],
) -> Callable[[Any, Request], object]:
    """
    Make a ``render_*`` method out of a handler that returns ``(code, body)``
    or a Deferred of it, and raises :class:`HTTPError` for errors.
    """

    @wraps(handler)
    def render(self: Any, request: Request) -> object:
        # notifyFinish fires (or fails, if the client went away) once the
        # request is over; nothing may be written after that.
        finished: list[object] = []

        def over(result: object) -> None:
            finished.append(result)

        request.notifyFinish().addBoth(over)

        def answer(result: tuple[int, Any]) -> None:
            if not finished:
                write_json(request, *result)

        def fail(failure: Failure) -> None:
            if finished:
                return
            if failure.check(HTTPError):
                error: HTTPError = failure.value  # type: ignore[assignment]
                for name, value in error.headers.items():
                    request.setHeader(name, value)
                write_json(request, error.code, error.body())
                return
            _log.failure("unexpected error answering {path}", failure, path=request.path)
            write_json(request, 500, {"error": "internal error; see the relay's log"})

        d: Deferred[Any] = maybeDeferred(handler, self, request)
        d.addCallbacks(answer, fail)
        return NOT_DONE_YET

    return render


def write_page(request: Request, page: Tag) -> object:
    """
    Render ``page`` (escaped by twisted.web.template) as the answer to
    ``request``, with headers that keep a browser from guessing its type or
    running anything in it.
    """
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Content-Security-Policy", PAGE_POLICY)
    d = flattenString(request, page)

    def done(html: bytes) -> None:
        request.write(b"<!DOCTYPE html>\n" + html)
        request.finish()

    d.addCallback(done)
    return NOT_DONE_YET
