"""
The relays of one node: loads them from the store on start, applies
registration changes, and stops them (resumably) on shutdown.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from dccrelay.relay import Relay, RelayEnvironment
from dccrelay.settings import RelaySettings
from dccrelay.stats import LatencyHistogram
from dccrelay.store import IRelayStore

# How often the latest gateway seq of every shard is written down, bounding
# what Discord replays after a relay is killed without warning.
CHECKPOINT_INTERVAL = 2.0


class TooManyRelays(Exception):
    """
    The node holds ``--max-relays`` bots already.
    """


class RelayManager(Service):
    """
    Every relay of this node, by alias.
    """

    _log = Logger()

    def __init__(
        self,
        env: RelayEnvironment,
        store: IRelayStore,
        max_relays: int,
        delivery_latency: LatencyHistogram | None = None,
    ) -> None:
        self._env = env
        self._store = store
        self.max_relays = max_relays
        #: what the node's delivery channels report (for /metrics)
        self.delivery_latency = delivery_latency or LatencyHistogram()
        self._started_at: float | None = None
        self.relays: dict[str, Relay] = {}
        self._lock = DeferredLock()
        self._checkpoints = LoopingCall(self._checkpoint)
        self._checkpoints.clock = env.clock
        self.ready: Deferred[None] = Deferred()

    def startService(self) -> None:
        super().startService()
        self._started_at = self._env.clock.seconds()
        d = self._lock.run(self._load)
        d.addCallbacks(self.ready.callback, self._failed_to_start)

    def uptime(self) -> float | None:
        """
        Seconds since the node started, or None before.
        """
        if self._started_at is None:
            return None
        return self._env.clock.seconds() - self._started_at

    def _failed_to_start(self, failure: Any) -> None:
        self._log.failure("could not load registrations from the store", failure)
        self.ready.errback(failure)

    @inlineCallbacks
    def _load(self) -> Any:
        yield self._store.open()
        stored = yield self._store.load_relays()
        for record in stored:
            try:
                settings = RelaySettings.from_json(record.settings)
                self.relays[record.alias] = Relay(
                    record.alias, settings, self._env, on_fatal=self.disable,
                    enabled=record.enabled, disable_reason=record.disable_reason,
                )
            except Exception:
                self._log.failure(
                    "{alias}: could not restore its registration", alias=record.alias
                )
        self._log.info(
            "loaded {count} relays from {store}",
            count=len(self.relays), store=self._store.description,
        )
        for relay in self.relays.values():
            relay.start()
        self._checkpoints.start(CHECKPOINT_INTERVAL, now=False)

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self._checkpoints.running:
            self._checkpoints.stop()
        yield self._lock.acquire()
        try:
            yield DeferredList(
                [relay.stop() for relay in self.relays.values()], consumeErrors=True
            )
            yield self._store.close()
        finally:
            self._lock.release()

    def _checkpoint(self) -> Deferred[Any]:
        return DeferredList(
            [relay.checkpoint() for relay in self.relays.values() if relay.shards],
            consumeErrors=True,
        )

    # -- registration ---------------------------------------------------------

    def put(
        self,
        alias: str,
        settings: RelaySettings,
        authorize: Callable[[RelaySettings | None], object] | None = None,
    ) -> Deferred[bool]:
        """
        Create or update a relay.

        :param authorize: called with the relay's current settings (``None``
            if it does not exist) once no other change of relays is under
            way, so that whoever may create an alias cannot update one that
            another request created meanwhile; it raises to refuse.
        :return: fires with ``True`` if the relay was created.
        :raise TooManyRelays: (in the Deferred) at ``max_relays``.
        """
        return self._lock.run(self._put, alias, settings, authorize)

    @inlineCallbacks
    def _put(
        self,
        alias: str,
        settings: RelaySettings,
        authorize: Callable[[RelaySettings | None], object] | None = None,
    ) -> Any:
        relay = self.relays.get(alias)
        if authorize is not None:
            authorize(relay.settings if relay is not None else None)
        if relay is None and len(self.relays) >= self.max_relays:
            raise TooManyRelays(alias)
        if relay is not None and relay.settings == settings and relay.enabled:
            return False
        yield self._store.save_relay(alias, settings.to_json())
        if relay is None:
            relay = self.relays[alias] = Relay(alias, settings, self._env, on_fatal=self.disable)
            self._log.info("{alias}: registered", alias=alias)
            relay.start()
            return True
        self._log.info("{alias}: settings updated", alias=alias)
        yield relay.apply(settings)
        return False

    def delete(self, alias: str) -> Deferred[bool]:
        """
        Stop and forget a relay.

        :return: fires with whether it existed.
        """
        return self._lock.run(self._delete, alias)

    @inlineCallbacks
    def _delete(self, alias: str) -> Any:
        relay = self.relays.pop(alias, None)
        existed = yield self._store.delete_relay(alias)
        if relay is not None:
            self._log.info("{alias}: deleted", alias=alias)
            yield relay.forget()
        return existed or relay is not None

    def disable(self, alias: str, reason: str) -> Deferred[None]:
        """
        End a relay's gateway session until it registers again.
        """
        return self._lock.run(self._disable, alias, reason)

    @inlineCallbacks
    def _disable(self, alias: str, reason: str) -> Any:
        relay = self.relays.get(alias)
        if relay is None:
            return
        self._log.info("{alias}: disabled: {reason}", alias=alias, reason=reason)
        yield self._store.disable_relay(alias, reason)
        yield relay.disable(reason)
