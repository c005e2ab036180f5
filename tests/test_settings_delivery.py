"""
Tests for the delivery part of :func:`dccrelay.relay.settings.parse_settings`:
which ``dst`` and ``delivery.protocol`` a registration may ask for.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters import compile_criteria
from dccrelay.relay.settings import SettingsError, parse_settings

BODY = {
    "token": "MTEx.Gg.token",
    "dst": "wss://bot.example/dcc",
    "clientSecret": "admin:c2VjcmV0c2VjcmV0",
}


def parse(**changes: Any) -> Any:
    return parse_settings(
        {**BODY, **changes}, compile_filter=compile_criteria, allow_private_dst=False
    )


class DeliverySettingsTests(SynchronousTestCase):
    """
    dst schemes and delivery protocols.
    """

    def test_webhook_dst(self) -> None:
        """
        An http(s) dst is accepted: webhook delivery.
        """
        for dst in ["https://bot.example/hook", "http://bot.example:8080/hook?x=1"]:
            self.assertEqual(parse(dst=dst).dst, dst)

    def test_websocket_v2(self) -> None:
        """
        A ws(s) dst may ask for protocol 2; 1 is the default.
        """
        self.assertEqual(parse().delivery_protocol, 1)
        self.assertEqual(parse(delivery={"protocol": 2}).delivery_protocol, 2)
        self.assertEqual(
            parse(dst="ws://bot.example/", delivery={"protocol": 2}).delivery_protocol, 2
        )

    def test_protocol_2_not_for_webhooks(self) -> None:
        """
        Protocol 2 with an http(s) dst is refused, naming the field.
        """
        with self.assertRaises(SettingsError) as caught:
            parse(dst="https://bot.example/hook", delivery={"protocol": 2})
        self.assertEqual(caught.exception.pointer, "/delivery/protocol")
        self.assertIn("webhook", caught.exception.message)
        self.assertEqual(
            parse(dst="https://bot.example/hook", delivery={"protocol": 1}).delivery_protocol, 1
        )

    def test_private_webhook_refused(self) -> None:
        """
        A webhook dst on a private address is refused like a websocket one.
        """
        with self.assertRaises(SettingsError) as caught:
            parse(dst="http://127.0.0.1:8080/hook")
        self.assertEqual(caught.exception.pointer, "/dst")

    def test_other_schemes(self) -> None:
        """
        Other schemes and protocols stay refused.
        """
        for dst in ["ftp://bot.example/", "file:///etc/passwd"]:
            with self.assertRaises(SettingsError):
                parse(dst=dst)
        with self.assertRaises(SettingsError):
            parse(delivery={"protocol": 3})
