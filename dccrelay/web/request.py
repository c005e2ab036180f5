"""
The HTTP request class of the relay's site: bodies are capped here, once,
not in every handler.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

MAX_BODY = 64 * 1024


class CappedRequest(Request):
    """
    A request whose body may hold at most :data:`MAX_BODY` bytes.

    A larger body is not kept: its bytes are discarded as they arrive and
    :attr:`too_large` is set, so the resource answers 413.
    """

    max_body = MAX_BODY
    too_large = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self.too_large = True
            length = 0
        super().gotLength(length)
        self._received = 0

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > self.max_body:
            # Chunked bodies have no length up front.
            self.too_large = True
            content: Any = self.content
            content.seek(0)
            content.truncate()
            return
        super().handleContentChunk(data)

    def read_body(self) -> bytes:
        """
        The whole body (callers check :attr:`too_large` first).
        """
        content: Any = self.content
        content.seek(0)
        return bytes(content.read())
