"""
Knowing when a delivered dispatch has been handled.

Frameworks run event handlers as tasks they start and forget, so "the
parser returned" says nothing about whether the bot answered.  While a
dispatch is fed, a context variable names its :class:`Handling`, and a task
factory on the loop adds every task created in that context (and, since
tasks copy the context, every task those tasks create) to it.

The delivery is settled when all of them are done, or when a handler waits
for an event that only a later delivery can bring (``wait_for``, a member
request: a new waiter appeared), or after a cap.  Webhook deliveries come
one batch at a time, so acknowledging then is what lets that later event
come at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Generator
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)

_handling: ContextVar[Handling | None] = ContextVar("dccrelay_handling", default=None)

#: seconds between looks at the framework's waiters while handlers run
POLL = 0.05


class Handling:
    """
    The tasks one delivered dispatch started.

    :ivar waiters_before: the framework's waiters when it was fed.
    """

    def __init__(self, waiters_before: frozenset[int]) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.waiters_before = waiters_before

    def pending(self) -> set[asyncio.Task[Any]]:
        """Its tasks not done yet."""
        return {task for task in self.tasks if not task.done()}


def feeding(handling: Handling, feed: Callable[[], None]) -> None:
    """
    Call ``feed`` (the framework's parser) with ``handling`` current, so the
    tasks it creates are counted.
    """
    token = _handling.set(handling)
    try:
        feed()
    finally:
        _handling.reset(token)


def _tracking_factory(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
    **kwargs: Any,
) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
    handling = _handling.get()
    if handling is not None:
        handling.tasks.add(task)
    return task


def track_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Count the tasks each dispatch starts on ``loop`` from now on."""
    loop.set_task_factory(_tracking_factory)


async def settled(
    handling: Handling, waiters: Callable[[], frozenset[int]], cap: float
) -> None:
    """
    Return once ``handling`` is settled (see the module's description); a
    handler that fails counts as finished (the framework reports it).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cap
    while True:
        pending = handling.pending()
        if not pending:
            return
        if waiters() - handling.waiters_before:
            return
        left = deadline - loop.time()
        if left <= 0:
            log.warning("a delivery's handlers still run after %ss; acknowledging it", cap)
            return
        await asyncio.wait(pending, timeout=min(POLL, left), return_when=asyncio.FIRST_COMPLETED)
