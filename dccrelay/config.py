"""
``twistd dcc --config PATH``: a TOML file that sets the same options as the
command line.

The file's keys are the options' long names (``listen``, ``data-dir``,
``idle-timeout``, ``allow-private-dst``...), at the top level of the file.
Whatever the command line gives wins over the file; what neither gives
keeps its default.  The mapping is built from the options' own
``optParameters`` and ``optFlags``, so an option added there is accepted in
the file at once, converted and checked by the same coerce function:

- an option with a value takes a TOML string, integer or float (numbers
  go through the option's coerce function as the command line's text
  would, so ``queue-limit = 1.5`` fails just as ``--queue-limit 1.5`` does);
  an option whose value is a number takes a TOML number only (``"30"`` is
  refused); an option without a coerce function takes a string only;
- a flag takes ``true`` or ``false``.

Relative paths in the file are relative to the working directory, as on the
command line.
"""

from __future__ import annotations

import difflib
import tomllib
from typing import Any, Callable

from twisted.python import usage
from twisted.python.reflect import accumulateClassList

#: The option that names the file, and options that only act (``--help``).
NOT_IN_FILE = frozenset({"config", "help", "version"})


class ConfigError(usage.UsageError):
    """
    The config file cannot be used; the message names the file and the key.
    """


class _RecordingParameter(usage.CoerceParameter):
    """
    A parameter's coerce step that also notes the option was given on the
    command line.
    """

    def __init__(self, options: ConfigFileOptions, wrapped: usage.CoerceParameter) -> None:
        super().__init__(options, wrapped.coerce)
        self.doc = wrapped.doc

    def dispatch(self, parameterName: str, value: str) -> None:
        self.options.given_on_command_line.add(parameterName)
        super().dispatch(parameterName, value)


def _recording_flag(
    options: ConfigFileOptions, wrapped: Callable[..., None]
) -> Callable[..., None]:
    def dispatch(name: str, value: Any = None) -> None:
        options.given_on_command_line.add(name)
        wrapped(name, value)

    return dispatch


class ConfigFileOptions(usage.Options):
    """
    :class:`usage.Options` whose ``--config`` file supplies what the command
    line does not.  A subclass lists ``["config", None, None, "..."]`` among
    its ``optParameters`` and calls ``super().postOptions()`` first thing in
    its own ``postOptions``, so that its checks see the file's values too.
    """

    def __init__(self) -> None:
        super().__init__()
        #: long names of the options given on the command line
        self.given_on_command_line: set[str] = set()
        flags, _ = self.file_keys()
        for name, dispatcher in list(self._dispatch.items()):
            if isinstance(dispatcher, usage.CoerceParameter):
                self._dispatch[name] = _RecordingParameter(self, dispatcher)
            elif name in flags:
                self._dispatch[name] = _recording_flag(self, dispatcher)

    @classmethod
    def file_keys(cls) -> tuple[set[str], dict[str, Any]]:
        """
        :return: the flag names, and each value option's name with its coerce
            function (or None for plain text), that a config file may set.
        """
        flags: list[Any] = []
        parameters: list[Any] = []
        accumulateClassList(cls, "optFlags", flags)
        accumulateClassList(cls, "optParameters", parameters)
        flag_names = {flag[0] for flag in flags} - NOT_IN_FILE
        values = {
            p[0]: (p[4] if len(p) > 4 else None) for p in parameters if p[0] not in NOT_IN_FILE
        }
        return flag_names, values

    def postOptions(self) -> None:
        path = self.get("config")
        if path:
            apply_config(self, path, load_config(path))


def load_config(path: str) -> dict[str, Any]:
    """
    Read and parse a TOML file.

    :raise ConfigError: if it cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read the config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean", int: "an integer", float: "a float", str: "a string",
        dict: "a table", list: "an array",
    }.get(type(value), f"a {type(value).__name__}")
    if isinstance(value, (dict, list)):
        return kind
    return f"{kind} ({value!r})"


def apply_config(options: ConfigFileOptions, path: str, values: dict[str, Any]) -> None:
    """
    Set every option of ``values`` that the command line did not give.

    :raise ConfigError: for an unknown key or a value of the wrong type or
        form, naming the key and the file.
    """
    flags, parameters = options.file_keys()
    known = sorted(flags | set(parameters))
    for key, value in values.items():
        where = f"{path}: {key!r}"
        if key in flags:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, not {_describe(value)}")
            converted: Any = 1 if value else 0
        elif key in parameters:
            converted = _convert(path, key, value, parameters[key])
        else:
            hint = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(
                f"{path}: unknown key {key!r}{suggestion} (known keys: {', '.join(known)})"
            )
        if key not in options.given_on_command_line:
            options[key] = converted


def _convert(path: str, key: str, value: Any, coerce: Callable[[str], Any] | None) -> Any:
    where = f"{path}: {key!r}"
    if coerce is None:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {_describe(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where} must be a string or a number, not {_describe(value)}")
    try:
        converted = coerce(str(value))
    except (ValueError, usage.UsageError) as e:
        message = str(e)
        # The coerce functions speak of the command line ("--idle-timeout
        # must be ..."); here the key was in the file.
        if message.startswith(f"--{key} "):
            message = message[2:]
        else:
            message = f"{key!r}: {message}"
        raise ConfigError(f"{path}: {message}") from None
    # A number option written as a TOML string ("30") is a mistake the
    # docs promise to stop at start-up, like any wrong type.
    if isinstance(value, str) and isinstance(converted, (int, float)) and not isinstance(
        converted, bool
    ):
        raise ConfigError(
            f"{where} must be a number, not {_describe(value)}: write {key} = {value.strip()} "
            "without quotes"
        )
    return converted
