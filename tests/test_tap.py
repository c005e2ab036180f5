"""
Tests for :mod:`dccrelay.tap`: ``twistd dcc``'s options and service tree.
"""

from __future__ import annotations

from twisted.application.service import IServiceCollection
from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.delivery.config import DeliveryConfig
from dccrelay.net.answer_caps import AnswerCaps
from dccrelay.ops.collector import StartUpCollector
from dccrelay.ops.lagprobe import LagProbe
from dccrelay.tap import Options, delivery_config, makeService


class OptionsTests(SynchronousTestCase):
    """
    The option names and defaults of DESIGN.md, "Operator options".
    """

    def test_defaults(self) -> None:
        """
        With no arguments every option has its documented default.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(
            {key: options[key] for key in (
                "listen", "data-dir", "discord-api", "idle-timeout",
                "queue-limit", "max-relays", "allow-private-dst", "gateway-compression",
            )},
            {
                "listen": "tcp:8080:interface=127.0.0.1",
                "data-dir": "./dcc-data",
                "discord-api": "https://discord.com/api/v10",
                "idle-timeout": 60.0,
                "queue-limit": 1000,
                "max-relays": 1000,
                "allow-private-dst": 0,
                "gateway-compression": "zlib-stream",
            },
        )

    def test_values(self) -> None:
        """
        Numbers are parsed; the flag is set.
        """
        options = Options()
        options.parseOptions(
            ["--idle-timeout", "2.5", "--queue-limit", "10", "--max-relays", "5",
             "--allow-private-dst"]
        )
        self.assertEqual(
            (options["idle-timeout"], options["queue-limit"], options["max-relays"],
             options["allow-private-dst"]),
            (2.5, 10, 5, 1),
        )

    def test_delivery_config(self) -> None:
        """
        The delivery options become one DeliveryConfig; the options' defaults
        are the configuration's.
        """
        config = delivery_config(Options())
        self.assertEqual(config, DeliveryConfig())
        options = Options()
        options.parseOptions(
            ["--idle-timeout", "2.5", "--queue-limit", "10", "--queue-max-age", "90"]
        )
        config = delivery_config(options)
        self.assertEqual(
            (config.idle_timeout, config.queue_limit, config.queue_max_age), (2.5, 10, 90.0)
        )
        self.assertRaises(AttributeError, setattr, config, "queue_limit", 1)

    def test_caps(self) -> None:
        """
        The caps on what the relay reads from bots are options, into the
        one DeliveryConfig (which the bots' HTTP pool shares).
        """
        options = Options()
        options.parseOptions(
            ["--max-bot-message", "4096", "--max-answer-head", "8192",
             "--max-answer-headers", "20", "--max-answer-body", "5000"]
        )
        config = delivery_config(options)
        self.assertEqual(config.max_bot_message, 4096)
        self.assertEqual(config.answer_caps, AnswerCaps(8192, 20, 5000))
        self.assertEqual(delivery_config(Options()).answer_caps, AnswerCaps())

    def test_bad_numbers(self) -> None:
        """
        A bad number names the option and what it must be.
        """
        for option, value, message in (
            ("--idle-timeout", "x", "--idle-timeout must be a positive number, got 'x'"),
            ("--idle-timeout", "-1", "--idle-timeout must be a positive number, got '-1'"),
            ("--queue-limit", "1.5", "--queue-limit must be a positive whole number, got '1.5'"),
            ("--max-relays", "0", "--max-relays must be a positive whole number, got '0'"),
        ):
            error = self.assertRaises(UsageError, Options().parseOptions, [option, value])
            self.assertIn(message, str(error))

    def test_queue_max_age(self) -> None:
        """
        --queue-max-age is one day by default, in seconds, and must be
        positive.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["queue-max-age"], 86400.0)
        options = Options()
        options.parseOptions(["--queue-max-age", "90.5"])
        self.assertEqual(options["queue-max-age"], 90.5)
        error = self.assertRaises(UsageError, Options().parseOptions, ["--queue-max-age", "0"])
        self.assertIn("--queue-max-age must be a positive number, got '0'", str(error))

    def test_bad_compression(self) -> None:
        """
        --gateway-compression takes zlib-stream, zstd-stream or none.
        """
        error = self.assertRaises(
            UsageError, Options().parseOptions, ["--gateway-compression", "zstd"]
        )
        self.assertIn(
            "--gateway-compression must be zlib-stream, zstd-stream or none", str(error)
        )
        options = Options()
        options.parseOptions(["--gateway-compression", "zstd-stream"])
        self.assertEqual(options["gateway-compression"], "zstd-stream")

    def test_bad_api(self) -> None:
        """
        --discord-api must be an http(s) URL.
        """
        error = self.assertRaises(
            UsageError, Options().parseOptions, ["--discord-api", "discord.com"]
        )
        self.assertIn("--discord-api must be an http(s) URL", str(error))

    def test_store(self) -> None:
        """
        --store is unset by default (SQLite in --data-dir) and takes a
        postgresql:// or postgres:// URL.
        """
        options = Options()
        options.parseOptions([])
        self.assertIsNone(options["store"])
        for url in ("postgresql://dcc:pw@db.example/dcc", "postgres:///dcc"):
            options = Options()
            options.parseOptions(["--store", url])
            self.assertEqual(options["store"], url)

    def test_bad_store(self) -> None:
        """
        A --store that is not a PostgreSQL URL is refused, naming only its
        scheme: the rest may hold a password.
        """
        error = self.assertRaises(
            UsageError, Options().parseOptions, ["--store", "mysql://dcc:s3cret@db/dcc"]
        )
        self.assertIn("--store must be a postgresql:// URL", str(error))
        self.assertIn("got mysql://", str(error))
        self.assertNotIn("s3cret", str(error))


class MakeServiceTests(SynchronousTestCase):
    """
    The service tree ``twistd dcc`` runs.
    """

    def test_services(self) -> None:
        """
        One MultiService holds the store, which holds the relays (so that
        it opens before they start and closes after they stopped) and what
        stops the outbox writer retrying, and the HTTP server on the
        --listen endpoint.
        """
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--listen", "tcp:0"])
        service = makeService(options, MemoryReactorClock())
        self.assertTrue(IServiceCollection.providedBy(service))
        self.assertEqual(
            sorted(s.name for s in service if s.name), ["http", "store"]
        )
        store = service.getServiceNamed("store")
        self.assertEqual([s.name for s in store], ["relays", "outbox-writer"])
        self.assertFalse([s for s in service if isinstance(s, LagProbe)])

    def test_lag_probe(self) -> None:
        """
        --lag-probe adds the reactor stall probe, which is off by default.
        """
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--listen", "tcp:0", "--lag-probe"])
        service = makeService(options, MemoryReactorClock())
        self.assertEqual(len([s for s in service if isinstance(s, LagProbe)]), 1)

    def test_start_up_collector(self) -> None:
        """
        By default the node holds full collections back while it starts and
        freezes what start-up made; --gc-as-is leaves the collector alone.
        """
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--listen", "tcp:0"])
        service = makeService(options, MemoryReactorClock())
        self.assertEqual(len([s for s in service if isinstance(s, StartUpCollector)]), 1)
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--listen", "tcp:0", "--gc-as-is"])
        service = makeService(options, MemoryReactorClock())
        self.assertFalse([s for s in service if isinstance(s, StartUpCollector)])

    def test_postgres_store(self) -> None:
        """
        With --store the relays keep their data in that PostgreSQL database
        (nothing connects before the service starts).
        """
        options = Options()
        options.parseOptions(
            ["--store", "postgresql://dcc:s3cret@db.example:6543/relay", "--listen", "tcp:0"]
        )
        service = makeService(options, MemoryReactorClock())
        # The one peek inside: which store the relays were given.
        store = service.getServiceNamed("store").store
        self.assertEqual(store.description, "PostgreSQL database 'relay' on db.example:6543")


class FilterLimitOptionsTests(SynchronousTestCase):
    """
    The operator's --filter-max-* options reach every backend.
    """

    def test_limit_applies(self) -> None:
        """
        A regex longer than --filter-max-regex-length is refused; the
        default allows it.
        """
        from dccrelay.filters import CriteriaError
        from dccrelay.tap import filter_compiler

        criteria = {"d.content": {"$regex": "^cookout\\\\b"}}
        options = Options()
        options.parseOptions([])
        filter_compiler(options)("mongo", criteria)
        options = Options()
        options.parseOptions(["--filter-max-regex-length", "5"])
        self.assertRaises(CriteriaError, filter_compiler(options), "mongo", criteria)
