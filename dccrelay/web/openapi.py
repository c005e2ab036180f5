"""
``GET /openapi.json``: an OpenAPI 3.1 description of the relay's HTTP API.

The registration body's schema *is* :data:`dccrelay.relay.settings.REGISTRATION_SCHEMA`,
the one the relay validates with, so the two cannot drift apart; a test
checks that every route of the resource tree is described here and that
everything described here is served.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay import __version__
from dccrelay.gateway.commands import COMMAND_SCHEMA
from dccrelay.relay.settings import ALIAS, REGISTRATION_SCHEMA

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = _json(_ERROR, description)
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
}
_THROTTLED = _error(
    "Too many failed authentication attempts from this network, or for this alias",
    _RETRY_AFTER,
)
_UNAUTHORIZED = _error("Missing or wrong credentials")

_SHARD = {
    "type": "object",
    "required": ["id", "state"],
    "properties": {
        "id": {"type": "integer"},
        "state": {"type": "string"},
        "lastClose": {},
        "identifies": {"type": "integer"},
        "resumes": {"type": "integer"},
        "seq": {"type": ["integer", "null"]},
    },
}

_PUBLIC_STATUS = {
    "type": "object",
    "description": "What anyone may see of a bot: no token, secret, dst or criteria.",
    "required": ["alias", "enabled", "shards", "delivery", "queued", "dropped", "counters"],
    "properties": {
        "alias": {"type": "string", "pattern": ALIAS.pattern.replace("\\Z", "$")},
        "enabled": {"type": "boolean"},
        "lastDisableReason": {"type": ["string", "null"]},
        "gatewayError": {"type": ["string", "null"]},
        "shards": {"type": "array", "items": _SHARD},
        "delivery": {
            "type": "object",
            "required": ["state"],
            "properties": {"state": {"type": "string"}},
        },
        "queued": {"type": "integer", "minimum": 0},
        "dropped": {"type": "integer", "minimum": 0},
        "lastDeliveryError": {"type": ["string", "null"]},
        "interactions": {
            "type": "object",
            "description": "deferInteractions: what became of the bot's interactions",
            "properties": {
                "deferred": {"type": "integer", "description": "deferred by the relay"},
                "inTime": {"type": "integer", "description": "reached the bot in time"},
                "answeredFirst": {
                    "type": "integer",
                    "description": "deferral refused: the bot had just answered",
                },
                "deferFailed": {"type": "integer"},
            },
        },
        "guildSnapshot": {
            "type": "object",
            "description": "guildSnapshot: guilds kept, their bytes, guilds left out",
            "properties": {
                "guilds": {"type": "integer"},
                "bytes": {"type": "integer"},
                "skipped": {"type": "integer"},
            },
        },
        "wake": {
            "type": "object",
            "description": "What waking the bot cost and gained (docs/waking.rst).",
            "properties": {
                "asleepDeliveries": {
                    "type": "object",
                    "description": (
                        "Seconds from a dispatch matching while the bot was not connected "
                        "to its delivery: count, sum, max and cumulative buckets by upper "
                        "bound"
                    ),
                    "properties": {
                        "count": {"type": "integer"},
                        "sumSeconds": {"type": "number"},
                        "maxSeconds": {"type": "number"},
                        "buckets": {
                            "type": "object", "additionalProperties": {"type": "integer"}
                        },
                    },
                },
                "wakeRequests": {"type": "integer"},
                "typingCalls": {"type": "integer"},
                "deferredInteractions": {"type": "integer"},
            },
        },
        "counters": {
            "type": "object",
            "properties": {
                "received": {"type": "integer"},
                "matched": {"type": "integer"},
                "delivered": {"type": "integer"},
                "commands": {"type": "integer", "description": "gateway commands sent"},
                "answers": {
                    "type": "integer",
                    "description": "answers to member requests delivered beside the criteria",
                },
            },
        },
    },
}

_FULL_STATUS = {
    "description": "A bot's status with its settings; the token is masked.",
    "allOf": [
        {"$ref": "#/components/schemas/PublicStatus"},
        {
            "type": "object",
            "required": ["settings"],
            "properties": {
                "settings": {
                    "type": "object",
                    "required": ["token", "dst"],
                    "properties": {
                        "token": {"type": "string", "description": "masked"},
                        "dst": {"type": "string"},
                    },
                }
            },
        },
    ],
}

_ALIAS_PARAMETER = {
    "name": "alias",
    "in": "path",
    "required": True,
    "description": "The bot's name on this relay.",
    "schema": {"type": "string", "pattern": ALIAS.pattern.replace("\\Z", "$")},
}

_OWNER: list[dict[str, list[str]]] = [{"clientSecret": []}, {"operatorKey": []}]

_BAD_ALIAS = _error("The alias is not 1 to 64 characters of A-Z, a-z, 0-9 and _")


def openapi_document() -> dict[str, Any]:
    """
    The description, as a JSON-compatible dict.
    """
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "dccrelay",
            "version": __version__,
            "summary": "Holds Discord gateway connections for sleeping bots.",
            "description": (
                "Register a bot, see its status, disable or delete it.  Errors are "
                '`{"error": "...", "field": "<json pointer>"}`.  Bodies are JSON, at '
                "most 64 KiB."
            ),
        },
        "paths": {
            "/relays": {
                "get": {
                    "operationId": "listRelays",
                    "summary": "The status of every bot; with the operator key, "
                    "their full status and settings.",
                    "security": [{}, {"operatorKey": []}],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["relays"],
                                "properties": {
                                    "relays": {
                                        "type": "array",
                                        "items": {
                                            "$ref": "#/components/schemas/PublicStatus"
                                        },
                                    }
                                },
                            },
                            "Every bot, by alias",
                        ),
                        "401": _UNAUTHORIZED,
                        "429": _THROTTLED,
                    },
                }
            },
            "/relays/{alias}": {
                "parameters": [_ALIAS_PARAMETER],
                "put": {
                    "operationId": "putRelay",
                    "summary": "Create or update a bot's registration (idempotent).",
                    "description": (
                        "Creating needs no credentials, unless the operator set a "
                        "registration key.  Updating needs the bot's current "
                        "clientSecret; the body's clientSecret may differ, which "
                        "rotates it."
                    ),
                    "security": [
                        {},
                        {"registrationKey": []},
                        {"registrationBearer": []},
                        {"clientSecret": []},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Registration"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/FullStatus"}, "Updated (or unchanged)"
                        ),
                        "201": _json({"$ref": "#/components/schemas/FullStatus"}, "Created"),
                        "400": _error("The body or the alias is not acceptable"),
                        "401": _UNAUTHORIZED,
                        "413": _error("The body is larger than 64 KiB"),
                        "409": _error("The token is registered under another alias"),
                        "415": _error("The body is not JSON"),
                        "429": _error(
                            "Too many failed authentication attempts (from this network,"
                            " or for this alias), or too many new registrations and"
                            " token changes (from this network, or for this alias)",
                            _RETRY_AFTER,
                        ),
                        "503": _error(
                            "The relay holds its maximum number of bots", _RETRY_AFTER
                        ),
                    },
                },
                "get": {
                    "operationId": "getRelay",
                    "summary": "A bot's full status and settings (token masked).",
                    "security": _OWNER,
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/FullStatus"}, "The bot"),
                        "400": _BAD_ALIAS,
                        "401": _UNAUTHORIZED,
                        "404": _error("No bot is registered with this alias"),
                        "429": _THROTTLED,
                    },
                },
                "delete": {
                    "operationId": "deleteRelay",
                    "summary": "Stop and forget a bot; 200 if it was already absent.",
                    "security": _OWNER,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["alias", "deleted"],
                                "properties": {
                                    "alias": {"type": "string"},
                                    "deleted": {"type": "boolean"},
                                },
                            },
                            "Whether it existed",
                        ),
                        "400": _BAD_ALIAS,
                        "401": _UNAUTHORIZED,
                        "429": _THROTTLED,
                    },
                },
            },
            "/relays/{alias}/disable": {
                "parameters": [_ALIAS_PARAMETER],
                "post": {
                    "operationId": "disableRelay",
                    "summary": "End a bot's gateway session; a later PUT re-enables it.",
                    "security": _OWNER,
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/FullStatus"}, "Disabled"),
                        "400": _BAD_ALIAS,
                        "401": _UNAUTHORIZED,
                        "404": _error("No bot is registered with this alias"),
                        "429": _THROTTLED,
                    },
                },
            },
            "/relays/{alias}/commands": {
                "parameters": [_ALIAS_PARAMETER],
                "post": {
                    "operationId": "sendCommand",
                    "summary": "Send a gateway command on the bot's gateway session: "
                    "presence update (op 3) or request guild members (op 8).",
                    "description": (
                        "The command is checked against its schema and the bot's "
                        "intents, and queued on the shards it concerns (op 3: every "
                        "shard; op 8: the guild's) within Discord's 120 payloads per "
                        "60 s.  The GUILD_MEMBERS_CHUNK dispatches answering an op 8 "
                        "(matched by its nonce; the relay adds one if the request has "
                        "none) are delivered to the bot whatever its criteria say.  "
                        "A websocket v2 bot can send the same as a "
                        '{"op":"command","ref":...,"d":<command>} frame.'
                    ),
                    "security": [{"clientSecret": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/GatewayCommand"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["op", "shards"],
                                "properties": {
                                    "op": {"type": "integer"},
                                    "shards": {"type": "array", "items": {"type": "integer"}},
                                    "nonce": {
                                        "type": "string",
                                        "description": "op 8: the nonce its chunks carry",
                                    },
                                },
                            },
                            "Queued on those shards",
                        ),
                        "400": _error("Not a command the relay forwards, or a bad alias"),
                        "401": _UNAUTHORIZED,
                        "404": _error("No bot is registered with this alias"),
                        "409": _error("The bot is disabled, or runs on another node"),
                        "413": _error("The body is larger than 64 KiB"),
                        "415": _error("The body is not JSON"),
                        "429": _error(
                            "Too many failed authentication attempts, or too many "
                            "commands or member requests waiting",
                            _RETRY_AFTER,
                        ),
                        "503": _error(
                            "The bot's gateway session is not ready", _RETRY_AFTER
                        ),
                    },
                },
            },
            "/relays/{alias}/snapshot": {
                "parameters": [_ALIAS_PARAMETER],
                "get": {
                    "operationId": "guildSnapshot",
                    "summary": "The bot's guilds as its gateway last described them "
                    "(guildSnapshot), for its framework's cold start.",
                    "security": [{"clientSecret": []}],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["user", "guilds"],
                                "properties": {
                                    "user": {"type": ["object", "null"]},
                                    "guilds": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                            "The user of the bot's last READY (null before one), and "
                            "each guild's GUILD_CREATE, members but the bot's left out",
                        ),
                        "400": _BAD_ALIAS,
                        "401": _UNAUTHORIZED,
                        "404": _error("No such bot, or it keeps no guild snapshot"),
                        "409": _error("The bot runs on another node"),
                        "429": _THROTTLED,
                    },
                },
            },
            "/relays/{alias}/claim": {
                "parameters": [_ALIAS_PARAMETER],
                "post": {
                    "operationId": "claimInteraction",
                    "summary": "The bot has an interaction: may it answer through "
                    "Discord's callback, or did the relay defer it?",
                    "description": (
                        "With deferInteractions, the relay defers an interaction the "
                        "bot has not acknowledged within --defer-after seconds.  A bot "
                        "that claims an interaction first answers it itself (the relay "
                        "will not defer it); once the relay has deferred it, the answer "
                        "says how, and the bot answers through the interaction's "
                        "webhook.  Either way only one of them calls the callback."
                    ),
                    "security": [{"clientSecret": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["interaction"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "interaction": {
                                            "type": "string",
                                            "pattern": "^[0-9]+$",
                                            "description": "the interaction's id",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["owner"],
                                "properties": {
                                    "owner": {"enum": ["bot", "relay"]},
                                    "deferred": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"enum": [5, 6]},
                                            "ephemeral": {"type": "boolean"},
                                        },
                                    },
                                },
                            },
                            "Who answers Discord's callback",
                        ),
                        "400": _error("Not a claim, or a bad alias"),
                        "401": _UNAUTHORIZED,
                        "404": _error("No bot is registered with this alias"),
                        "409": _error("The bot runs on another node"),
                        "413": _error("The body is larger than 64 KiB"),
                        "415": _error("The body is not JSON"),
                        "429": _THROTTLED,
                    },
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness: 200 once the relays are loaded, 503 before.",
                    "security": [{}],
                    "responses": {
                        "200": _json(
                            {"type": "object", "required": ["status"]}, "Ready"
                        ),
                        "503": _json(
                            {"type": "object", "required": ["status"]}, "Starting"
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text format, or OpenMetrics if the "
                    "Accept header asks for it).",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "The metrics",
                            "content": {
                                "text/plain": {"schema": {"type": "string"}},
                                "application/openmetrics-text": {"schema": {"type": "string"}},
                            },
                        }
                    },
                }
            },
            "/": {
                "get": {
                    "operationId": "statusPage",
                    "summary": "A status page for people (HTML), with no secrets.",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "The page",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/bots/{alias}": {
                "parameters": [_ALIAS_PARAMETER],
                "get": {
                    "operationId": "botPage",
                    "summary": (
                        "One bot's page for people (HTML): shards, close reasons, "
                        "delivery, queue, wake economy; with ?private=1 or credentials, "
                        "also its settings (token masked)."
                    ),
                    "security": [{}, *_OWNER],
                    "parameters": [{
                        "name": "private",
                        "in": "query",
                        "required": False,
                        "description": "1: ask for the owner's credentials and show settings.",
                        "schema": {"type": "string"},
                    }],
                    "responses": {
                        code: {
                            "description": what,
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                        for code, what in (
                            ("200", "The page"),
                            ("401", "Private details need the clientSecret or operator key"),
                            ("404", "No bot is registered under this alias"),
                            ("429", "Too many failed authentication attempts"),
                        )
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description.",
                    "security": [{}],
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.1"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Registration": REGISTRATION_SCHEMA,
                "GatewayCommand": COMMAND_SCHEMA,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string", "description": "what is wrong"},
                        "field": {
                            "type": "string",
                            "description": "JSON pointer to the offending field",
                        },
                    },
                },
                "PublicStatus": _PUBLIC_STATUS,
                "FullStatus": _FULL_STATUS,
            },
            "securitySchemes": {
                "clientSecret": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The bot's clientSecret, whole, as Basic credentials.",
                },
                "operatorKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator key (--operator-key-file).",
                },
                "registrationBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The registration key (--registration-key-file).",
                },
                "registrationKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Dcc-Registration-Key",
                    "description": "The registration key, beside Basic credentials.",
                },
            },
        },
    }


class OpenAPIDocument(Resource):
    """
    Serves :func:`openapi_document`.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._body = orjson.dumps(openapi_document())

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        return self._body
