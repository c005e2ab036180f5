"""
Tests for :mod:`dccrelay.config`: ``twistd dcc --config FILE``.
"""

from __future__ import annotations

import os
import re
import tomllib

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

import dccrelay
from dccrelay.config import ConfigError, ConfigFileOptions
from dccrelay.tap import Options

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__))),
    "etc", "dcc.toml.example",
)
KEY_LINE = re.compile(r"^#?\s*([a-z][a-z0-9-]*)\s*=")


class ConfigFileTests(SynchronousTestCase):
    """
    A TOML file sets options by their long names; the command line wins.
    """

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_file_sets_options(self) -> None:
        """
        Keys set parameters (numbers through the option's own coerce
        function) and flags.
        """
        path = self.write(
            'listen = "tcp:9000"\n'
            "idle-timeout = 2.5\n"
            "queue-limit = 10\n"
            "max-relays = 7\n"
            "allow-private-dst = true\n"
        )
        options = self.parse("--config", path)
        self.assertEqual(
            (options["listen"], options["idle-timeout"], options["queue-limit"],
             options["max-relays"], options["allow-private-dst"]),
            ("tcp:9000", 2.5, 10, 7, 1),
        )
        # Untouched keys keep their defaults.
        self.assertEqual(options["data-dir"], "./dcc-data")

    def test_command_line_wins(self) -> None:
        """
        An option on the command line overrides the file, even when its
        value is the default; the short -c works too.
        """
        path = self.write('listen = "tcp:9000"\nidle-timeout = 5\nqueue-limit = 3\n')
        options = self.parse("--idle-timeout", "60", "-c", path, "--listen", "tcp:1")
        self.assertEqual(
            (options["listen"], options["idle-timeout"], options["queue-limit"]),
            ("tcp:1", 60.0, 3),
        )

    def test_false_flag(self) -> None:
        """
        A flag set to false in the file stays off; the command line can
        still turn it on.
        """
        path = self.write("allow-private-dst = false\n")
        self.assertEqual(self.parse("--config", path)["allow-private-dst"], 0)
        self.assertEqual(
            self.parse("--config", path, "--allow-private-dst")["allow-private-dst"], 1
        )

    def test_checks_see_file_values(self) -> None:
        """
        The options' own checks (postOptions) apply to values from the file.
        """
        path = self.write('gateway-compression = "zstd"\n')
        error = self.assertRaises(UsageError, self.parse, "--config", path)
        self.assertIn("gateway-compression must be zlib-stream, zstd-stream or none", str(error))

    def assertConfigError(self, text: str, *expected: str) -> None:
        path = self.write(text)
        error = self.assertRaises(ConfigError, self.parse, "--config", path)
        self.assertIsInstance(error, UsageError)
        for part in (path, *expected):
            self.assertIn(part, str(error))

    def test_unknown_key(self) -> None:
        """
        An unknown key is an error naming the key and the file, with the
        nearest known key.
        """
        self.assertConfigError(
            'data_dir = "x"\n', "unknown key 'data_dir'", "did you mean 'data-dir'?"
        )
        self.assertConfigError("[dcc]\nlisten = 'tcp:1'\n", "unknown key 'dcc'")

    def test_config_in_config(self) -> None:
        """
        The file cannot name another file.
        """
        self.assertConfigError('config = "other.toml"\n', "unknown key 'config'")

    def test_wrong_types(self) -> None:
        """
        A value of the wrong type names the key, the file and what it must be.
        """
        self.assertConfigError("listen = 8080\n", "'listen' must be a string, not an integer (8080)")
        self.assertConfigError(
            'allow-private-dst = "yes"\n', "'allow-private-dst' must be true or false, not a string"
        )
        self.assertConfigError(
            "queue-limit = [1]\n", "'queue-limit' must be a string or a number, not an array"
        )
        self.assertConfigError(
            "idle-timeout = true\n", "'idle-timeout' must be a string or a number, not a boolean"
        )

    def test_number_as_string(self) -> None:
        """
        A number written as a TOML string (``idle-timeout = "30"``) stops
        start-up, saying to drop the quotes, as the docs promise for a value
        of the wrong type.
        """
        self.assertConfigError(
            'idle-timeout = "30"\n',
            "'idle-timeout' must be a number, not a string ('30'): write idle-timeout = 30 "
            "without quotes",
        )
        self.assertConfigError('queue-limit = "10"\n', "'queue-limit' must be a number")

    def test_bad_values(self) -> None:
        """
        A value its option refuses is reported with the file and the
        option's own message.
        """
        self.assertConfigError(
            "queue-limit = 1.5\n", "queue-limit must be a positive whole number, got '1.5'"
        )
        self.assertConfigError(
            "idle-timeout = -1\n", "idle-timeout must be a positive number, got '-1'"
        )
        self.assertConfigError('log-format = "xml"\n', "log-format must be text or json")

    def test_not_toml(self) -> None:
        """
        A file that is not TOML is reported with the parser's line and column.
        """
        self.assertConfigError("listen: tcp\n", "is not valid TOML", "line 1")

    def test_missing_file(self) -> None:
        """
        A missing file is reported, not ignored.
        """
        path = self.mktemp()
        error = self.assertRaises(ConfigError, self.parse, "--config", path)
        self.assertIn(f"cannot read the config file {path}", str(error))

    def test_generic_mapping(self) -> None:
        """
        Any option declared in optParameters or optFlags is a key, without
        the config module knowing it.
        """

        class More(ConfigFileOptions):
            optParameters = [["config", None, None, ""], ["colour", None, "red", ""],
                             ["count", None, 1, "", int]]
            optFlags = [["loud", None, ""]]

            def postOptions(self) -> None:
                super().postOptions()

        path = self.write('colour = "blue"\ncount = 3\nloud = true\n')
        options = More()
        options.parseOptions(["--config", path, "--count", "4"])
        self.assertEqual(
            (options["colour"], options["count"], options["loud"]), ("blue", 4, 1)
        )
        options = More()
        error = self.assertRaises(
            ConfigError, options.parseOptions, ["--config", self.write('count = "x"\n')]
        )
        self.assertIn("'count': invalid literal for int()", str(error))


class ExampleTests(SynchronousTestCase):
    """
    ``etc/dcc.toml.example`` documents every option and is a valid config.
    """

    def documented(self) -> tuple[set[str], set[str]]:
        """
        The keys of the example: all of them (set or commented out, as
        ``# key = value``), and those it sets.
        """
        with open(EXAMPLE) as f:
            lines = f.read().splitlines()
        every = {m.group(1) for m in map(KEY_LINE.match, lines) if m}
        with open(EXAMPLE, "rb") as f:
            active = set(tomllib.load(f))
        return every, active

    def test_every_option_documented(self) -> None:
        """
        The example has a key for every option a file can set, and no other.
        """
        every, active = self.documented()
        flags, parameters = Options.file_keys()
        self.assertEqual(every, flags | set(parameters))
        self.assertLessEqual(active, every)

    def test_example_loads_with_defaults(self) -> None:
        """
        The example, used as it is, gives every option its default.
        """
        options = Options()
        options.parseOptions(["--config", EXAMPLE])
        defaults = Options()
        defaults.parseOptions([])
        for key in set(options) - {"config"}:
            self.assertEqual(options[key], defaults[key], key)


class SystemdUnitTests(SynchronousTestCase):
    """
    ``etc/dcc.service`` and ``etc/dcc.toml.example`` agree: one
    configuration directory, and key files as the unit's credentials.
    """

    def read(self, name: str) -> str:
        with open(os.path.join(os.path.dirname(EXAMPLE), name)) as f:
            return f.read()

    def test_one_configuration_directory(self) -> None:
        """
        Every /etc path in the unit and the example is under the unit's
        ConfigurationDirectory.
        """
        unit = self.read("dcc.service")
        directory = re.search(r"^ConfigurationDirectory=(\S+)$", unit, re.M)
        assert directory is not None
        for text in (unit, self.read("dcc.toml.example")):
            for path in re.findall(r"/etc/[\w.-]+", text):
                if path != "/etc/systemd":
                    self.assertEqual(path, f"/etc/{directory.group(1)}", path)

    def test_credentials_match(self) -> None:
        """
        Each credential the example names is one the unit can load, and
        the unit hands key files over with LoadCredential=.
        """
        unit = self.read("dcc.service")
        loaded = set(re.findall(r"^#?LoadCredential=([\w.-]+):", unit, re.M))
        named = set(re.findall(r'"credential:([\w.-]+)"', self.read("dcc.toml.example")))
        self.assertTrue(named)
        self.assertEqual(named, loaded)
        self.assertIn("DynamicUser=yes", unit)
