"""
Filters: which of a bot's gateway dispatches reach the bot.

A registration names a filter backend (``filter``, default
:data:`DEFAULT_BACKEND`) and gives criteria in its language (``criteria``,
default :data:`DEFAULT_CRITERIA`). :func:`compile_criteria` checks them once
and returns a predicate that runs on every dispatch. Backends are plugins
(:class:`IFilterBackend`); dccrelay ships ``mongo``
(:mod:`dccrelay.filters.mongo`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dccrelay.filters.discovery import (
    installed_backends,
    load_backend,
    refresh_backends,
)
from dccrelay.filters.errors import CriteriaError, UnknownBackendError
from dccrelay.filters.interfaces import IFilterBackend

#: The backend a registration without ``filter`` uses.
DEFAULT_BACKEND = "mongo"

#: The criteria a registration without ``criteria`` uses: new messages, except
#: from bots (including this one). Shared: copy it before changing anything.
DEFAULT_CRITERIA = {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}}


def compile_criteria(filter_name: str, criteria: Any) -> Callable[[Any], bool]:
    """
    Compile ``criteria`` with the backend called ``filter_name``.

    :return: a predicate over parsed gateway payloads; see
        :meth:`IFilterBackend.compile`.
    :raises UnknownBackendError: if no such backend is installed.
    :raises CriteriaError: if the backend refuses the criteria.
    """
    return load_backend(filter_name).compile(criteria)


__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_CRITERIA",
    "CriteriaError",
    "IFilterBackend",
    "UnknownBackendError",
    "compile_criteria",
    "installed_backends",
    "load_backend",
    "refresh_backends",
]
