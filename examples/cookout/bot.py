"""
The cookout bot wired together: a web server with the covered-items page and
the relay's websocket endpoint, Discord replies over REST, and registration
with the relay at every start-up (registering is idempotent, so a bot whose
host restarts it changes nothing on the relay).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site

from dccrelay.client import receiver_resource, register
from examples.cookout.commands import reply_to
from examples.cookout.discord import DiscordREST
from examples.cookout.model import Assignments
from examples.cookout.web import CoveredPage

#: GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT: messages, and nothing
#: else, reach the relay, with their text (which the criteria read): Discord
#: blanks guild messages' content for bots without the privileged
#: MESSAGE_CONTENT intent, switched on in the developer portal.
INTENTS = (1 << 9) | (1 << 12) | (1 << 15)


def cookout_criteria(bot_user_id: str) -> dict[str, Any]:
    """
    The prototype sample's criteria: messages from people (not bots) that
    are direct messages, mention the bot, or start with ``cookout``.
    """
    return {
        # the intents already limit what Discord sends; this also drops
        # READY, CHANNEL_CREATE, MESSAGE_UPDATE and the like
        "t": "MESSAGE_CREATE",
        # answering other bots (or itself) could loop without a person
        "$not": {"d.author.bot": True},
        "$or": [
            {"d.guild_id": {"$exists": False}},
            {"d.mentions": {"$elemMatch": {"id": bot_user_id}}},
            {"d.content": {"$regex": "^cookout\\b"}},
        ],
    }


@dataclass(frozen=True)
class CookoutConfig:
    """
    What the cookout bot needs to know.

    :ivar relay_url: the relay's base URL.
    :ivar token: the Discord bot token.
    :ivar bot_user_id: the bot's Discord user id (for mentions).
    :ivar client_secret: shared with the relay.
    :ivar alias: the bot's name on the relay.
    :ivar discord_api: Discord's REST base URL (the simulator's, locally).
    :ivar data_dir: where the volunteers are kept.
    :ivar dst: the public URL of the websocket endpoint; None: derived
        from the address the bot listens on (fine on loopback only).
    :ivar web_url: the public URL of the covered-items page, for ``help``.
    :ivar delivery_protocol: websocket delivery 1 is the prototype's; 2
        has the relay keep each message until the bot acknowledges it, which
        the receiver does once the reply is posted, so a message that
        arrives as the host stops the bot is delivered again.
    """

    relay_url: str
    token: str
    bot_user_id: str
    client_secret: str
    alias: str = "sample_cookout"
    discord_api: str = "https://discord.com/api/v10"
    data_dir: str = ".data"
    dst: str | None = None
    web_url: str | None = None
    delivery_protocol: int = 1

    @property
    def receiver_path(self) -> str:
        """
        Where the relay's websocket connects, as in the tutorial.
        """
        return f"/dcc/v1/{self.alias}"


class CookoutBot:
    """
    The bot: answers the messages the relay delivers.

    :param http: treq client for the relay and Discord; default: treq's own.
    :param reactor: for the receiver's timers; default: the global one.
    """

    _log = Logger()

    def __init__(
        self,
        config: CookoutConfig,
        *,
        http: HTTPClient | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        self.config = config
        self.assignments = Assignments(config.data_dir)
        self.discord = DiscordREST(config.discord_api, config.token, http)
        self._http = http
        self._reactor = reactor

    def handle_dispatch(self, payload: bytes) -> Deferred[None]:
        """
        Answer one delivered gateway payload; fires once the reply is
        posted (or failed: that is logged, and the change the message
        asked for stays made).
        """
        try:
            dispatch = json.loads(payload)
            message = dispatch["d"]
            if dispatch.get("t") != "MESSAGE_CREATE" or message["author"].get("bot"):
                # the criteria keep these away; a changed registration might not
                return succeed(None)
            channel_id = message["channel_id"]
            content = message.get("content", "")
            author_id = message["author"]["id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            self._log.warn("Ignoring a dispatch that is not a message")
            return succeed(None)
        answer = reply_to(content, author_id, self.assignments, self.config.web_url)
        posted = self.discord.create_message(channel_id, answer)

        def done(_: object) -> None:
            self._log.info("Replied in channel {channel}", channel=channel_id)

        def failed(failure: Failure) -> None:
            self._log.failure("Could not reply in channel {channel}", failure, channel=channel_id)

        return posted.addCallbacks(done, failed)

    def resource(self) -> Resource:
        """
        ``/``: the covered-items page; ``/dcc/v1/{alias}``: the relay's
        websocket endpoint.
        """
        root = Resource()
        root.putChild(b"", CoveredPage(self.assignments))
        parent = root
        *parents, leaf = self.config.receiver_path.strip("/").split("/")
        for name in parents:
            child = Resource()
            parent.putChild(name.encode("ascii"), child)
            parent = child
        parent.putChild(
            leaf.encode("ascii"),
            receiver_resource(self.config.client_secret, self.handle_dispatch, self._reactor),
        )
        return root

    def register(self, dst: str) -> Deferred[dict[str, Any]]:
        """
        Tell the relay where to deliver and what the bot wants.
        """
        config = self.config
        return register(
            config.relay_url,
            config.alias,
            token=config.token,
            intents=INTENTS,
            criteria=cookout_criteria(config.bot_user_id),
            dst=dst,
            client_secret=config.client_secret,
            delivery_protocol=config.delivery_protocol,
            http=self._http,
        )

    async def start(self, reactor: Any, listen: str) -> tuple[IListeningPort, dict[str, Any]]:
        """
        Listen on ``listen`` (a Twisted endpoint description), then
        register.

        :return: the listening port and the relay's status of the bot.
        :raise dccrelay.client.RegistrationError: if the relay refuses.
        """
        port: IListeningPort = await serverFromString(reactor, listen).listen(
            Site(self.resource())
        )
        dst = self.config.dst or self.local_dst(port)
        try:
            status = await self.register(dst)
        except BaseException:
            await maybeDeferred(port.stopListening)
            raise
        self._log.info("Registered {alias} with the relay", alias=self.config.alias)
        return port, status

    def local_dst(self, port: IListeningPort) -> str:
        """
        The websocket URL of ``port`` as seen from this host.
        """
        return f"ws://{_host_port(port)}{self.config.receiver_path}"

    def local_page_url(self, port: IListeningPort) -> str:
        """
        The covered-items page on ``port`` as seen from this host.
        """
        return f"http://{_host_port(port)}/"


def _host_port(port: IListeningPort) -> str:
    address: Any = port.getHost()
    host = "127.0.0.1" if address.host in ("0.0.0.0", "") else address.host
    return f"{host}:{address.port}"
