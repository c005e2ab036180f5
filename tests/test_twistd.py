"""
``twistd dcc`` as an operator runs it: a separate process, started, sent
SIGTERM, started again, and sent SIGKILL, against the Discord simulator and
a real bot receiver on loopback.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dccrelay.testing.codes import MESSAGE_CONTENT
from tests.harness import LOOPBACK, SECRET, BotReceiver, next_item, tls_simulator, wait_for
from tests.twistd_process import TwistdProcess, put_relay, run_relay, run_twistd, serving

TOKEN = "MjIyMjIyMjIyMjIyMjIyMjIy.Gg1234.twistd-token"


class TwistdTests(TestCase):
    """
    The installed ``twistd dcc`` command works as the README says.
    """

    timeout = 90

    def spawn(self, data_dir: str, api_url: str) -> TwistdProcess:
        return run_relay(self, api_url, "--data-dir", data_dir)

    async def put(self, port: int, body: dict[str, Any]) -> int:
        return await put_relay(port, body)

    def test_help_lists_options(self) -> Deferred[None]:
        """
        ``twistd dcc --help`` lists every operator option of DESIGN.md.
        """
        return ensureDeferred(self._help())

    async def _help(self) -> None:
        process = run_twistd(self, "dcc", "--help")
        reason = await process.ended
        self.assertIsInstance(reason, ProcessDone, process.output)
        for option in (
            "--listen", "--data-dir", "--discord-api", "--idle-timeout",
            "--queue-limit", "--max-relays", "--allow-private-dst",
        ):
            self.assertIn(option.encode(), process.output)

    def test_bad_option_value(self) -> Deferred[None]:
        """
        A bad option value stops start-up with a message naming the option.
        """
        return ensureDeferred(self._bad_option())

    async def _bad_option(self) -> None:
        process = run_twistd(self, "--nodaemon", "dcc", "--idle-timeout", "soon")
        reason = await process.ended
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertIn(b"--idle-timeout must be a positive number", process.output)

    def test_sigterm_then_restart_resumes(self) -> Deferred[None]:
        """
        A relay process relays a message, stops cleanly on SIGTERM
        keeping the Discord session resumable, and the next process RESUMEs
        it from the store and delivers what was sent in between.  Then
        SIGKILL, and the next one resumes too.
        """
        return ensureDeferred(self._restart())

    async def registered_bot(self) -> tuple[Any, Any, BotReceiver, str, TwistdProcess]:
        """
        The simulator with one bot, its receiver, and a relay process that
        has it registered: ``(sim, bot, receiver, data_dir, relay)``.
        """
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        bot = sim.add_bot(token=TOKEN, user_id="222", privileged_intents=MESSAGE_CONTENT)
        receiver = BotReceiver()
        await receiver.start()
        self.addCleanup(receiver.stop)
        data_dir = self.mktemp()
        relay = self.spawn(data_dir, sim.api_url)
        port = await serving(relay)
        body = {
            "token": TOKEN,
            "intents": 4608 | MESSAGE_CONTENT,
            "criteria": {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}},
            "dst": receiver.url,
            "clientSecret": SECRET,
        }
        self.assertEqual(await self.put(port, body), 201)
        return sim, bot, receiver, data_dir, relay

    async def _restart(self) -> None:
        sim, bot, receiver, data_dir, first = await self.registered_bot()
        await bot.wait_for_ready()
        hello = bot.message("cookout hello")
        self.assertEqual(await next_item(receiver.queue), hello)

        first.transport.signalProcess("TERM")
        reason = await first.ended
        # twistd shuts down cleanly, then ends itself with the signal it got,
        # as systemd expects.
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertEqual(reason.signal, signal.SIGTERM)
        self.assertIn(b"Server Shut Down", first.output)
        self.assertNotIn(b"Traceback", first.output)
        self.assertNotIn(TOKEN.encode(), first.output)
        self.assertNotIn(SECRET.encode(), first.output)
        await bot.wait_for_disconnect()
        while_down = bot.message("cookout while down")

        second = self.spawn(data_dir, sim.api_url)
        self.assertEqual(await next_item(receiver.queue, timeout=30), while_down)
        self.assertEqual((bot.identifies, bot.resumes), (1, 1))

        second.transport.signalProcess("KILL")
        await second.ended
        await bot.wait_for_disconnect()
        after_kill = bot.message("cookout after kill")
        third = self.spawn(data_dir, sim.api_url)
        # After SIGKILL the stored seq may be up to one checkpoint interval
        # old, so Discord may replay a dispatch the bot already has: at
        # least once, never lost.
        replayed = []
        while (frame := await next_item(receiver.queue, timeout=30)) != after_kill:
            replayed.append(frame)
        self.assertLessEqual(set(replayed), {while_down})
        self.assertEqual((bot.identifies, bot.resumes), (1, 2))
        third.transport.signalProcess("TERM")
        await third.ended

    def test_sigkill_while_bot_asleep_loses_nothing(self) -> None:
        """
        Dispatches queued for a bot that is down are not lost when the
        relay is killed with SIGKILL: the stored resume point stays before
        them, so Discord replays them to the next relay process.
        """
        return ensureDeferred(self._kill_while_queued())

    async def _kill_while_queued(self) -> None:
        sim, bot, receiver, data_dir, first = await self.registered_bot()
        await bot.wait_for_ready()
        greeting = bot.message("cookout hello")
        self.assertEqual(await next_item(receiver.queue), greeting)
        port = receiver.port_number
        await receiver.stop()
        queued = [bot.message(f"cookout queued {i}") for i in range(3)]
        # Past a checkpoint (every 2 s), so the kill finds the queue saved
        # as a resume point rather than luckily old.
        await deferLater(reactor, 3.0, lambda: None)
        first.transport.signalProcess("KILL")
        await first.ended
        await bot.wait_for_disconnect()
        await receiver.start(port)
        self.spawn(data_dir, sim.api_url)
        got = [await next_item(receiver.queue, timeout=30) for _ in queued]
        self.assertEqual(got, queued)
        self.assertEqual((bot.identifies, bot.resumes), (1, 1))
