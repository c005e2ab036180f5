"""
The request class of the relay's site: bodies capped (by
:class:`~dccrelay.web.request.CappedRequest`), and the answers Twisted
would give as HTML pages (no such path, method not allowed) given as the
API's JSON errors instead, so that every rejection says why in the same
shape.
"""

from __future__ import annotations

from typing import Any

from twisted.web import resource
from twisted.web.resource import Resource

from dccrelay.web.request import CappedRequest
from dccrelay.web.responses import HTTPError, write_json

_ERROR_PAGES: tuple[type, ...] = tuple(
    kind
    for kind in (
        getattr(resource, "_UnsafeErrorPageBase", None),
        getattr(resource, "ErrorPage", None),
    )
    if isinstance(kind, type)
)

# HTTP's methods: one the path does not take is 405; anything else is 501.
_KNOWN_METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT")
)

_WHY = {
    404: "there is nothing at this path; GET /openapi.json describes the API",
    403: "this path is forbidden",
}


def _allowed_methods(resrc: Any) -> list[bytes]:
    allowed = getattr(resrc, "allowedMethods", None)
    if allowed:
        return list(allowed)
    return list(resource._computeAllowedMethods(resrc))


def _answers(resrc: Any, method: bytes) -> bool:
    if type(resrc).render is not Resource.render:
        return True  # it decides for itself
    name = method.decode("ascii", "replace")
    if getattr(resrc, "render_" + name, None) is not None:
        return True
    return method == b"HEAD" and getattr(resrc, "render_GET", None) is not None


class APIRequest(CappedRequest):
    """
    A :class:`CappedRequest` whose error pages are JSON.
    """

    def render(self, resrc: Any) -> None:
        if _ERROR_PAGES and isinstance(resrc, _ERROR_PAGES):
            code = int(getattr(resrc, "code", 404))
            self._refuse(HTTPError(code, _WHY.get(code, "this request cannot be served")))
            return
        method = self.method
        if not _answers(resrc, method):
            allowed = _allowed_methods(resrc)
            names = ", ".join(m.decode("ascii") for m in allowed)
            shown = method.decode("ascii", "replace")[:20]
            if method in _KNOWN_METHODS:
                error = HTTPError(
                    405,
                    f"{shown} is not allowed here; this path allows {names}",
                    headers={b"Allow": b", ".join(allowed)},
                )
            else:
                error = HTTPError(501, f"the method {shown!r} is not supported")
            self._refuse(error)
            return
        super().render(resrc)

    def _refuse(self, error: HTTPError) -> None:
        for name, value in error.headers.items():
            self.setHeader(name, value)
        write_json(self, error.code, error.body())
