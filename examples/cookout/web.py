"""
The cookout's web page: which items already have a volunteer.
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from examples.cookout.model import Assignments


def covered_text(assignments: Assignments) -> str:
    """
    The page: one ``[x] item`` or ``[ ] item`` line per item.
    """
    lines = ["We have the following covered:", ""]
    lines += [f"[{'x' if volunteer else ' '}] {item}" for item, volunteer in assignments]
    return "\n".join(lines) + "\n"


class CoveredPage(Resource):
    """
    ``GET /``, as plain text (nothing a visitor sends is echoed, and user
    ids are not shown: only whether an item is covered).
    """

    isLeaf = True

    def __init__(self, assignments: Assignments) -> None:
        super().__init__()
        self._assignments = assignments

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return covered_text(self._assignments).encode("utf-8")
