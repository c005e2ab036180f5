"""
Tests for :mod:`dccrelay.delivery.webhook`: signed webhook batches from the
durable outbox, through ``StubTreq`` against a bot resource, on a
``MemoryReactorClock`` set to the real time (the Standard Webhooks reference
verifier checks timestamps against the wall clock).

Signatures are checked with the specification's reference library,
``standardwebhooks``, never with our own code.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime
from random import Random
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface.verify import verifyObject

from dccrelay.delivery import IDurableChannel
from dccrelay.delivery.outbox import OutboxWriter
from dccrelay.delivery.webhook import (
    RETRY_SCHEDULE,
    TIMEOUT,
    WebhookDelivery,
    default_retry_policy,
    sign,
)
from tests.channel_builders import status_of, webhook
from tests.memory_store import MemoryDatabase, MemoryRelayStore

SECRET = "admin:c2VjcmV0LXNhdWNl"
DST = "https://bot.example/dcc/hook"
PAYLOADS = [
    b'{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"!bring chips"}}',
    # odd spacing and non-ASCII: must arrive exactly as given, not re-encoded
    b'{"t": "MESSAGE_CREATE",  "s":2,"op":0,"d":{"content":"h\xc3\xa9 \\u00e9 \xf0\x9f\x8c\xad"}}',
    b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"content":"]}"}}',
]


def linear_policy(attempt: int) -> float:
    return 10.0 * attempt


class BotHook(Resource):
    """
    The bot's webhook endpoint: records each request and answers from a
    script of ``(code, headers)``, then 204; ``None`` in the script leaves
    the request hanging.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[bytes, bytes]] | None] = []
        self.hanging: list[Request] = []

    def render_POST(self, request: Request) -> bytes | int:
        headers = {
            name.decode().lower(): values[0].decode()
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        assert request.content is not None
        self.requests.append((request.uri.decode(), headers, request.content.read()))
        answer = self.script.pop(0) if self.script else (204, {})
        if answer is None:
            self.hanging.append(request)
            return NOT_DONE_YET
        code, extra = answer
        request.setResponseCode(code)
        for name, value in extra.items():
            request.setHeader(name, value)
        return b"ok"


class WebhookTests(SynchronousTestCase):
    """
    WebhookDelivery against a bot resource through StubTreq.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(time.time())
        self.database = MemoryDatabase()
        self.store = MemoryRelayStore(self.database)
        self.successResultOf(self.store.open())
        self.successResultOf(self.store.save_relay("cookout", {}))
        self.writer = OutboxWriter(self.store, self.clock)
        self.bot = BotHook()
        self.http = StubTreq(self.bot)
        self.gone: list[str] = []

    def channel(self, **kwargs: Any) -> WebhookDelivery:
        options: dict[str, Any] = {
            "alias": "cookout",
            "dst": DST,
            "client_secret": SECRET,
            "store": self.store,
            "writer": self.writer,
            "http": self.http,
            "retry_policy": linear_policy,
            "on_gone": self.gone.append,
        }
        options.update(kwargs)
        return webhook(self.clock, **options)

    def settle(self) -> None:
        for _ in range(5):
            self.clock.advance(0)
            self.http.flush()

    def verify(self, headers: dict[str, str], body: bytes, secret: str = SECRET) -> Any:
        """
        Check a request as a bot would, with the reference verifier.
        """
        return Webhook(secret.encode("utf-8")).verify(body, headers)

    def stored_ids(self) -> list[int]:
        return [e.id for e in self.successResultOf(self.store.outbox_load("cookout", 0, 1000))]

    def test_interface(self) -> None:
        """
        WebhookDelivery provides IDurableChannel and starts idle.
        """
        channel = self.channel()
        self.assertTrue(verifyObject(IDurableChannel, channel))
        self.assertEqual(
            status_of(channel),
            {"state": "idle", "queued": 0, "dropped": 0, "delivered": 0, "lastError": None},
        )

    def test_signed_batch(self) -> None:
        """
        Dispatches stored together go in one POST whose body holds each
        payload byte for byte, with its id, signed so that the Standard
        Webhooks reference verifier accepts it with the secret's bytes.
        """
        channel = self.channel()
        for payload in PAYLOADS:
            channel.deliver(payload)
        self.settle()
        [(uri, headers, body)] = self.bot.requests
        self.assertEqual(uri, "/dcc/hook")
        ids = [e for e in orjson.loads(body)["ids"]]
        self.assertEqual(
            body,
            b'{"type":"dispatches","dispatches":['
            + b",".join(PAYLOADS)
            + b'],"ids":[%d,%d,%d]}' % tuple(ids),
        )
        batch = self.verify(headers, body)
        self.assertEqual(batch["dispatches"], [orjson.loads(p) for p in PAYLOADS])
        self.assertEqual(headers["webhook-id"], f"dcc-{ids[0]}-{ids[2]}")
        self.assertEqual(headers["webhook-timestamp"], str(int(self.clock.seconds())))
        self.assertEqual(headers["content-type"], "application/json")
        self.assertTrue(headers["user-agent"].startswith("dccrelay/"))
        self.assertNotIn("authorization", headers)
        self.assertEqual(
            status_of(channel),
            {"state": "connected", "queued": 0, "dropped": 0, "delivered": 3, "lastError": None},
        )
        self.assertEqual(self.stored_ids(), [])

    def test_on_delivered(self) -> None:
        """
        ``on_delivered`` gets a batch's payloads once the bot answered it
        2xx, not before.
        """
        taken: list[list[bytes]] = []
        self.bot.script = [(500, {})]
        channel = self.channel(on_delivered=taken.append)
        for payload in PAYLOADS:
            channel.deliver(payload)
        self.settle()
        self.assertEqual(taken, [])
        self.clock.advance(linear_policy(1))
        self.settle()
        self.assertEqual(taken, [PAYLOADS])

    def test_annotate_on_retry(self) -> None:
        """
        A batch retried after ``annotate`` started changing one of its
        payloads goes with the changed payload, under the same webhook-id,
        correctly signed.
        """
        changed: list[bytes] = []
        self.bot.script = [(500, {})]
        channel = self.channel(
            annotate=lambda p: b'{"dcc":1,' + p[1:] if p in changed else p
        )
        channel.deliver(PAYLOADS[0])
        self.settle()
        changed.append(PAYLOADS[0])
        self.clock.advance(linear_policy(1))
        self.settle()
        (_, first, body1), (_, second, body2) = self.bot.requests
        self.assertEqual(first["webhook-id"], second["webhook-id"])
        self.assertIn(PAYLOADS[0], body1)
        self.assertIn(b'{"dcc":1,' + PAYLOADS[0][1:], body2)
        self.verify(second, body2)

    def test_signature_is_the_reference_one(self) -> None:
        """
        Our signature is what the reference library computes for the same
        id, time and body.
        """
        when = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
        body = b'{"type":"dispatches","dispatches":[' + PAYLOADS[1] + b'],"ids":[7]}'
        expected = Webhook(SECRET.encode()).sign("dcc-7-7", when, body.decode("utf-8"))
        self.assertEqual(sign(SECRET, "dcc-7-7", int(when.timestamp()), body), expected)

    def test_bad_signature_rejected(self) -> None:
        """
        The reference verifier refuses a batch checked with another secret,
        and one whose body was changed.
        """
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        [(_, headers, body)] = self.bot.requests
        self.assertRaises(
            WebhookVerificationError, self.verify, headers, body, "admin:another-secret"
        )
        self.assertRaises(
            WebhookVerificationError, self.verify, headers, body.replace(b"chips", b"chaps")
        )

    def test_one_batch_in_flight(self) -> None:
        """
        While a batch is in flight nothing else is sent; what came meanwhile
        goes in the next batch, in order.
        """
        self.bot.script = [None]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        channel.deliver(PAYLOADS[1])
        channel.deliver(PAYLOADS[2])
        self.settle()
        self.assertEqual(len(self.bot.requests), 1)
        request = self.bot.hanging.pop()
        request.setResponseCode(200)
        request.finish()
        self.settle()
        self.assertEqual(len(self.bot.requests), 2)
        bodies = [orjson.loads(body)["dispatches"] for _, _, body in self.bot.requests]
        self.assertEqual(bodies, [[orjson.loads(PAYLOADS[0])], [orjson.loads(p) for p in PAYLOADS[1:]]])
        self.assertEqual(status_of(channel)["delivered"], 3)

    def test_retries_same_batch(self) -> None:
        """
        A 500 is retried after retry_policy(attempt) seconds with the same
        webhook-id and body and a fresh timestamp, until a 2xx; dispatches
        that came meanwhile follow, in order.
        """
        self.bot.script = [(500, {}), (500, {})]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.assertEqual(status_of(channel)["lastError"], "the bot answered HTTP 500")
        self.assertEqual(status_of(channel)["state"], "waiting to retry")
        channel.deliver(PAYLOADS[1])
        self.settle()
        self.clock.advance(9.9)
        self.settle()
        self.assertEqual(len(self.bot.requests), 1)
        self.clock.advance(0.1)
        self.settle()
        self.assertEqual(len(self.bot.requests), 2)
        self.clock.advance(20)
        self.settle()
        self.assertEqual(len(self.bot.requests), 4)
        first, second, third, fourth = self.bot.requests
        self.assertEqual(first[1]["webhook-id"], third[1]["webhook-id"])
        self.assertEqual(first[2], third[2])
        self.assertNotEqual(first[1]["webhook-timestamp"], third[1]["webhook-timestamp"])
        self.verify(third[1], third[2])
        self.assertEqual(
            orjson.loads(fourth[2])["dispatches"], [orjson.loads(PAYLOADS[1])]
        )
        self.assertIsNone(status_of(channel)["lastError"])
        self.assertEqual(status_of(channel)["delivered"], 2)

    def test_retry_after_seconds(self) -> None:
        """
        A 429 with Retry-After in seconds is retried after that long, not
        after the policy's delay.
        """
        self.bot.script = [(429, {b"Retry-After": b"3"})]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.clock.advance(2.9)
        self.settle()
        self.assertEqual(len(self.bot.requests), 1)
        self.clock.advance(0.1)
        self.settle()
        self.assertEqual(len(self.bot.requests), 2)

    def test_retry_after_date(self) -> None:
        """
        A 503 with Retry-After as an HTTP date waits until then.
        """
        later = datetime.fromtimestamp(int(self.clock.seconds()) + 30, tz=timezone.utc)
        self.bot.script = [(503, {b"Retry-After": format_datetime(later, usegmt=True).encode()})]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.clock.advance(25)
        self.settle()
        self.assertEqual(len(self.bot.requests), 1)
        self.clock.advance(6)
        self.settle()
        self.assertEqual(len(self.bot.requests), 2)

    def test_redirect_not_followed(self) -> None:
        """
        A redirect is a failure, retried at dst; its Location is never
        asked.
        """
        self.bot.script = [(302, {b"Location": b"https://bot.example/elsewhere"})]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.assertEqual([uri for uri, _, _ in self.bot.requests], ["/dcc/hook"])
        self.assertEqual(status_of(channel)["lastError"], "the bot answered HTTP 302")
        self.clock.advance(10)
        self.settle()
        self.assertEqual([uri for uri, _, _ in self.bot.requests], ["/dcc/hook"] * 2)

    def test_timeout(self) -> None:
        """
        A bot that does not answer within 15 s counts as a failure and is
        retried with the same batch.
        """
        self.bot.script = [None]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.clock.advance(TIMEOUT - 0.1)
        self.settle()
        self.assertEqual(status_of(channel)["state"], "connecting")
        self.clock.advance(0.1)
        self.settle()
        self.assertEqual(status_of(channel)["lastError"], "the bot did not answer within 15 s")
        self.clock.advance(10)
        self.settle()
        self.assertEqual(len(self.bot.requests), 2)
        self.assertEqual(self.bot.requests[0][1]["webhook-id"], self.bot.requests[1][1]["webhook-id"])
        self.assertEqual(status_of(channel)["delivered"], 1)

    def test_gone(self) -> None:
        """
        A 410 stops delivery and reports a reason through on_gone; the
        dispatches stay in the outbox.
        """
        self.bot.script = [(410, {})]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.assertEqual(len(self.gone), 1)
        self.assertIn("410", self.gone[0])
        status = status_of(channel)
        self.assertEqual(status["state"], "stopped")
        self.assertEqual(status["lastError"], "the bot answered HTTP 410 Gone")
        channel.deliver(PAYLOADS[1])
        self.clock.advance(1000)
        self.settle()
        self.assertEqual(len(self.bot.requests), 1)
        self.assertEqual(len(self.stored_ids()), 2)

    def test_batch_limits(self) -> None:
        """
        A batch holds at most batch_limit dispatches and stops growing past
        batch_bytes; all go, in order.
        """
        payloads = [b'{"n":%d}' % i for i in range(25)]
        channel = self.channel(batch_limit=10, batch_bytes=50)
        for payload in payloads:
            channel.deliver(payload)
        self.settle()
        sizes = [len(orjson.loads(body)["ids"]) for _, _, body in self.bot.requests]
        self.assertTrue(all(size <= 10 for size in sizes), sizes)
        seen = [d["n"] for _, _, body in self.bot.requests for d in orjson.loads(body)["dispatches"]]
        self.assertEqual(seen, list(range(25)))
        big = self.channel(batch_bytes=5)
        for payload in payloads[:3]:
            big.deliver(payload)
        self.settle()
        self.assertEqual([len(orjson.loads(b)["ids"]) for _, _, b in self.bot.requests[-3:]], [1, 1, 1])

    def test_connection_refused(self) -> None:
        """
        A bot that cannot be reached is described in lastError and retried.
        """
        calls: list[bytes] = []

        class Refusing:
            def request(self, method: str, url: bytes, **kwargs: Any) -> Deferred[Any]:
                calls.append(url)
                return fail(ConnectionRefusedError())

        channel = self.channel(http=Refusing())
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.assertEqual(status_of(channel)["lastError"], "connection refused")
        self.clock.advance(10)
        self.settle()
        self.assertEqual(len(calls), 2)

    def test_relay_restart(self) -> None:
        """
        A new channel over the same store sends the batch that was not
        acknowledged, with the same ids and webhook-id.
        """
        self.bot.script = [None]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.successResultOf(channel.stop())
        self.channel()
        self.settle()
        first, second = self.bot.requests
        self.assertEqual(first[1]["webhook-id"], second[1]["webhook-id"])
        self.assertEqual(first[2], second[2])

    def test_relay_restart_same_batch(self) -> None:
        """
        After a restart the batch that was in flight is sent again whole,
        under its webhook-id, even though more entries wait behind it now
        (which would have gone into one larger batch); those follow in a
        batch of their own.
        """
        self.bot.script = [None]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.successResultOf(channel.stop())
        # Stored by the dead relay's bot, never sent.
        self.successResultOf(
            self.store.outbox_append([("cookout", p) for p in PAYLOADS[1:]], self.clock.seconds())
        )
        self.channel()
        self.settle()
        first, again, rest = self.bot.requests
        self.assertEqual(again[1]["webhook-id"], first[1]["webhook-id"])
        self.assertEqual(again[2], first[2])
        self.assertEqual(len(orjson.loads(rest[2])["ids"]), 2)
        self.assertNotEqual(rest[1]["webhook-id"], first[1]["webhook-id"])
        self.assertEqual(self.stored_ids(), [])

    def test_batch_recorded_before_post(self) -> None:
        """
        A batch's boundaries are in the store before it is POSTed: the
        POST waits for the store.
        """
        held: list[Deferred[Any]] = []
        store = self.store
        real_ack = store.outbox_ack

        def outbox_ack(acks: Any, batches: Any = None) -> Deferred[Any]:
            d = real_ack(acks, batches)
            if not batches:
                return d
            waiting: Deferred[Any] = Deferred()
            held.append(waiting)
            return d.addCallback(lambda result: waiting.addCallback(lambda _: result))

        store.outbox_ack = outbox_ack  # type: ignore[method-assign]
        self.bot.script = [None]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        channel.deliver(PAYLOADS[1])
        self.settle()
        self.assertEqual(self.bot.requests, [])
        [first, second] = self.successResultOf(self.store.outbox_load("cookout", 0, 10))
        self.assertEqual(first.batch_last, second.id)
        held[0].callback(None)
        self.settle()
        [(_, headers, _)] = self.bot.requests
        self.assertEqual(headers["webhook-id"], f"dcc-{first.id}-{second.id}")
        self.successResultOf(channel.stop())

    def test_record_failure_retried(self) -> None:
        """
        A batch whose record the store refuses is not sent; it is tried
        again (record, then POST) after the retry delay, and lastError says
        why.
        """
        refusing = True
        store = self.store
        real_ack = store.outbox_ack

        def outbox_ack(acks: Any, batches: Any = None) -> Deferred[Any]:
            if batches and refusing:
                return fail(OSError("database is locked"))
            return real_ack(acks, batches)

        store.outbox_ack = outbox_ack  # type: ignore[method-assign]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.flushLoggedErrors(OSError)
        self.assertEqual(self.bot.requests, [])
        self.assertIn("could not record the batch", status_of(channel)["lastError"])
        refusing = False
        self.clock.advance(10)
        self.settle()
        self.assertEqual(len(self.bot.requests), 1)
        self.assertEqual(self.stored_ids(), [])

    def test_dropped_batch_rebuilt(self) -> None:
        """
        When the batch waiting to be retried loses entries to the queue
        limit, the retry sends what is left, under a new webhook-id.
        """
        self.bot.script = [(500, {})]
        channel = self.channel(queue_limit=2)
        channel.deliver(PAYLOADS[0])
        self.settle()
        channel.deliver(PAYLOADS[1])
        channel.deliver(PAYLOADS[2])
        self.settle()
        self.assertEqual(status_of(channel)["dropped"], 1)
        self.clock.advance(10)
        self.settle()
        retried = self.bot.requests[1]
        self.assertNotEqual(retried[1]["webhook-id"], self.bot.requests[0][1]["webhook-id"])
        self.assertEqual(
            orjson.loads(retried[2])["dispatches"], [orjson.loads(p) for p in PAYLOADS[1:]]
        )

    def test_stop(self) -> None:
        """
        stop() cancels the request in flight and every timer.
        """
        self.bot.script = [None]
        channel = self.channel()
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.successResultOf(channel.stop())
        self.settle()
        self.assertEqual(status_of(channel)["state"], "stopped")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_awake_then_idle(self) -> None:
        """
        The state is "connected" (and so is ``connected``) for idle_timeout
        seconds after a success, then "idle".
        """
        channel = self.channel(idle_timeout=60.0)
        self.assertFalse(channel.connected)
        channel.deliver(PAYLOADS[0])
        self.settle()
        self.assertEqual(status_of(channel)["state"], "connected")
        self.assertTrue(channel.connected)
        self.clock.advance(60.0)
        self.assertEqual(status_of(channel)["state"], "idle")
        self.assertFalse(channel.connected)

    def test_not_http(self) -> None:
        """
        A dst that is not http(s) is refused.
        """
        self.assertRaises(ValueError, self.channel, dst="ws://bot.example/")


class RetryPolicyTests(SynchronousTestCase):
    """
    default_retry_policy.
    """

    def test_schedule(self) -> None:
        """
        Delays follow the schedule within ±20 %, and stay at its last value
        after it.
        """
        policy = default_retry_policy(Random(5))
        for attempt in range(1, 12):
            base = RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE)) - 1]
            delay = policy(attempt)
            self.assertGreaterEqual(delay, base * 0.8)
            self.assertLessEqual(delay, base * 1.2)
        delays = {policy(3) for _ in range(10)}
        self.assertGreater(len(delays), 1)
