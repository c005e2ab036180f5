"""
The cookout example bot end to end on loopback: the Discord simulator, the
real relay service and the bot, over real websockets and HTTP; and its
``demo`` command as a user runs it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

import dccrelay
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.web.status_json import public_json
from examples.cookout.bot import CookoutBot, CookoutConfig
from tests.harness import LOOPBACK, SECRET, RelayProcess, http, tls_simulator, wait_for
from tests.twistd_process import CollectedOutput

TOKEN = "MTExMTExMTExMTExMTExMTEx.Gg1234.cookout-e2e"
BOT_ID = "111111111111111111"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))


class CookoutEndToEndTests(TestCase):
    """
    A simulated person's message reaches the cookout bot through the relay,
    and the bot's reply reaches the simulated Discord.
    """

    timeout = 60

    async def start_bot(self, data_dir: str, port: int = 0) -> tuple[CookoutBot, IListeningPort]:
        """
        The bot on loopback, registered with the relay, its connections
        tracked so that the test can end them.
        """
        bot = CookoutBot(
            CookoutConfig(
                relay_url=self.relay.base,
                token=TOKEN,
                bot_user_id=BOT_ID,
                client_secret=SECRET,
                discord_api=self.sim.api_url,
                data_dir=data_dir,
            ),
            http=http,
            reactor=reactor,
        )
        tracker = WrappingFactory(Site(bot.resource()))
        listening = await serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(tracker)
        self.addCleanup(self.stop_bot, listening, tracker)
        await bot.register(bot.local_dst(listening))
        return bot, listening

    async def stop_bot(self, port: IListeningPort, tracker: WrappingFactory) -> None:
        await maybeDeferred(port.stopListening)
        for protocol in list(tracker.protocols):
            if protocol.transport is not None:
                protocol.transport.abortConnection()
        await wait_for(lambda: not tracker.protocols, what="the bot's connections to close")

    async def start_everything(self) -> None:
        self.sim = tls_simulator()
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.simulated = self.sim.add_bot(
            token=TOKEN, user_id=BOT_ID, privileged_intents=MESSAGE_CONTENT
        )
        self.relay = await RelayProcess.started(self, self.mktemp(), self.sim.api_url)

    async def reply(self, content: str, count: int) -> str:
        """
        Send ``content`` as a person and wait for the bot's reply, the
        ``count``-th message the simulator has received.
        """
        self.simulated.message(content)
        await wait_for(lambda: len(self.sim.messages) >= count, what=f"a reply to {content!r}")
        token, channel, body = self.sim.messages[count - 1]
        self.assertEqual((token, channel), (TOKEN, "3333"))
        return str(body["content"])

    def test_bring_buns(self) -> Deferred[None]:
        """
        "cookout bring buns" gets the bot's thanks at the simulator's
        ``POST /channels/3333/messages``; chatter and other bots get
        nothing.  After the bot restarts (same address, same data
        directory) and registers again, which changes nothing on the
        relay, it still knows who brings the buns.
        """
        return ensureDeferred(self._bring_buns())

    async def _bring_buns(self) -> None:
        await self.start_everything()
        data_dir = self.mktemp()
        _, port = await self.start_bot(data_dir)
        await self.simulated.wait_for_ready()
        self.simulated.message("just chatting")
        self.simulated.message("cookout bring buns", author_bot=True)
        self.assertEqual(
            await self.reply("cookout bring buns", 1), "Thanks, you're bringing buns! :smile:"
        )

        port_number = port.getHost().port  # type: ignore[attr-defined]
        await self.stop_bot(port, self.tracker_of(port))
        await self.start_bot(data_dir, port_number)
        self.assertEqual(
            await self.reply("cookout who's bringing buns", 2), "_You're_ bringing buns! :laughing:"
        )
        self.assertEqual(len(self.sim.messages), 2)
        relay = self.relay.relay("sample_cookout")
        self.assertEqual(public_json(relay.snapshot())["counters"]["matched"], 2)
        self.assertEqual(self.simulated.identifies, 1)

    def tracker_of(self, port: IListeningPort) -> WrappingFactory:
        return port.factory  # type: ignore[attr-defined, no-any-return]


class DemoTests(TestCase):
    """
    ``python -m examples.cookout.demo`` as the README shows it.
    """

    timeout = 60

    def test_demo(self) -> Deferred[None]:
        """
        The demo starts the simulator, ``twistd dcc`` and the bot, shows
        the bot's reply to "cookout bring buns" arriving at the simulator,
        and ends by itself, successfully.
        """
        return ensureDeferred(self._demo())

    async def _demo(self) -> None:
        process = CollectedOutput()
        env = dict(os.environ, PYTHONPATH=REPO)
        reactor.spawnProcess(  # type: ignore[attr-defined]
            process, sys.executable, [sys.executable, "-m", "examples.cookout.demo"],
            env=env, path=REPO,
        )

        def kill_if_running() -> Any:
            if not process.ended.called:
                process.transport.signalProcess("KILL")
                return process.ended

        self.addCleanup(kill_if_running)
        reason = await process.ended
        self.assertIsInstance(reason, ProcessDone, process.output.decode("utf-8", "replace"))
        output = process.output.decode("utf-8")
        self.assertIn('a person writes in channel 3333: "cookout bring buns"', output)
        self.assertIn(
            'the simulator received POST /channels/3333/messages: '
            '"Thanks, you\'re bringing buns! :smile:"',
            output,
        )
        self.assertIn("[x] buns", output)
        self.assertIn("done: everything stopped", output)
