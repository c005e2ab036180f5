"""
The interfaces a filter backend provides; the contract for plugin authors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from dccrelay.filters.limits import FilterLimits


class IFilterBackend(Interface):
    """
    A language in which a bot chooses which gateway dispatches it receives.

    A registration names a backend in its ``filter`` field and gives
    ``criteria`` written in that backend's language. The relay compiles the
    criteria once, when the bot registers or changes them, and calls the
    compiled predicate on every dispatch the bot's gateway session receives.

    Backends are found with :func:`twisted.plugin.getPlugins` in the
    :mod:`dccrelay.plugins` namespace. To add one from another distribution,
    ship a module in a ``dccrelay/plugins/`` directory of your own (without
    an ``__init__.py``) that defines, at module level, an object providing
    both :class:`twisted.plugin.IPlugin` and this interface. The relay checks
    it with :func:`zope.interface.verify.verifyObject` and ignores, with a
    logged warning, objects that do not pass. To honour the operator's
    limits, provide :class:`ILimitedFilterBackend` instead. ``docs/filters.rst``
    has a worked example.
    """

    name = Attribute(
        """
        The ``filter`` value that selects this backend in a registration,
        such as ``"mongo"``: a short, lowercase :class:`str`.

        Bot authors type it and see it in status pages, so it must be unique
        among installed backends (a backend shipped with dccrelay always wins
        over a third-party one of the same name) and must never change once
        published: stored registrations refer to it.
        """
    )

    def compile(criteria: Any) -> Callable[[Any], bool]:
        """
        Check ``criteria`` and turn them into a predicate over gateway payloads.

        This runs once per registration change, never per dispatch, so do all
        parsing, validation and expensive preparation here; rejecting bad
        criteria here is what lets the registration API answer ``400`` instead
        of failing later.

        :param criteria: the registration's ``criteria`` field as parsed JSON
            (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` or
            ``None``). It is untrusted input from bot authors: bound its size,
            nesting and any regular expressions, and never evaluate code from
            it.

        :return: a callable taking one parsed gateway payload, e.g.
            ``{"op": 0, "s": 5, "t": "MESSAGE_CREATE", "d": {...}}``, and
            returning ``True`` to deliver it to the bot. It is called on the
            reactor thread for every dispatch, so it must be fast (cost bounded
            by criteria size times payload size, no I/O), stateless (the same
            payload always gives the same answer and calls do not influence
            each other) and must never raise on any JSON value: return
            ``False`` instead.  Being stateless, one predicate serves every
            bot registered with the same criteria.

        :raises dccrelay.filters.CriteriaError: when the criteria are malformed,
            use something the backend does not support, or exceed its limits.
            Its message says what is wrong in terms a bot author understands;
            its ``pointer`` is a JSON pointer to the offending place in
            ``criteria`` (``""`` for the whole).
        """


class ILimitedFilterBackend(IFilterBackend):
    """
    A filter backend that enforces the operator's :class:`FilterLimits`.

    :func:`dccrelay.filters.compile_criteria` passes the relay's limits to a
    backend that provides this interface. A backend that provides only
    :class:`IFilterBackend` still works: the relay then checks the criteria's
    JSON size and nesting against the limits itself before calling its
    ``compile(criteria)``, and the backend bounds everything else (regular
    expressions, operators) on its own.
    """

    def compile(
        criteria: Any, limits: Optional[FilterLimits] = None
    ) -> Callable[[Any], bool]:
        """
        As :meth:`IFilterBackend.compile`, within ``limits``.

        :param limits: the bounds to enforce, every one of them that applies
            to this backend's language; ``None`` means the backend's own
            (for dccrelay's, :data:`dccrelay.filters.DEFAULT_LIMITS`). Going
            over one raises :class:`dccrelay.filters.CriteriaError` naming
            the limit and its value, so a bot author knows what to shrink.
        """


class IEventTypes(Interface):
    """
    What a filter backend may also provide: the only dispatch types that
    criteria can match, read from the criteria.  The relay then reads each
    dispatch's type from the head of its JSON text and does not parse (or
    filter) those of other types, most of a gateway's traffic for many
    bots.  A backend that does not provide it has every dispatch parsed.
    """

    def event_types(criteria: Any) -> Optional[frozenset[str]]:
        """
        The dispatch types (the payload's ``t``) that ``criteria``, which
        :meth:`IFilterBackend.compile` accepted, can match; None when it
        cannot tell or any may match.

        It must be exact: the compiled predicate must answer ``False`` for
        every dispatch whose ``t`` is a string not in the set, whatever the
        rest of it, or that bot loses dispatches.  Called once per
        registration change, like ``compile``.
        """
