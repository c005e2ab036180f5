"""
``twistd dcc``: the relay's command-line options and the service tree
they build.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import replace
from functools import partial
from random import SystemRandom
from typing import Any, Callable

from twisted.application.internet import backoffPolicy
from twisted.application.service import IService, Service
from twisted.internet.defer import gatherResults
from twisted.python import usage
from twisted.web.client import Agent, HTTPConnectionPool

from dccrelay import __version__
from dccrelay.cluster.coordinator import ClusterCoordinator, ClusterNode
from dccrelay.delivery.config import DEFAULTS as DELIVERY_DEFAULTS
from dccrelay.delivery.config import DeliveryConfig
from dccrelay.delivery.factory import DeliveryFactory
from dccrelay.delivery.outbox import OutboxWriter, OutboxWriterService
from dccrelay.filters import DEFAULT_LIMITS, FilterLimits, compile_criteria
from dccrelay.gateway.connection import GatewayConnector
from dccrelay.gateway.rest import DiscordREST
from dccrelay.gateway.rest_limits import (
    INVALID_BUDGET,
    INVALID_RESERVE,
    INVALID_SHARE,
    InvalidRequests,
)
from dccrelay.gateway.shared_identify import StoreIdentifySlots
from dccrelay.net.answer_caps import AnswerCappedPool, AnswerCaps, outbound_http
from dccrelay.net.guard import NoRedirectHTTPClient, outbound_reactor
from dccrelay.net.tls import ClientTLS
from dccrelay.ops.collector import StartUpCollector
from dccrelay.ops.config import ConfigFileOptions
from dccrelay.ops.data_dir import DataDirLock
from dccrelay.ops.descriptors import TooFewDescriptors, ensure_descriptors
from dccrelay.ops.exit_status import ExitStatus
from dccrelay.ops.keys import KeyFileError, read_access_key, read_fernet_keys
from dccrelay.ops.lagprobe import LagProbe
from dccrelay.ops.listening import ListeningService
from dccrelay.ops.logs import RelayRoot, log_format
from dccrelay.ops.stats import LatencyHistogram
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.placement import Alone, IPlacement
from dccrelay.relay.relay import RelayEnvironment
from dccrelay.relay.settings import parse_settings
from dccrelay.store import IGuildSnapshots, IRelayStore
from dccrelay.store.leases import LeaseTiming
from dccrelay.store.sealed import SealedSecretsStore
from dccrelay.store.service import StoreService
from dccrelay.store.startup import Startup
from dccrelay.store.sqlite import SQLiteStore
from dccrelay.waking.interactions import DEFER_AFTER
from dccrelay.waking.wake_url import INTERVAL as WAKE_INTERVAL
from dccrelay.web.access import Access
from dccrelay.web.connection_limit import MAX_API_CONNECTIONS, APIConnectionLimit
from dccrelay.web.site import build_site
from dccrelay.web.registration_limits import RegistrationLimits, RegistrationRates
from dccrelay.web.throttle import AliasGuessLimiter, FailedAuthLimiter

STORE_FILE = "dcc.sqlite3"
ANSWER_DEFAULTS = AnswerCaps()
#: What --store accepts: libpq's URL schemes.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

# (FilterLimits field, default, what it bounds): each is a --filter-... option.
FILTER_LIMIT_OPTIONS = [
    (name, getattr(DEFAULT_LIMITS, name), doc)
    for name, doc in (
        ("max_criteria_bytes", "bytes of criteria JSON"),
        ("max_depth", "nesting depth of criteria"),
        ("max_operators", "operators in one criteria"),
        ("max_regex_length", "characters in one regex"),
        ("max_in_length", "values in one $in/$nin/$all"),
        ("max_query_length", "characters in one JSONPath query"),
        ("max_regex_program", "bytes of RE2 program of one regex"),
        ("max_criteria_regex_program", "bytes of RE2 program of one criteria's regexes"),
        ("max_regex_repeat", "largest {n,m} count in a regex"),
        ("regex_memory", "bytes of RE2 memory (max_mem) per regex"),
    )
]


def _positive_number(name: str, kind: type = float) -> Any:
    def coerce(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or number <= 0:
            unit = "a positive whole number" if kind is int else "a positive number"
            raise ValueError(f"--{name} must be {unit}, got {value!r}")
        return number

    coerce.coerceDoc = ""  # type: ignore[attr-defined]
    return coerce


def _defer_after(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 2.5:
        raise ValueError(
            "--defer-after must be more than 0 and at most 2.5 seconds (Discord allows "
            f"3 s for the whole answer), got {value!r}"
        )
    return seconds


_defer_after.coerceDoc = ""  # type: ignore[attr-defined]


class Options(ConfigFileOptions):
    """
    The options of ``twistd dcc``.
    """

    synopsis = "[options]"
    longdesc = (
        "Hold Discord gateway connections for many bots, filter each bot's "
        "dispatches with its own criteria, and deliver the matching ones to "
        "the bot's URL."
    )

    optParameters = [
        ["config", "c", None,
         "TOML file setting any of these options by long name (data-dir = \"...\"); "
         "options on the command line win.  See etc/dcc.toml.example."],
        ["log-format", None, "text",
         "Log lines as text or json (one event per line; json suits journald).",
         log_format],
        ["listen", None, "tcp:8080:interface=127.0.0.1",
         "Twisted endpoint description of the HTTP API."],
        ["data-dir", None, "./dcc-data", "Where the SQLite store lives."],
        ["store", None, None,
         "postgresql://user:password@host:port/database: keep registrations, sessions "
         "and the outbox in PostgreSQL, shared by several nodes, instead of SQLite in "
         "--data-dir."],
        ["node-id", None, None,
         "This node's name among nodes sharing --store (default: host name, process id "
         "and a random part; unique per run)."],
        ["lease-ttl", None, LeaseTiming().ttl,
         "Seconds a node's hold on a bot lasts without renewal, with --store: a dead "
         "node's bots move to the others after about this plus 2 s.",
         _positive_number("lease-ttl")],
        ["discord-api", None, "https://discord.com/api/v10",
         "Discord REST base; the gateway URL comes from /gateway/bot."],
        ["idle-timeout", None, DELIVERY_DEFAULTS.idle_timeout,
         "Seconds before an idle bot connection is closed.", _positive_number("idle-timeout")],
        ["queue-limit", None, DELIVERY_DEFAULTS.queue_limit,
         "Dispatches kept per bot while it is unreachable.", _positive_number("queue-limit", int)],
        ["max-bot-message", None, DELIVERY_DEFAULTS.max_bot_message,
         "Bytes one websocket message (or frame) from a bot may hold; a larger one "
         "closes the connection before it is buffered (a bot sends only "
         "acknowledgements and commands, at most 4 KiB).",
         _positive_number("max-bot-message", int)],
        ["max-answer-head", None, ANSWER_DEFAULTS.head_bytes,
         "Bytes of status line and headers read at most from an answer of a bot's "
         "URL: webhook, wakeUrl, and the websocket handshake; past it the connection "
         "is cut and the attempt fails.", _positive_number("max-answer-head", int)],
        ["max-answer-headers", None, ANSWER_DEFAULTS.header_lines,
         "Header lines read at most from such an answer.",
         _positive_number("max-answer-headers", int)],
        ["max-answer-body", None, ANSWER_DEFAULTS.body_bytes,
         "Bytes of body read (and dropped) at most from a webhook or wakeUrl answer; "
         "past it the connection is cut and the attempt fails.",
         _positive_number("max-answer-body", int)],
        ["queue-max-age", None, DELIVERY_DEFAULTS.queue_max_age,
         "Seconds a dispatch may wait for a bot in the durable outbox (websocket v2 and "
         "webhooks); older ones are dropped and counted.", _positive_number("queue-max-age")],
        ["max-relays", None, 1000, "Bots one relay accepts.", _positive_number("max-relays", int)],
        ["max-api-connections", None, MAX_API_CONNECTIONS,
         "Connections to the HTTP API at once; more are answered 503 and closed, so "
         "that idle clients cannot take every file descriptor.",
         _positive_number("max-api-connections", int)],
        ["wake-interval", None, WAKE_INTERVAL,
         "Seconds between two requests to one bot's wakeUrl, at least.",
         _positive_number("wake-interval")],
        ["defer-after", None, DEFER_AFTER,
         "Seconds a matching interaction may take to reach a bot that asked for "
         "deferInteractions before the relay defers it (Discord allows 3 in all).",
         _defer_after],
        *[
            [f"filter-{name.replace('_', '-')}", None, default,
             f"Filter limit for every bot's criteria: {doc}.",
             _positive_number(f"filter-{name.replace('_', '-')}", int)]
            for name, default, doc in FILTER_LIMIT_OPTIONS
        ],
        ["new-tokens-per-network", None, RegistrationRates.client_burst,
         "New registrations and token changes one client network (IPv4 /24, IPv6 /64) "
         "may make at once; each makes the relay call Discord with the token.",
         _positive_number("new-tokens-per-network", int)],
        ["new-token-interval", None, RegistrationRates.client_refill,
         "Seconds before one client network may make one more new registration or "
         "token change, once it used its --new-tokens-per-network.",
         _positive_number("new-token-interval")],
        ["token-changes-per-alias", None, RegistrationRates.alias_burst,
         "Token changes (creation included) one alias may have at once.",
         _positive_number("token-changes-per-alias", int)],
        ["token-change-interval", None, RegistrationRates.alias_refill,
         "Seconds before one alias may change its token once more, once it used its "
         "--token-changes-per-alias.", _positive_number("token-change-interval")],
        ["failed-auth-per-alias", None, 60,
         "Failed authentications one alias may have at once from every network "
         "together; networks that authenticated for it before are not held back.",
         _positive_number("failed-auth-per-alias", int)],
        ["failed-auth-per-alias-interval", None, 30.0,
         "Seconds before one more failed authentication for an alias is allowed, once "
         "it had its --failed-auth-per-alias.",
         _positive_number("failed-auth-per-alias-interval")],
        ["invalid-budget", None, INVALID_BUDGET,
         "Invalid requests (HTTP 401, 403, 429) to Discord the node allows itself per "
         "10 minutes; Discord bans the IP address at 10,000.",
         _positive_number("invalid-budget", int)],
        ["invalid-share", None, INVALID_SHARE,
         "Invalid requests one bot token may make per 10 minutes; a bot that spends "
         "its share on GET /gateway/bot is disabled, saying why.",
         _positive_number("invalid-share", int)],
        ["invalid-reserve", None, INVALID_RESERVE,
         "Part of --invalid-budget only tokens Discord accepted before may spend, so "
         "that running bots keep calling while new tokens fail.",
         _positive_number("invalid-reserve", int)],
        ["gateway-compression", None, "zlib-stream",
         "Transport compression of gateway connections: zlib-stream, zstd-stream or "
         "none (zlib-stream: about 20x fewer bytes for 1.3x receive CPU and a fixed "
         "~40 KiB per connection; zstd-stream's memory grows with the sender's window, "
         "up to 2 MiB per connection; see docs/performance.rst)."],
        ["registration-key-file", None, None,
         "File holding the key that creating a relay needs (Authorization: Bearer, or a "
         "Dcc-Registration-Key header); without it anyone may register a bot."],
        ["operator-key-file", None, None,
         "File holding the operator's key (Authorization: Bearer): every bot's full "
         "status, and disable or delete any bot over HTTP."],
        ["encryption-key-file", None, None,
         "File of Fernet keys, one a line: bots' tokens and secrets are encrypted at "
         "rest with the first; the others only decrypt.  To rotate, put a new key "
         "first; start-up re-encrypts."],
    ]
    optFlags = [
        ["allow-private-dst", None,
         "Allow dst on loopback/private addresses (local development)."],
        ["lag-probe", None,
         "Log the reactor's longest stall every second (for benchmarks; off by default)."],
        ["gc-as-is", None,
         "Leave Python's garbage collector as it is: by default full collections wait "
         "while the node starts and what start-up made is then frozen out of them "
         "(docs/performance.rst)."],
    ]

    def opt_version(self) -> None:
        """
        Print the version and exit.
        """
        print(f"dccrelay {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        # The config file first, so that the checks below see its values.
        super().postOptions()
        compression = self["gateway-compression"]
        if compression not in ("zlib-stream", "zstd-stream", "none"):
            raise usage.UsageError(
                "--gateway-compression must be zlib-stream, zstd-stream or none,"
                f" got {compression!r}"
            )
        api = self["discord-api"]
        if not api.startswith(("https://", "http://")):
            raise usage.UsageError(f"--discord-api must be an http(s) URL, got {api!r}")
        store = self["store"]
        if store is not None and not store.startswith(POSTGRES_SCHEMES):
            # Only the scheme: the rest may hold a password.
            scheme = store.split("://", 1)[0] + "://" if "://" in store else repr(store)
            raise usage.UsageError(
                f"--store must be a postgresql:// URL (or leave it out for SQLite in "
                f"--data-dir), got {scheme}"
            )
        try:
            for option in ("registration-key-file", "operator-key-file"):
                path = self[option]
                self[option[: -len("-file")]] = (
                    None if path is None else read_access_key(path, option)
                )
            path = self["encryption-key-file"]
            self["encryption-keys"] = [] if path is None else read_fernet_keys(path)
        except KeyFileError as e:
            raise usage.UsageError(str(e))
        if self["invalid-reserve"] >= self["invalid-budget"]:
            raise usage.UsageError(
                f"--invalid-reserve ({self['invalid-reserve']}) must be less than "
                f"--invalid-budget ({self['invalid-budget']}): new bot tokens need some "
                "of the budget"
            )
        try:
            # Each bot holds connections: raised here, or refused with why.
            ensure_descriptors(self["max-relays"], api_connections=self["max-api-connections"])
        except TooFewDescriptors as e:
            raise usage.UsageError(str(e))


def filter_compiler(options: Options) -> Callable[[str, Any], Callable[[dict[str, Any]], bool]]:
    """
    ``compile_criteria`` with the operator's filter limits.
    """
    limits = FilterLimits(
        **{name: options[f"filter-{name.replace('_', '-')}"] for name, _, _ in FILTER_LIMIT_OPTIONS}
    )
    return partial(compile_criteria, limits=limits)


def default_node_id() -> str:
    """
    A node id unique to this process run: host, pid and a random part.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def lease_timing(ttl: float) -> LeaseTiming:
    """
    Lease timing scaled to ``ttl`` (the defaults are for 10 s).
    """
    scale = ttl / LeaseTiming().ttl
    return LeaseTiming(
        ttl=ttl, renew_interval=2.5 * scale, claim_interval=2.0 * scale, margin=3.0 * scale
    )


class HTTPPoolService(Service):
    """
    Closes the node's outgoing HTTP connections when the relay stops.
    """

    def __init__(self, *pools: HTTPConnectionPool) -> None:
        self.pools = pools

    def stopService(self) -> Any:
        super().stopService()
        return gatherResults([pool.closeCachedConnections() for pool in self.pools])


def build_environment(
    options: Options,
    reactor: Any,
    store: IRelayStore,
    pool: HTTPConnectionPool,
    delivery_latency: LatencyHistogram | None = None,
    tls: ClientTLS | None = None,
    guild_snapshots: IGuildSnapshots | None = None,
    *,
    bot_pool: AnswerCappedPool,
    writer: OutboxWriter | None = None,
) -> RelayEnvironment:
    """
    What every relay of the node shares.

    :param pool: the connections to Discord's REST API.
    :param tls: the node's TLS client configuration (default: the
        platform's trust store); one OpenSSL context for every connection.
    :param guild_snapshots: where the bots' guild snapshots are kept, if
        not in ``store`` itself (the sealing layer over it).
    :param bot_pool: the connections to URLs bots gave (webhooks,
        ``wakeUrl``), with the caps of :func:`delivery_config` on answers.
    :param writer: the node's outbox writer (by default a new one on
        ``store``).
    """
    if tls is None:
        tls = ClientTLS()
    http = NoRedirectHTTPClient(Agent(reactor, contextFactory=tls, pool=pool))
    # Bots' addresses are checked on connecting, after name resolution.
    allow_private = options["allow-private-dst"]
    # For every request to a URL a bot gave: webhooks and wakeUrl.
    to_bots = outbound_http(reactor, bot_pool, allow_private=allow_private, tls=tls)
    return RelayEnvironment(
        clock=reactor,
        random=SystemRandom(),
        store=store,
        rest=DiscordREST(
            http, options["discord-api"], clock=reactor,
            invalid=InvalidRequests(
                options["invalid-budget"], share=options["invalid-share"],
                reserve=options["invalid-reserve"],
            ),
        ),
        connect=GatewayConnector(
            reactor,
            tls_options_for=tls.creator_for,
            compression=(
                None if options["gateway-compression"] == "none"
                else options["gateway-compression"]
            ),
        ).connect,
        compile_filter=filter_compiler(options),
        make_delivery=DeliveryFactory(
            outbound_reactor(reactor, allow_private=allow_private),
            store=store,
            # one writer for every bot: one outbox transaction per moment
            writer=writer if writer is not None else OutboxWriter(store, reactor),
            # never follows redirects itself (webhooks pass allow_redirects=False)
            http=to_bots,
            config=delivery_config(options, bot_pool.caps),
            latency=delivery_latency.observe if delivery_latency is not None else None,
            random=SystemRandom(),
            tls_options_for=tls.creator_for,
        ),
        retry_policy=backoffPolicy(initialDelay=1.0, maxDelay=60.0, factor=2.0),
        wake_http=to_bots,
        wake_interval=options["wake-interval"],
        defer_after=options["defer-after"],
        guild_snapshots=guild_snapshots,
    )


def answer_caps(options: Options) -> AnswerCaps:
    """
    The caps on answers from bots' URLs the operator chose.
    """
    return AnswerCaps(
        head_bytes=options["max-answer-head"],
        header_lines=options["max-answer-headers"],
        body_bytes=options["max-answer-body"],
    )


def delivery_config(options: Options, caps: AnswerCaps | None = None) -> DeliveryConfig:
    """
    The delivery settings the operator chose; the others keep their
    defaults.

    :param caps: the caps on answers, if already built from ``options``.
    """
    return DeliveryConfig(
        idle_timeout=options["idle-timeout"],
        queue_limit=options["queue-limit"],
        queue_max_age=options["queue-max-age"],
        max_bot_message=options["max-bot-message"],
        answer_caps=caps if caps is not None else answer_caps(options),
    )


def makeService(options: Options, reactor: Any = None, tls: ClientTLS | None = None) -> IService:
    """
    The relay: its store and relays, and the HTTP API.

    :param tls: what outgoing TLS trusts; by default the platform's trust
        store (which ``SSL_CERT_FILE``/``SSL_CERT_DIR`` replace).  Tests
        that run the relay in their own process give a throw-away CA here.
    """
    if reactor is None:
        from twisted.internet import reactor
    pool = HTTPConnectionPool(reactor)
    bot_pool = AnswerCappedPool(reactor, answer_caps(options))
    latency = LatencyHistogram()
    store: IRelayStore
    placement: IPlacement
    lock: DataDirLock | None
    if options["store"] is not None:
        # Imported here: psycopg loads libpq, which a SQLite node never needs.
        from dccrelay.store.postgres import PostgresStore

        shared = PostgresStore(options["store"], reactor)
        # Tokens, secrets and guild snapshots pass through SealedSecretsStore,
        # encrypted at rest.
        sealed = SealedSecretsStore(shared, options.get("encryption-keys") or ())
        writer = OutboxWriter(shared, reactor)
        env = build_environment(
            options, reactor, shared, pool, latency, tls, sealed, bot_pool=bot_pool,
            writer=writer,
        )
        node = ClusterNode(
            options["node-id"] or default_node_id(),
            lease_timing(options["lease-ttl"]),
        )
        env = replace(env, shared_identify=partial(StoreIdentifySlots, shared, node.node_id))
        placement = ClusterCoordinator(node, shared, sealed, reactor)
        store = shared
        lock = None
    else:
        store = SQLiteStore(os.path.join(options["data-dir"], STORE_FILE), reactor)
        # One data directory, one relay: its store is this node's alone.
        lock = DataDirLock(options["data-dir"])
        sealed = SealedSecretsStore(store, options.get("encryption-keys") or ())
        writer = OutboxWriter(store, reactor)
        env = build_environment(
            options, reactor, store, pool, latency, tls, sealed, bot_pool=bot_pool,
            writer=writer,
        )
        placement = Alone(store)
    # Opening the store and loading it, tried again while a fault may pass;
    # any other fault stops the process with a status systemd sees.
    startup = Startup(reactor, fatal=ExitStatus(reactor).stop)
    manager = RelayManager(
        env, sealed, options["max-relays"], delivery_latency=latency, placement=placement,
        startup=startup,
    )

    # Under twistd, options.parent holds twistd's own options (--logfile...).
    root = RelayRoot(options.parent, options["log-format"], reactor)
    # Added first, so stopped last: after the relays.
    HTTPPoolService(pool, bot_pool).setServiceParent(root)
    # The store opens before the manager starts and closes after it stopped.
    stored = StoreService(store, startup, lock=lock)
    stored.setName("store")
    stored.setServiceParent(root)
    manager.setName("relays")
    manager.setServiceParent(stored)
    # Stopped with the manager: appends the store refuses from then on are
    # given up rather than retried, so a shutdown ends.
    stopping_writer = OutboxWriterService(writer)
    stopping_writer.setName("outbox-writer")
    stopping_writer.setServiceParent(stored)
    site = build_site(
        manager,
        partial(
            parse_settings,
            # The relays' own compiler: one set of limits for registering
            # and for running.
            compile_filter=env.compile_filter,
            allow_private_dst=options["allow-private-dst"],
        ),
        access=Access(
            registration_key=options.get("registration-key"),
            operator_key=options.get("operator-key"),
            limiter=FailedAuthLimiter(reactor),
            guesses=AliasGuessLimiter(
                reactor, burst=options["failed-auth-per-alias"],
                refill=options["failed-auth-per-alias-interval"],
            ),
            registrations=RegistrationLimits(reactor, RegistrationRates(
                client_burst=options["new-tokens-per-network"],
                client_refill=options["new-token-interval"],
                alias_burst=options["token-changes-per-alias"],
                alias_refill=options["token-change-interval"],
            )),
        ),
        reactor=reactor,
    )
    if options["lag-probe"]:
        LagProbe(reactor).setServiceParent(root)
    if not options["gc-as-is"]:
        StartUpCollector(reactor, manager.started_up).setServiceParent(root)
    http = ListeningService(
        options["listen"], APIConnectionLimit(site, options["max-api-connections"]), reactor
    )
    http.setName("http")
    http.setServiceParent(root)
    return root
