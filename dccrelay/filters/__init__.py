"""
Filters: which of a bot's gateway dispatches reach the bot.

A registration names a filter backend (``filter``, default
:data:`DEFAULT_BACKEND`) and gives criteria in its language (``criteria``,
default :data:`DEFAULT_CRITERIA`). :func:`compile_criteria` checks them once
and returns a predicate that runs on every dispatch. Backends are plugins
(:class:`IFilterBackend`); dccrelay ships ``mongo``
(:mod:`dccrelay.filters.mongo`) and ``jsonpath``
(:mod:`dccrelay.filters.jsonpath`). The operator bounds every bot's criteria
with :class:`FilterLimits`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Optional

import orjson

from dccrelay.filters.discovery import (
    installed_backends,
    load_backend,
    refresh_backends,
)
from dccrelay.filters.errors import CriteriaError, UnknownBackendError
from dccrelay.filters.interfaces import IEventTypes, IFilterBackend, ILimitedFilterBackend
from dccrelay.filters.limits import DEFAULT_LIMITS, FilterLimits, check_json

#: The backend a registration without ``filter`` uses.
DEFAULT_BACKEND = "mongo"

#: The criteria a registration without ``criteria`` uses: new messages, except
#: from bots (including this one). Shared: copy it before changing anything.
DEFAULT_CRITERIA = {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}}


def compile_criteria(
    filter_name: str, criteria: Any, limits: Optional[FilterLimits] = None
) -> Callable[[Any], bool]:
    """
    Compile ``criteria`` with the backend called ``filter_name``.

    :param limits: the operator's bounds; :data:`DEFAULT_LIMITS` if None. A
        backend providing :class:`ILimitedFilterBackend` enforces them all;
        for one providing only :class:`IFilterBackend` the criteria's JSON
        size and depth are checked here, before it sees them.
    :return: a predicate over parsed gateway payloads; see
        :meth:`IFilterBackend.compile`.
    :raises UnknownBackendError: if no such backend is installed.
    :raises CriteriaError: if the backend refuses the criteria.
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    backend = load_backend(filter_name)
    try:
        # Key order is kept: it can change sift's answers (see mongo.py).
        key = (id(backend), limits, orjson.dumps(criteria))
    except TypeError:
        key = None
    if key is not None:
        shared = _compiled.get(key)
        if shared is not None:
            return shared
    if ILimitedFilterBackend.providedBy(backend):
        predicate = backend.compile(criteria, limits)
    else:
        check_json(criteria, max_bytes=limits.max_criteria_bytes, max_depth=limits.max_depth)
        predicate = backend.compile(criteria)
    if key is not None:
        try:
            _compiled[key] = predicate
        except TypeError:
            pass  # a predicate that cannot be weakly referenced is not shared
    return predicate


def event_types(filter_name: str, criteria: Any) -> Optional[frozenset[str]]:
    """
    The only dispatch types ``criteria`` (accepted by the backend called
    ``filter_name``) can match, when the backend can tell
    (:class:`IEventTypes`); None when any may match.
    """
    try:
        backend = load_backend(filter_name)
    except UnknownBackendError:
        return None
    if not IEventTypes.providedBy(backend):
        return None
    types = backend.event_types(criteria)
    return None if types is None else frozenset(types)


# Predicates are stateless, so bots with the same criteria share one; it
# lives as long as a relay uses it.  Compiled sample-bot criteria take about
# 16 KiB, a third of a bot's memory budget.
_compiled: "weakref.WeakValueDictionary[tuple[Any, ...], Callable[[Any], bool]]" = (
    weakref.WeakValueDictionary()
)


__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_CRITERIA",
    "DEFAULT_LIMITS",
    "CriteriaError",
    "FilterLimits",
    "IEventTypes",
    "IFilterBackend",
    "ILimitedFilterBackend",
    "UnknownBackendError",
    "compile_criteria",
    "event_types",
    "installed_backends",
    "load_backend",
    "refresh_backends",
]
