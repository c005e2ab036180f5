"""
A bot's registration: the JSON body of ``PUT /relays/{alias}``, validated
into :class:`RelaySettings`, and what changed between two of them.

The body's first five fields (``token``, ``intents``, ``criteria``, ``dst``,
``clientSecret``) are exactly what the prototype's client sends, so those
bots keep working unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from hyperlink import DecodedURL
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from dccrelay.filters import DEFAULT_BACKEND, DEFAULT_CRITERIA, CriteriaError
from dccrelay.net.guard import refusal_reason

ALIAS = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")

# GUILD_MESSAGES | DIRECT_MESSAGES, as the prototype's sample bot asks.
DEFAULT_INTENTS = (1 << 9) | (1 << 12)

# Every intent bit Discord documents (see DISCORD.md); others are refused
# here rather than by Discord's 4013 close later.
KNOWN_INTENTS = sum(
    1 << bit for bit in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 21, 24, 25)
)

MAX_SHARDS = 1024

SECRET_MIN = 8
SECRET_MAX = 256

#: What a clientSecret must look like, and why: it is HTTP Basic's
#: ``user:password`` as one string (``curl -u "$DCC_SECRET"`` prompts for a
#: password when there is no colon).
SECRET_FORM = (
    f"clientSecret must be {SECRET_MIN} to {SECRET_MAX} printable ASCII characters "
    "shaped user:password, such as admin:$(head -c16 /dev/urandom | base64), "
    "because it is used whole as HTTP Basic credentials (curl -u \"$DCC_SECRET\")"
)

# Control characters other than tab and line breaks have no business in
# criteria; a backspace (U+0008) is what JSON makes of "\b" when a shell
# ate one of the two backslashes a regex word boundary needs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

REGISTRATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["token", "dst", "clientSecret"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[!-~]+$"},
        "intents": {"type": "integer", "minimum": 0},
        "criteria": {},
        "filter": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$"},
        "dst": {"type": "string", "minLength": 1, "maxLength": 2048},
        "clientSecret": {
            "type": "string",
            "minLength": SECRET_MIN,
            "maxLength": SECRET_MAX,
            "pattern": r"^[ -9;-~]+:[ -~]+$",
            "description": SECRET_FORM,
        },
        "shards": {
            "oneOf": [
                {"const": "auto"},
                {"type": "integer", "minimum": 1, "maximum": MAX_SHARDS},
            ]
        },
        "delivery": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"protocol": {"enum": [1, 2]}},
        },
        "typingWhileWaking": {"type": "boolean"},
        "deferInteractions": {"type": "boolean"},
        "deferEphemeral": {"type": "boolean"},
        "guildSnapshot": {"type": "boolean"},
        "wakeUrl": {"type": "string", "maxLength": 2048},
    },
}

_validator = Draft202012Validator(REGISTRATION_SCHEMA)


class SettingsError(ValueError):
    """
    A registration body is unacceptable.

    :ivar message: what is wrong, for a person.
    :ivar pointer: JSON pointer to the offending field ("" for the body).
    """

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer


@dataclass(frozen=True)
class RelaySettings:
    """
    Everything a bot registered, validated.
    """

    token: str
    dst: str
    client_secret: str
    intents: int = DEFAULT_INTENTS
    criteria: Any = field(default_factory=lambda: DEFAULT_CRITERIA)
    filter: str = DEFAULT_BACKEND
    shards: str | int = "auto"
    delivery_protocol: int = 1
    typing_while_waking: bool = False
    defer_interactions: bool = False
    wake_url: str | None = None
    #: a deferred command's "thinking..." message shows only to its user
    defer_ephemeral: bool = False
    #: keep a snapshot of the bot's guilds for its cold starts
    #: (:mod:`dccrelay.relay.guild_snapshot`)
    guild_snapshot: bool = False

    def to_json(self) -> dict[str, Any]:
        """
        The form the store keeps.
        """
        return asdict(self)

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> RelaySettings:
        """
        Rebuild settings that :meth:`to_json` produced.
        """
        return cls(**stored)

    def gateway_key(self) -> tuple[object, ...]:
        """
        What, when changed, needs a new Discord gateway session (a guild
        snapshot turned on fills from the new session's GUILD_CREATEs).
        """
        return (self.token, self.intents, self.shards, self.guild_snapshot)

    def filter_key(self) -> tuple[object, ...]:
        """
        What, when changed, needs the filter compiled again.
        """
        return (self.filter, _canonical(self.criteria))

    def delivery_key(self) -> tuple[object, ...]:
        """
        What, when changed, needs a new connection to the bot.
        """
        return (self.dst, self.client_secret, self.delivery_protocol)


def _canonical(value: Any) -> Any:
    # Criteria compare by content: key order in the JSON body is not a change.
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list",) + tuple(_canonical(v) for v in value)
    return (type(value).__name__, value)


def _pointer(path: Any) -> str:
    return "".join(
        "/" + str(part).replace("~", "~0").replace("/", "~1") for part in path
    )


def _schema_message(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    if where == "clientSecret":
        # jsonschema's own message would echo the secret.
        secret = error.instance
        got = (
            f"got {len(secret)} characters"
            + ("" if ":" in secret[1:-1] else " without a ':' between user and password")
            if isinstance(secret, str)
            else f"got a JSON {type(secret).__name__}"
        )
        return f"{SECRET_FORM}; {got}"
    if error.validator == "additionalProperties":
        return f"unknown field: {error.message}"
    if where:
        return f"{where}: {error.message}"
    return error.message


def _check_criteria_text(criteria: Any, pointer: str = "") -> None:
    """
    :raise SettingsError: if a key or string in ``criteria`` holds a control
        character, which no Discord text needs and which is almost always a
        shell's or a JSON escape's doing (``"\\b"`` became a backspace).
    """
    if isinstance(criteria, dict):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in criteria.items()]
        for key, value in items:
            where = pointer + "/" + key.replace("~", "~0").replace("/", "~1")
            _check_control(key, where)
            _check_criteria_text(value, where)
    elif isinstance(criteria, list):
        for index, value in enumerate(criteria):
            _check_criteria_text(value, f"{pointer}/{index}")
    elif isinstance(criteria, str):
        _check_control(criteria, pointer)


def _check_control(text: str, pointer: str) -> None:
    found = _CONTROL.search(text)
    if found is None:
        return
    char = found.group()
    hint = (
        ": a backspace is what JSON makes of \"\\b\"; for a regex word boundary "
        "write \"\\\\b\" in the JSON (in a shell, inside single quotes)"
        if char == "\b"
        else "; escape a backslash in JSON as \"\\\\\""
    )
    raise SettingsError(
        f"criteria{pointer} holds the control character U+{ord(char):04X}{hint}",
        "/criteria" + pointer,
    )


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) else value


def validate_alias(alias: str) -> None:
    """
    :raise SettingsError: if ``alias`` is not 1–64 letters, digits or ``_``.
    """
    if not ALIAS.match(alias):
        raise SettingsError(
            "alias must be 1 to 64 characters of A-Z, a-z, 0-9 and _", "/alias"
        )


PRIVATE_HINT = (
    "this relay refuses private destinations unless its operator starts it with "
    "--allow-private-dst (allow-private-dst = true in its config file), which is "
    "meant for local development"
)


def _check_url_host_is_public(url: DecodedURL, name: str) -> None:
    host = url.host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise SettingsError(
            f"{name} points at {host}, a loopback address; {PRIVATE_HINT}",
            "/" + name,
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked after resolution, on connecting (dccrelay.net.guard)
    reason = refusal_reason(address)
    if reason is not None:
        raise SettingsError(
            f"{name} points at {host}, {reason}; {PRIVATE_HINT}",
            "/" + name,
        )


def _parse_url(text: str, name: str, schemes: tuple[str, ...]) -> DecodedURL:
    # Before anything reads it: a line break here would end a header line
    # of the relay's request to the bot (header injection).
    if any(c.isspace() or not c.isprintable() for c in text):
        raise SettingsError(
            f"{name} must not contain whitespace or control characters", "/" + name
        )
    try:
        url = DecodedURL.from_text(text)
    except (ValueError, TypeError) as e:
        raise SettingsError(f"{name} is not a URL: {e}", "/" + name)
    if url.scheme not in schemes or not url.host:
        raise SettingsError(
            f"{name} must be an absolute {' or '.join(schemes)} URL, got {text!r}",
            "/" + name,
        )
    # What the websocket and HTTP clients would refuse later, refused now.
    if url.port is None or not 0 < url.port < 65536:
        raise SettingsError(f"{name}: the port must be 1 to 65535, got {url.port}", "/" + name)
    if url.fragment:
        raise SettingsError(f"{name} must not have a #fragment", "/" + name)
    return url


def parse_settings(
    body: Any,
    *,
    compile_filter: Callable[[str, Any], object],
    allow_private_dst: bool,
) -> RelaySettings:
    """
    Validate a registration body.

    :param compile_filter: ``(filter_name, criteria)``; raises
        :class:`CriteriaError` or :class:`LookupError` for criteria that
        cannot run, so that bad criteria are refused now, never discovered
        later.
    :raise SettingsError: naming the first problem found.
    """
    errors = sorted(_validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise SettingsError(_schema_message(first), _pointer(first.absolute_path))

    # JSON Schema counts 4608.0 as an integer; the relay wants ints.
    intents = _whole(body.get("intents", DEFAULT_INTENTS))
    if intents & ~KNOWN_INTENTS:
        raise SettingsError(
            f"intents has bits Discord does not define: {intents & ~KNOWN_INTENTS:#x}",
            "/intents",
        )

    dst = _parse_url(body["dst"], "dst", ("ws", "wss", "http", "https"))
    protocol = _whole(body.get("delivery", {}).get("protocol", 1))
    if protocol != 1 and dst.scheme in ("http", "https"):
        raise SettingsError(
            "delivery.protocol chooses between websocket protocols (ws:// or wss:// dst);"
            " a webhook dst (http:// or https://) has one protocol: leave"
            " delivery.protocol out",
            "/delivery/protocol",
        )
    wake_url = body.get("wakeUrl")
    if wake_url is not None:
        parsed_wake = _parse_url(wake_url, "wakeUrl", ("http", "https"))
    if not allow_private_dst:
        _check_url_host_is_public(dst, "dst")
        if wake_url is not None:
            _check_url_host_is_public(parsed_wake, "wakeUrl")

    settings = RelaySettings(
        token=body["token"],
        dst=body["dst"],
        client_secret=body["clientSecret"],
        intents=intents,
        criteria=body.get("criteria", DEFAULT_CRITERIA),
        filter=body.get("filter", DEFAULT_BACKEND),
        shards=_whole(body.get("shards", "auto")),
        delivery_protocol=protocol,
        typing_while_waking=body.get("typingWhileWaking", False),
        defer_interactions=body.get("deferInteractions", False),
        wake_url=wake_url,
        defer_ephemeral=body.get("deferEphemeral", False),
        guild_snapshot=body.get("guildSnapshot", False),
    )
    try:
        compile_filter(settings.filter, settings.criteria)
    except CriteriaError as e:
        raise SettingsError(f"criteria: {e.message}", "/criteria" + e.pointer)
    except LookupError as e:
        raise SettingsError(str(e).strip("'\""), "/filter")
    # After compiling, whose limits bound the criteria's depth.
    _check_criteria_text(settings.criteria)
    return settings
