"""
The errors a bot author or an operator sees from the filters package.

Both carry enough to act on: :class:`CriteriaError` says what is wrong and where
(a JSON pointer into the criteria, which the registration API returns as the
error's ``field``); :class:`UnknownBackendError` lists what is installed.
"""

from __future__ import annotations

from collections.abc import Iterable


class CriteriaError(ValueError):
    """
    Criteria that a filter backend refuses to compile.

    :ivar message: what is wrong and, where it helps, what to write instead.
    :ivar pointer: a JSON pointer (RFC 6901) into the criteria naming the
        offending place, such as ``"/$or/2/d.content/$regex"``; ``""`` means
        the criteria as a whole.
    """

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"CriteriaError({self.message!r}, {self.pointer!r})"


class UnknownBackendError(LookupError):
    """
    A registration named a filter backend that is not installed.

    :ivar name: the name asked for.
    :ivar installed: the names of the installed backends, sorted.
    """

    def __init__(self, name: str, installed: Iterable[str]) -> None:
        self.name = name
        self.installed = sorted(installed)
        super().__init__(str(self))

    def __str__(self) -> str:
        names = ", ".join(self.installed) if self.installed else "(none)"
        return f"unknown filter backend {self.name!r}; installed: {names}"
