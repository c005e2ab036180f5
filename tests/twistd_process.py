"""
``twistd dcc`` as a separate process, as an operator runs it, for the tests
that need a real process: signals, SIGKILL, several nodes.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import orjson
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

import dccrelay
from tests.harness import LOOPBACK, TEST_CA, http, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


class CollectedOutput(ProcessProtocol):
    """
    A child process whose output (stdout and stderr together) is kept, and
    whose end fires :attr:`ended` with the reason.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[BaseException] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value)

    def text(self) -> str:
        """What it printed so far."""
        return self.output.decode("utf-8", "replace")


class TwistdProcess(CollectedOutput):
    """
    One ``twistd`` process, its output collected.
    """

    @property
    def port(self) -> int | None:
        """
        The HTTP API's port, once the relay logged it.
        """
        found = re.search(rb"Site starting on (\d+)", self.output)
        return int(found.group(1)) if found else None


def run_twistd(case: TestCase, *arguments: str) -> TwistdProcess:
    """
    Start ``twistd <arguments>`` with this checkout's dccrelay and
    ``twisted/plugins`` on the path, however dccrelay was installed; it is
    killed at the end of ``case`` if still running.
    """
    process = TwistdProcess()
    env = dict(
        os.environ,
        PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        # The process trusts the test CA as an operator would a private CA:
        # through OpenSSL's own setting.
        SSL_CERT_FILE=TEST_CA.write_ca(case.mktemp() + ".pem"),
    )
    reactor.spawnProcess(process, TWISTD, [TWISTD, *arguments], env=env)

    def kill_if_running() -> Any:
        if not process.ended.called:
            process.transport.signalProcess("KILL")
            return process.ended
        return None

    case.addCleanup(kill_if_running)
    return process


def run_relay(case: TestCase, discord_api: str, *options: str) -> TwistdProcess:
    """
    ``twistd --nodaemon --pidfile= dcc`` on loopback against ``discord_api``,
    allowing private bot addresses, with more ``options`` (``--data-dir``...).
    """
    return run_twistd(
        case, "--nodaemon", "--pidfile=", "dcc", "--listen", LOOPBACK,
        "--discord-api", discord_api, "--allow-private-dst", *options,
    )


async def put_relay(port: int, body: dict[str, Any], alias: str = "cookout") -> int:
    """
    ``PUT /relays/{alias}`` on the relay at ``port``; the status code.
    """
    response = await http.put(
        f"http://127.0.0.1:{port}/relays/{alias}",
        data=orjson.dumps(body),
        headers={"Content-Type": ["application/json"]},
    )
    await response.content()
    return int(response.code)


async def serving(process: TwistdProcess, timeout: float = 30.0) -> int:
    """
    Wait until the relay ``process`` has loaded its registrations
    (``/healthz`` 200): before, it refuses to register bots (503).

    :return: its HTTP port.
    """
    port: int = await wait_for(lambda: process.port, timeout, "the relay to listen")
    for _ in range(int(timeout / 0.05)):
        response = await http.get(f"http://127.0.0.1:{port}/healthz")
        await response.content()
        if response.code == 200:
            return port
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"the relay did not load its store in {timeout} s:\n{process.text()}")
