"""
Tests for :func:`dccrelay.client.verify_webhook`: it accepts what the
Standard Webhooks reference library signs with the clientSecret's bytes, in
whatever shape a web framework gives the headers, and refuses everything
else with a message that says why.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from standardwebhooks.webhooks import Webhook
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from dccrelay.client import WebhookVerificationError, verify_webhook
from dccrelay.delivery.webhook import sign as relay_sign

SECRET = "admin:c2VjcmV0c2VjcmV0"
BATCH = {
    "type": "dispatches",
    "dispatches": [
        {"op": 0, "t": "MESSAGE_CREATE", "s": 7, "d": {"content": "cookout bring buns"}},
    ],
    "ids": [12],
}
BODY = json.dumps(BATCH).encode()
MSG_ID = "msg_2b1c3d"


def signed_headers(
    body: bytes = BODY, secret: str = SECRET, age: timedelta = timedelta(0), msg_id: str = MSG_ID
) -> dict[str, str]:
    """
    Headers as a Standard Webhooks sender makes them, signed by the
    reference library with the secret's UTF-8 bytes.
    """
    when = datetime.now(tz=timezone.utc) - age
    signature = Webhook(secret.encode()).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


class VerifyWebhookTests(SynchronousTestCase):
    """
    ``verify_webhook(headers, body, secret)``.
    """

    def test_accepts_reference_signature(self) -> None:
        """
        A body signed by the reference library is accepted and parsed.
        """
        self.assertEqual(verify_webhook(signed_headers(), BODY, SECRET), BATCH)

    def test_body_as_text(self) -> None:
        """
        The body may be given as text, as some frameworks hand it over.
        """
        self.assertEqual(verify_webhook(signed_headers(), BODY.decode(), SECRET), BATCH)

    def test_header_shapes(self) -> None:
        """
        Header names in any case, bytes names and values, lists of values
        (Twisted, WSGI adapters), Twisted ``Headers`` and ``(name, value)``
        pairs (ASGI) all work.
        """
        headers = signed_headers()
        shapes: list[object] = [
            {name.title(): value for name, value in headers.items()},
            {name.encode(): value.encode() for name, value in headers.items()},
            {name: [value] for name, value in headers.items()},
            Headers({name: [value] for name, value in headers.items()}),
            [(name.encode(), value.encode()) for name, value in headers.items()]
            + [(b"content-type", b"application/json")],
        ]
        for shape in shapes:
            self.assertEqual(verify_webhook(shape, BODY, SECRET), BATCH)  # type: ignore[arg-type]

    def test_rotated_signatures(self) -> None:
        """
        Of several space-separated signatures (a sender rotating keys), one
        matching is enough; malformed entries are skipped.
        """
        headers = signed_headers()
        other = signed_headers(secret="admin:another-secret")["webhook-signature"]
        headers["webhook-signature"] = f"junk {other} {headers['webhook-signature']}"
        self.assertEqual(verify_webhook(headers, BODY, SECRET), BATCH)

    def test_bad_signature(self) -> None:
        """
        A signature made with another secret is refused.
        """
        headers = signed_headers(secret="admin:another-secret")
        with self.assertRaises(WebhookVerificationError) as caught:
            verify_webhook(headers, BODY, SECRET)
        self.assertIn("no webhook-signature matches", str(caught.exception))

    def test_changed_body(self) -> None:
        """
        A body changed after signing is refused.
        """
        headers = signed_headers()
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(headers, BODY.replace(b"buns", b"bugs"), SECRET)

    def test_changed_id(self) -> None:
        """
        The id is signed too: another id is refused.
        """
        headers = signed_headers()
        headers["webhook-id"] = "msg_other"
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(headers, BODY, SECRET)

    def test_stale_timestamp(self) -> None:
        """
        A delivery signed more than 5 minutes ago is refused as a replay.
        """
        headers = signed_headers(age=timedelta(minutes=6))
        with self.assertRaises(WebhookVerificationError) as caught:
            verify_webhook(headers, BODY, SECRET)
        self.assertIn("more than 5 minutes old", str(caught.exception))

    def test_future_timestamp(self) -> None:
        """
        A timestamp more than 5 minutes ahead is refused.
        """
        headers = signed_headers(age=-timedelta(minutes=6))
        with self.assertRaises(WebhookVerificationError) as caught:
            verify_webhook(headers, BODY, SECRET)
        self.assertIn("in the future", str(caught.exception))

    def test_within_tolerance(self) -> None:
        """
        A delivery signed 4 minutes ago (a retry, a slow network) passes.
        """
        headers = signed_headers(age=timedelta(minutes=4))
        self.assertEqual(verify_webhook(headers, BODY, SECRET), BATCH)

    def test_missing_headers(self) -> None:
        """
        Each missing header is named.
        """
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            headers = signed_headers()
            del headers[name]
            with self.assertRaises(WebhookVerificationError) as caught:
                verify_webhook(headers, BODY, SECRET)
            self.assertIn(f"missing {name} header", str(caught.exception))
        with self.assertRaises(WebhookVerificationError) as caught:
            verify_webhook({}, BODY, SECRET)
        self.assertIn("webhook-id, webhook-timestamp, webhook-signature", str(caught.exception))

    def test_malformed_headers(self) -> None:
        """
        A timestamp that is not a number, or signatures that are not
        ``version,base64``, are refused with WebhookVerificationError, never
        another exception.
        """
        cases = [
            {"webhook-timestamp": "yesterday"},
            {"webhook-signature": "nocomma"},
            {"webhook-signature": "v1,@@@"},
        ]
        for change in cases:
            headers = signed_headers()
            headers.update(change)
            with self.assertRaises(WebhookVerificationError):
                verify_webhook(headers, BODY, SECRET)

    def test_not_utf8(self) -> None:
        """
        A body that is not UTF-8 is refused.
        """
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(signed_headers(), b"\xff\xfe", SECRET)

    def test_signed_but_not_json(self) -> None:
        """
        A correctly signed body that is not JSON is refused, not returned.
        """
        body = b"not json"
        with self.assertRaises(WebhookVerificationError) as caught:
            verify_webhook(signed_headers(body=body), body, SECRET)
        self.assertIn("not JSON", str(caught.exception))

    def test_relay_signature(self) -> None:
        """
        What the relay's webhook delivery signs is accepted: the two sides
        agree on the key (the secret's bytes) and the signed text.
        """
        timestamp = int(datetime.now(tz=timezone.utc).timestamp())
        headers = {
            "webhook-id": "dcc-12-12",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": relay_sign(SECRET, "dcc-12-12", timestamp, BODY),
        }
        self.assertEqual(verify_webhook(headers, BODY, SECRET), BATCH)
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(headers, BODY, "admin:another-secret")

    def test_is_value_error(self) -> None:
        """
        ``WebhookVerificationError`` is a ValueError, so generic handlers
        of bad input catch it.
        """
        self.assertTrue(issubclass(WebhookVerificationError, ValueError))
