"""
The relay never logs a token, a secret (plain or as the Authorization
header's base64), or what people wrote: a whole loopback run (register,
deliver, rotate the secret, fail to deliver with the wrong secret, a wrong
Authorization, delete) with every log event of the process captured, at
Autobahn's most verbose level, and each event formatted every way the relay
can write it.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import txaio
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import LogLevel, eventAsText, globalLogPublisher
from twisted.trial.unittest import TestCase

from dccrelay.ops.logs import format_json, format_text
from dccrelay.testing.codes import MESSAGE_CONTENT
from dccrelay.web.status_json import public_json
from tests.delivery_harness import WebhookBot
from tests.harness import LOOPBACK, BotReceiver, RelayProcess, next_item, tls_simulator, wait_for

TOKEN = "MzMzMzMzMzMzMzMzMzMzMzMz.GgLeak.never-log-this-token-part"
WEBHOOK_TOKEN = "NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0.GgLeak.nor-this-webhook-token"
SECRET = "admin:Zmlyc3Qtc2VjcmV0LXZhbHVl"
NEW_SECRET = "admin:cm90YXRlZC1zZWNyZXQtdmFsdWU="
CONTENT = "cookout secret recipe: smoked paprika"
SECOND_CONTENT = "cookout second private message"


def forbidden() -> dict[str, str]:
    """
    What must appear in no log line, by what it is.
    """
    found = {
        "token": TOKEN,
        "token's secret part": TOKEN.split(".")[2],
        "webhook bot's token": WEBHOOK_TOKEN,
        "webhook bot's token's secret part": WEBHOOK_TOKEN.split(".")[2],
        "message content": CONTENT,
        "second message content": SECOND_CONTENT,
    }
    for name, secret in (("secret", SECRET), ("new secret", NEW_SECRET)):
        found[name] = secret
        found[f"{name}'s password"] = secret.split(":", 1)[1]
        found[f"{name} as Basic credentials"] = b64encode(secret.encode()).decode()
    return found


class LogSecretsTests(TestCase):
    """
    Whatever happens, the log holds no token, secret or message content.
    """

    timeout = 60

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        # Autobahn's own loggers at their most verbose (handshakes, headers,
        # frames): a leak there must show here.
        txaio.set_global_log_level("trace")
        self.addCleanup(txaio.set_global_log_level, "info")

    def test_nothing_secret_logged(self) -> Deferred[None]:
        """
        No log event of a full run, formatted as text, as JSON, or by
        twisted.logger's own text formatter, holds a token, secret, the
        secret's base64 form or a message's content.
        """
        return ensureDeferred(self._whole_run())

    async def _whole_run(self) -> None:
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        bot = sim.add_bot(
            token=TOKEN, user_id="333333333333333333", privileged_intents=MESSAGE_CONTENT
        )
        receiver = BotReceiver(SECRET)
        await receiver.start()
        self.addCleanup(receiver.stop)
        hook_bot = sim.add_bot(
            token=WEBHOOK_TOKEN, user_id="444444444444444444", privileged_intents=MESSAGE_CONTENT
        )
        webhook = WebhookBot(SECRET)
        await webhook.start()
        self.addCleanup(webhook.stop)
        relay = await RelayProcess.started(self, self.mktemp(), sim.api_url)
        body = {
            "token": TOKEN,
            "intents": 4608 | MESSAGE_CONTENT,
            "criteria": {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout"}},
            "dst": receiver.url,
            "clientSecret": SECRET,
        }

        hook_body = dict(body, token=WEBHOOK_TOKEN, dst=webhook.url)

        code, answer = await relay.register(body)
        self.assertEqual(code, 201, answer)
        code, answer = await relay.register(hook_body, alias="hooked")
        self.assertEqual(code, 201, answer)
        await bot.wait_for_ready()
        await hook_bot.wait_for_ready()
        sent = bot.message(CONTENT)
        hook_sent = hook_bot.message(CONTENT)
        self.assertEqual(await next_item(receiver.queue), sent)
        await wait_for(lambda: hook_sent in webhook.wire, what="the webhook delivery")

        # A wrong Authorization is refused (and must not be echoed).
        code, _ = await relay.request("GET", "/relays/cookout", secret=NEW_SECRET)
        self.assertEqual(code, 401)

        # Rotate the secret: the bot still expects the old one, so the next
        # delivery fails at the handshake.
        for alias, new_body, simulated in (
            ("cookout", body, bot), ("hooked", hook_body, hook_bot)
        ):
            code, answer = await relay.register(
                dict(new_body, clientSecret=NEW_SECRET), alias=alias, secret=SECRET
            )
            self.assertEqual(code, 200, answer)
            simulated.message(SECOND_CONTENT)
            await wait_for(
                lambda: public_json(relay.relay(alias).snapshot())["lastDeliveryError"],
                what=f"a delivery error for {alias}",
            )
        self.assertTrue(webhook.rejected)

        for alias, simulated in (("cookout", bot), ("hooked", hook_bot)):
            code, _ = await relay.request("DELETE", f"/relays/{alias}", secret=NEW_SECRET)
            self.assertEqual(code, 200)
            await simulated.wait_for_disconnect()
        await relay.stop()

        self.assertGreater(relay.manager.delivery_latency.count, 0)
        lines = []
        for event in self.events:
            lines.append(format_text(event) or "")
            lines.append(format_json(event))
            lines.append(eventAsText(event))
        everything = "\n".join(lines)
        # The run was logged, verbosely (so the check below means something).
        self.assertIn("cookout: registered", everything)
        self.assertIn("hooked: deleted", everything)
        self.assertTrue(any(
            e.get("log_level") == LogLevel.debug and "autobahn" in e.get("log_namespace", "")
            for e in self.events
        ))
        leaks = {}
        for name, value in forbidden().items():
            at = everything.find(value)
            if at >= 0:
                leaks[name] = everything[max(0, at - 150):at + len(value) + 50]
        self.assertEqual(leaks, {}, "logged: " + "; ".join(leaks))

