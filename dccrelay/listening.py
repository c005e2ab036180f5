"""
The HTTP API's listening service: ``strports.service``, except that a port
it cannot listen on (already in use, not allowed) stops start-up with one
log line that says what to do, instead of twistd's traceback.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger


class CannotListen(SystemExit):
    """
    The relay cannot serve its HTTP API; twistd exits with status 1 and no
    traceback (a :class:`SystemExit`), after the reason was logged.
    """


class ListeningService(StreamServerEndpointService):
    """
    Listens on ``--listen`` when started, as ``strports.service`` does.
    """

    log = Logger()

    def __init__(self, description: str, factory: IProtocolFactory, reactor: Any) -> None:
        super().__init__(serverFromString(reactor, description), factory)
        self.description = description
        # as strports.service: a bad port fails startService itself
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            why = e.socketError.strerror if e.socketError is not None else str(e)
            self.log.critical(
                "cannot listen on {where} (--listen {description}): {why}; is another relay "
                "(or another program) using it? Stop it, or choose another port with --listen",
                where=f"{e.interface or '*'}:{e.port}", description=self.description,
                why=getattr(why, "lower", lambda: why)(),
            )
            raise CannotListen(1) from None
