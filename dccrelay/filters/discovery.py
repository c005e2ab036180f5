"""
Finding filter backends: those dccrelay ships and those other packages install.

Backends are twisted.plugin plugins in the :mod:`dccrelay.plugins` namespace.
Discovery imports and stats every plugin module, so its result is cached for
the life of the process; :func:`refresh_backends` forgets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Optional

from twisted.logger import Logger
from twisted.plugin import getPlugins
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from dccrelay import plugins
from dccrelay.filters.errors import UnknownBackendError
from dccrelay.filters.interfaces import IFilterBackend, ILimitedFilterBackend

_log = Logger(namespace=__name__)
_installed: Optional[Mapping[str, IFilterBackend]] = None


def installed_backends() -> Mapping[str, IFilterBackend]:
    """The installed backends by name, discovered on first use."""
    global _installed
    if _installed is None:
        _installed = MappingProxyType(_discover())
    return _installed


def refresh_backends() -> None:
    """Forget discovered backends; the next lookup discovers them again."""
    global _installed
    _installed = None


def load_backend(name: str) -> IFilterBackend:
    """
    The installed backend called ``name``.

    :raises UnknownBackendError: if there is none; it lists those there are.
    """
    backends = installed_backends()
    try:
        return backends[name]
    except KeyError:
        raise UnknownBackendError(name, backends) from None


def _discover() -> dict[str, IFilterBackend]:
    found: dict[str, IFilterBackend] = {}
    for backend in getPlugins(IFilterBackend, plugins):
        # A backend that claims to take limits must also accept them.
        interface = (
            ILimitedFilterBackend if ILimitedFilterBackend.providedBy(backend) else IFilterBackend
        )
        try:
            verifyObject(interface, backend)
        except Invalid as e:
            _log.warn(
                "ignoring filter backend plugin {backend!r}: {reason}",
                backend=backend,
                reason=str(e),
            )
            continue
        name = backend.name
        if not isinstance(name, str) or not name:
            _log.warn(
                "ignoring filter backend plugin {backend!r}: its name must be a"
                " non-empty string, not {name!r}",
                backend=backend,
                name=name,
            )
            continue
        if name in found:
            # A third-party plugin must not silently replace a built-in one.
            kept, ignored = found[name], backend
            if _is_builtin(backend) and not _is_builtin(kept):
                kept, ignored = backend, kept
            _log.warn(
                "two filter backend plugins are called {name!r}; using {kept!r},"
                " ignoring {ignored!r}",
                name=name,
                kept=kept,
                ignored=ignored,
            )
            found[name] = kept
            continue
        found[name] = backend
    return found


def _is_builtin(backend: object) -> bool:
    return type(backend).__module__.startswith("dccrelay.filters.")
