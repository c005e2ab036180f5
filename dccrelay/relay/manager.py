"""
The relays of one node: loads them from the store on start, applies
registration changes, and stops them (resumably) on shutdown.

Every registered bot has a handle (:class:`~dccrelay.relay.handle.IRelayHandle`):
a :class:`~dccrelay.relay.relay.Relay` if it runs here, a
:class:`~dccrelay.relay.remote.RemoteRelay` if another node runs it.  Which
one is the placement's decision (:mod:`dccrelay.relay.placement`): alone, every
bot runs here; in a cluster, the coordinator
(:mod:`dccrelay.cluster.coordinator`) says "run here" or "run elsewhere" as leases
come and go.  The manager itself treats every handle alike.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredLock,
    inlineCallbacks,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay.ops.stats import LatencyHistogram
from dccrelay.relay.checkpoints import Checkpoints
from dccrelay.relay.handle import IRelayHandle
from dccrelay.relay.pacing import Pacer
from dccrelay.relay.placement import Alone, IPlacement
from dccrelay.relay.relay import Relay, RelayEnvironment
from dccrelay.relay.remote import RemoteRelay
from dccrelay.relay.settings import RelaySettings
from dccrelay.store import IRegistrations, SessionState, StoredRelay
from dccrelay.store.startup import Startup

# Relays created per reactor turn when a node starts (each compiles its
# filter, unless another bot has the same criteria), and stopped per turn
# when it stops.
START_SLICE = 50

# Gateway sessions opened per second when many bots start together (a
# restart, or a cluster node claiming its share), this many at a time: each
# costs ~1 ms of CPU (connect, handshake, RESUME), so the pace leaves half a
# core to the bots already running; 10,000 start in 20 s.  A few every 10 ms
# rather than 25 every 50 ms: each turn that starts them stays short.
START_RATE = 500.0
START_BURST = 5

# Gateway sessions being opened at once (connecting, TLS and websocket
# handshakes, RESUME or IDENTIFY): more wait.  When the node falls behind
# the pace (a busy or shared machine), this bounds the handshakes that come
# due in one reactor turn.  At 9,800 bots on 2 cores the pace kept up and
# 128 cost nothing (all RESUMEd after 27 s, with or without it); 20 halved
# the pace, and sessions expired before their turn.
START_WINDOW = 128


class TooManyRelays(Exception):
    """
    The node holds ``--max-relays`` bots already.
    """


class AliasTaken(Exception):
    """
    Creating an alias found it taken in the store, and gone again when
    looked up: it changes hands faster than it can be read.
    """


class RelayManager(Service):
    """
    Every relay of this node, by alias.

    The store must be open while the manager runs (see
    :class:`dccrelay.store.service.StoreService`).

    :param store: the registrations (the manager changes and loads them).
    :param placement: where bots run; by default, all here
        (:class:`~dccrelay.relay.placement.Alone`, with ``env.store``'s sessions).
    :param startup: the node's start-up, which loading the registrations is
        the last step of (by default one of its own, that only logs a
        failure).
    """

    _log = Logger()

    def __init__(
        self,
        env: RelayEnvironment,
        store: IRegistrations,
        max_relays: int,
        delivery_latency: LatencyHistogram | None = None,
        placement: IPlacement | None = None,
        startup: Startup | None = None,
    ) -> None:
        self._env = env
        self._store = store
        self.max_relays = max_relays
        #: what the node's delivery channels report (for /metrics)
        self.delivery_latency = delivery_latency or LatencyHistogram()
        self._started_at: float | None = None
        self.relays: dict[str, IRelayHandle] = {}
        # The handles of self.relays, by where they run.
        self._here: dict[str, Relay] = {}
        self._elsewhere: dict[str, RemoteRelay] = {}
        self._placement = placement if placement is not None else Alone(env.store)
        self._placement.attach(self)
        self._lock = DeferredLock()
        # Held until the relays are loaded: changes wait for that, and the
        # HTTP API may take requests before the store is open and this
        # service starts.
        self._lock.acquire()
        self._checkpoints = Checkpoints(env.store, env.clock, self.local_relays, self.breathe)
        self._starts = Pacer(env.clock, START_RATE, START_BURST, window=START_WINDOW)
        #: why the registry is not served yet, or that it never will be
        self.startup = startup if startup is not None else Startup(env.clock)
        self._loading: Deferred[None] | None = None
        #: fires once the registrations are loaded (never if they cannot be)
        self.ready: Deferred[None] = Deferred()

    @property
    def loaded(self) -> bool:
        """
        Whether :attr:`relays` holds every registration of the store (until
        then, an alias missing from it may still exist).
        """
        return self.ready.called

    def startService(self) -> None:
        super().startService()
        self._started_at = self._env.clock.seconds()
        self._loading = self.startup.attempt("load the registrations", self._load_once)
        self._loading.addCallbacks(self._loaded, self._not_loaded)

    def started_up(self) -> bool:
        """
        Whether start-up is over: the registrations are loaded and no
        gateway session waits for its turn to start.
        """
        return self.ready.called and self._starts.pending == 0

    def uptime(self) -> float | None:
        """
        Seconds since the node started, or None before.
        """
        if self._started_at is None:
            return None
        return self._env.clock.seconds() - self._started_at

    def _loaded(self, _: None) -> None:
        self.startup.done()
        self._lock.release()
        self.ready.callback(None)

    def _not_loaded(self, failure: Failure) -> None:
        # Stopped while loading; a failure for good never fires _loading.
        failure.trap(CancelledError)

    def _load_once(self) -> Deferred[None]:
        """
        One try at loading: if it fails, nothing of it is kept (nothing was
        started yet), so that the next try starts afresh.
        """

        def forget(failure: Failure) -> Failure:
            self.relays.clear()
            self._here.clear()
            self._elsewhere.clear()
            return failure

        return self._load().addErrback(forget)

    @inlineCallbacks
    def _load(self) -> Any:
        stored = yield self._store.load_relays()
        for n, record in enumerate(stored):
            if n and n % START_SLICE == 0:
                yield self.breathe()
            try:
                self._placement.place(record)
            except Exception:
                self._log.failure(
                    "{alias}: could not restore its registration", alias=record.alias
                )
        self._log.info(
            "loaded {count} relays from {store}",
            count=len(self.relays), store=self._store.description,
        )
        yield self._placement.begin()
        self._checkpoints.start()

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        self._starts.stop()
        self._checkpoints.stop()
        self._placement.pause()
        if not self.loaded:
            # Nothing runs yet: stop trying to load, and leave the store alone.
            if self._loading is not None:
                self._loading.cancel()
            return
        yield self._lock.acquire()
        try:
            # Every bot's resume point in a few store calls, rather than one
            # call per bot as each stops.
            yield self._checkpoints.save()
            stopping = []
            for n, relay in enumerate(self.local_relays()):
                # Closing a gateway connection costs ~0.4 ms: 9,800 in one
                # turn held the reactor for 3.8 s.
                if n and n % START_SLICE == 0:
                    yield self.breathe()
                stopping.append(relay.stop())
            yield DeferredList(stopping, consumeErrors=True)
            yield self._placement.leave()
        finally:
            self._lock.release()

    # -- what the placement decides ----------------------------------------------

    def exclusively(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """
        Run ``work(*args)`` while no other change of relays is under way.
        """
        return self._lock.run(work, *args)

    def local_relays(self) -> list[Relay]:
        """
        The relays this node runs.
        """
        return list(self._here.values())

    def remote_relays(self) -> list[RemoteRelay]:
        """
        The relays other nodes run (or nobody yet).
        """
        return list(self._elsewhere.values())

    def run_here(self, record: StoredRelay) -> Relay:
        """
        Make ``record``'s bot one this node runs (not started yet).
        """
        relay = Relay(
            record.alias, RelaySettings.from_json(record.settings), self._env,
            on_fatal=self.disable,
            enabled=record.enabled, disable_reason=record.disable_reason,
        )
        relay.node = self._placement.node_id
        self._elsewhere.pop(record.alias, None)
        self.relays[record.alias] = self._here[record.alias] = relay
        return relay

    def run_elsewhere(self, record: StoredRelay) -> None:
        """
        Know ``record``'s bot as one another node runs (or nobody yet).
        """
        self._here.pop(record.alias, None)
        self.relays[record.alias] = self._elsewhere[record.alias] = RemoteRelay.of(record)

    @inlineCallbacks
    def move_away(self, alias: str) -> Any:
        """
        Stop running ``alias`` here, resumably (the next owner RESUMEs from
        the stored session), and keep knowing it.
        """
        relay = self._here.get(alias)
        if relay is not None:
            yield relay.stop()
            del self._here[alias]
            self.relays[alias] = self._elsewhere[alias] = RemoteRelay(
                alias, relay.settings, enabled=relay.enabled,
                disable_reason=relay.disable_reason,
            )

    def drop(self, alias: str) -> IRelayHandle | None:
        """
        Take ``alias`` (deleted) out of the registry; the caller stops it
        for good (:meth:`IRelayHandle.forget`).
        """
        self._here.pop(alias, None)
        self._elsewhere.pop(alias, None)
        return self.relays.pop(alias, None)

    def start_paced(
        self, relay: Relay, sessions: dict[int, SessionState] | None = None
    ) -> None:
        """
        Start ``relay`` in its turn (:mod:`dccrelay.relay.pacing`), unless it was
        replaced, deleted or handed over meanwhile.
        """

        def start() -> None:
            if self.running and self.relays.get(relay.alias) is relay:
                relay.start(sessions)

        # counts against the pacer's window while its session opens
        self._starts.add(start, lambda: relay.opening)

    def breathe(self) -> Deferred[None]:
        """
        A reactor turn between slices of a start-up with thousands of bots,
        so that heartbeats, answers and the HTTP API are not held up for
        seconds (``--lag-probe``, ``python -m bench --targets restart``).
        """
        return deferLater(self._env.clock, 0, lambda: None)

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
        if relay is None:
            # Insert-if-absent: the store, not this node's memory, says
            # whether the alias is free (another node may have just taken it).
            created = yield self._store.create_relay(alias, settings.to_json())
            if not created:
                # Taken: learn its registration, then answer as for any alias
                # that exists (authorize decides with its secret).
                known = yield self._learn(alias)
                if known:
                    result = yield self._put(alias, settings, authorize)
                    return result
                raise AliasTaken(alias)
            self._log.info("{alias}: registered", alias=alias)
            self._placement.place(StoredRelay(alias, settings.to_json(), True, None))
            self.relays[alias].start()
        else:
            yield self._store.save_relay(alias, settings.to_json())
            self._log.info("{alias}: settings updated", alias=alias)
            yield relay.apply(settings)
        yield self._placement.changed(alias)
        return relay is None

    @inlineCallbacks
    def _learn(self, alias: str) -> Any:
        """
        Take in ``alias``'s stored registration, which this node did not
        know (made through another node, whose notice has not come yet).

        :return: whether it is registered.
        """
        records = yield self._store.load_relays()
        record = next((r for r in records if r.alias == alias), None)
        if record is None:
            return False
        self._log.info("{alias}: registered through another node", alias=alias)
        self._placement.place(record)
        self.relays[alias].start()
        return True

    def delete(self, alias: str) -> Deferred[bool]:
        """
        Stop and forget a relay.

        :return: fires with whether it existed.
        """
        return self._lock.run(self._delete, alias)

    @inlineCallbacks
    def _delete(self, alias: str) -> Any:
        relay = self.drop(alias)
        existed = yield self._store.delete_relay(alias)
        if relay is not None:
            self._log.info("{alias}: deleted", alias=alias)
            yield relay.forget()
        yield self._placement.changed(alias)
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
        yield self._placement.changed(alias)
