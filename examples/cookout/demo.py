"""
``python -m examples.cookout.demo``: the whole path on loopback, in about a
few seconds, with no Discord account.

It starts the Discord simulator, a relay (``twistd dcc`` in a subprocess,
pointed at the simulator) and the cookout bot; the bot registers; a
simulated person writes "cookout bring buns"; the relay delivers it to the
bot, whose reply arrives at the simulator's ``POST
/channels/{id}/messages``.  Each step is printed; everything is stopped and
its temporary files removed at the end, and the demo gives up (exit status
1) if it takes more than :data:`DEADLINE` seconds.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater, react
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

import dccrelay
from dccrelay.client import RegistrationError
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.testing.simulator import DiscordSimulator
from examples.cookout.bot import CookoutBot, CookoutConfig

#: seconds the whole demo may take before it gives up
DEADLINE = 30.0

LOOPBACK = "tcp:0:interface=127.0.0.1"
TOKEN = "MTExMTExMTExMTExMTExMTEx.Gg1234.cookout-demo"
BOT_USER_ID = "111111111111111111"
CHANNEL_ID = "3333"
MESSAGE = "cookout bring buns"


class DemoFailed(Exception):
    """
    A step did not happen in time; the message says which.
    """


class TwistdRelay(ProcessProtocol):
    """
    ``twistd --nodaemon --pidfile= dcc`` in a subprocess; its log kept for
    when something goes wrong.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)

    @property
    def port(self) -> int | None:
        """
        The HTTP API's port, once twistd has logged it.
        """
        found = re.search(rb"Site starting on (\d+)", self.output)
        return int(found.group(1)) if found else None

    def spawn(self, reactor: Any, data_dir: str, discord_api: str) -> None:
        """
        Start the relay on a free loopback port.
        """
        # The checkout this demo runs from, so twistd finds its dccrelay and
        # twisted/plugins/dcc_plugin.py however dccrelay was installed.
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, env.get("PYTHONPATH")]))
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        if os.path.exists(twistd):
            command = [twistd]
        else:
            command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
        reactor.spawnProcess(
            self,
            command[0],
            command
            + [
                "--nodaemon", "--pidfile=", "dcc",
                "--listen", LOOPBACK,
                "--data-dir", data_dir,
                "--discord-api", discord_api,
                "--allow-private-dst",
            ],
            env=env,
        )

    async def stop(self) -> None:
        """
        SIGTERM, as systemd would, and wait for the process to end.
        """
        if not self.ended.called and self.transport is not None:
            self.transport.signalProcess(signal.SIGTERM)
        await self.ended


async def wait_until(
    reactor: Any, condition: Callable[[], Any], deadline: float, what: str
) -> Any:
    """
    Poll ``condition`` until it is true or the demo's ``deadline`` (a
    ``time.monotonic()`` value) passes.
    """
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out waiting for {what}")
        await deferLater(reactor, 0.05, lambda: None)


async def relay_loaded(reactor: Any, http: HTTPClient, relay_url: str, deadline: float) -> None:
    """
    Wait until the relay has loaded its store (``/healthz`` 200): it
    refuses registrations before.
    """
    while True:
        response = await http.get(relay_url + "/healthz")
        await response.content()
        if response.code == 200:
            return
        if time.monotonic() > deadline:
            raise DemoFailed("timed out waiting for the relay to load its store")
        await deferLater(reactor, 0.05, lambda: None)


async def demo(reactor: Any, out: IO[str] = sys.stdout) -> None:
    """
    Run the demo, printing each step to ``out``.

    :raise DemoFailed: if a step does not happen before the deadline.
    """
    deadline = time.monotonic() + DEADLINE

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    workdir = tempfile.mkdtemp(prefix="cookout-demo-")
    # No persistent connections: nothing to clean up when the demo ends.
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    sim = DiscordSimulator(reactor)
    relay = TwistdRelay()
    bot_port: IListeningPort | None = None
    try:
        await sim.listen(LOOPBACK)
        # the cookout bot reads message content: switched on "in the portal"
        simulated_bot = sim.add_bot(
            TOKEN, BOT_USER_ID, username="cookout", privileged_intents=MESSAGE_CONTENT
        )
        say(f"1. Discord simulator at {sim.api_url}")

        relay.spawn(reactor, os.path.join(workdir, "relay"), sim.api_url)
        relay_port = await wait_until(reactor, lambda: relay.port, deadline, "twistd dcc to listen")
        relay_url = f"http://127.0.0.1:{relay_port}"
        await relay_loaded(reactor, http, relay_url, deadline)
        say(f"2. relay (twistd dcc) at {relay_url}")

        config = CookoutConfig(
            relay_url=relay_url,
            token=TOKEN,
            bot_user_id=BOT_USER_ID,
            client_secret="admin:" + secrets.token_urlsafe(16),
            discord_api=sim.api_url,
            data_dir=os.path.join(workdir, "cookout-data"),
        )
        bot = CookoutBot(config, http=http, reactor=reactor)
        bot_port, status = await bot.start(reactor, LOOPBACK)
        say(f"3. cookout bot at {bot.local_dst(bot_port)}, registered as {config.alias}")

        await wait_until(
            reactor,
            lambda: any(c.ready for c in simulated_bot.connections),
            deadline,
            "the relay's gateway session to be ready",
        )
        say("4. the relay holds the bot's gateway session (READY)")

        simulated_bot.message(MESSAGE, channel_id=CHANNEL_ID)
        say(f'5. a person writes in channel {CHANNEL_ID}: "{MESSAGE}"')

        _, channel, body = await wait_until(
            reactor, lambda: sim.messages[0] if sim.messages else None, deadline,
            "the bot's reply at the simulator",
        )
        say(f'6. the simulator received POST /channels/{channel}/messages: "{body["content"]}"')

        page = await (await http.get(bot.local_page_url(bot_port))).text()
        say("7. the bot's page now says:")
        for line in page.splitlines():
            say("     " + line)
    except BaseException:
        if relay.output:
            say("--- twistd dcc log ---")
            say(relay.output.decode("utf-8", "replace").rstrip())
        raise
    finally:
        if bot_port is not None:
            await maybeDeferred(bot_port.stopListening)
        await relay.stop()
        await sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say("done: everything stopped")


async def main(reactor: Any) -> None:
    """
    The command: the demo, bounded by :data:`DEADLINE`.
    """
    running = Deferred.fromCoroutine(demo(reactor))
    # A last resort: a step stuck where wait_until does not poll.
    running.addTimeout(DEADLINE + 10, reactor)
    try:
        await running
    except DemoFailed as e:
        raise SystemExit(f"demo failed: {e}")
    except RegistrationError as e:
        raise SystemExit(f"demo failed: the relay refused the registration: {e}")


if __name__ == "__main__":
    react(main)
