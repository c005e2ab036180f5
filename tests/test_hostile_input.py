"""
Hostile input against the registration API: each input is refused (or
harmlessly accepted) with a status and a message that says why, nothing
crashes, and another bot registered on the same node is not affected.

:data:`CASES` is the list of what was tried and the answer expected; the
slow-client cases are in ``test_web_channel``, the private-address cases
after name resolution in ``test_outbound``, the generated ones in
``test_web_openapi``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters import compile_criteria

from .api_harness import BODY, SECRET, Node, answer, basic

OTHER = {
    **BODY, "token": "other.bot.token", "dst": "wss://other.example/",
    "clientSecret": "other:secret-123",
}


def _nested(depth: int) -> Any:
    value: Any = {"t": "MESSAGE_CREATE"}
    for _ in range(depth):
        value = {"$and": [value]}
    return value


def _body(**changes: Any) -> bytes:
    # the standard library's encoder: orjson refuses the deepest cases
    return json.dumps({**BODY, **changes}).encode()


#: (what, method, path, raw body or None, extra headers, status, words of the error)
CASES: list[tuple[str, str, str, bytes | None, dict[str, list[str]], int, str]] = [
    # malformed JSON
    ("truncated JSON", "PUT", "/relays/x", b'{"token": ', {}, 400, "not valid JSON"),
    ("not UTF-8", "PUT", "/relays/x", b"\xff\xfe{}", {}, 400, "not valid JSON"),
    ("NaN", "PUT", "/relays/x", b'{"intents": NaN}', {}, 400, "not valid JSON"),
    ("trailing garbage", "PUT", "/relays/x", _body() + b"x", {}, 400, "not valid JSON"),
    ("empty body", "PUT", "/relays/x", b"", {}, 400, "not valid JSON"),
    ("text/plain body", "PUT", "/relays/x", _body(), {"Content-Type": ["text/plain"]}, 415,
     "must be application/json"),
    # wrong types and shapes
    ("body is an array", "PUT", "/relays/x", b"[]", {}, 400, "is not of type 'object'"),
    ("body is null", "PUT", "/relays/x", b"null", {}, 400, "is not of type 'object'"),
    ("body is a string", "PUT", "/relays/x", b'"hi"', {}, 400, "is not of type 'object'"),
    ("token is a number", "PUT", "/relays/x", _body(token=123), {}, 400, "token: 123 is not of type"),
    ("token with spaces", "PUT", "/relays/x", _body(token="a b"), {}, 400, "token"),
    ("intents as text", "PUT", "/relays/x", _body(intents="4608"), {}, 400, "intents"),
    ("intents negative", "PUT", "/relays/x", _body(intents=-1), {}, 400, "intents"),
    ("intents 2**62", "PUT", "/relays/x", _body(intents=2**62), {}, 400,
     "bits Discord does not define"),
    ("intents 1e300 (a float JSON Schema calls integer)", "PUT", "/relays/x",
     b'{"token":"t","dst":"wss://b.example/","clientSecret":"a:345678","intents":1e300}', {},
     400, "bits Discord does not define"),
    ("clientSecret too short", "PUT", "/relays/x", _body(clientSecret="short"), {}, 400,
     "clientSecret"),
    ("clientSecret with a newline", "PUT", "/relays/x", _body(clientSecret="a\nbcdefghij"), {},
     400, "clientSecret"),
    ("dst a number", "PUT", "/relays/x", _body(dst=5), {}, 400, "dst"),
    ("shards zero", "PUT", "/relays/x", _body(shards=0), {}, 400, "shards"),
    ("shards 'many'", "PUT", "/relays/x", _body(shards="many"), {}, 400, "shards"),
    ("delivery protocol 3", "PUT", "/relays/x", _body(delivery={"protocol": 3}), {}, 400,
     "protocol"),
    ("typingWhileWaking 'yes'", "PUT", "/relays/x", _body(typingWhileWaking="yes"), {}, 400,
     "typingWhileWaking"),
    ("unknown field", "PUT", "/relays/x", _body(admin=True), {}, 400, "unknown field"),
    ("missing token", "PUT", "/relays/x",
     orjson.dumps({k: v for k, v in BODY.items() if k != "token"}), {}, 400,
     "'token' is a required property"),
    # size and depth
    ("65 KiB body", "PUT", "/relays/x", b" " * (64 * 1024 + 1), {}, 413, "larger than 65536"),
    ("JSON nested 30000 deep", "PUT", "/relays/x", b"[" * 30_000 + b"]" * 30_000, {}, 400,
     "not valid JSON"),
    ("criteria nested 300 deep", "PUT", "/relays/x", _body(criteria=_nested(300)), {}, 400,
     "criteria"),
    ("criteria with 3000 keys", "PUT", "/relays/x",
     _body(criteria={f"d.k{n}": n for n in range(3000)}), {}, 400, "criteria"),
    # regexes
    ("catastrophic regex (a+)+$ (linear on RE2)", "PUT", "/relays/rx",
     _body(token="rx.token", criteria={"d.content": {"$regex": "(a+)+$"}}), {}, 201, ""),
    ("backreference RE2 cannot run", "PUT", "/relays/x",
     _body(criteria={"d.content": {"$regex": "(a)\\1"}}), {}, 400, "criteria"),
    ("lookahead RE2 cannot run", "PUT", "/relays/x",
     _body(criteria={"d.content": {"$regex": "a(?=b)"}}), {}, 400, "criteria"),
    ("$where (code)", "PUT", "/relays/x",
     _body(criteria={"$where": "while(1){}"}), {}, 400, "criteria"),
    ("unknown filter backend", "PUT", "/relays/x", _body(filter="evil"), {}, 400, "filter"),
    # alias injection
    ("alias with ../", "GET", "/relays/..%2F..%2Fhealthz", None, {}, 400, "alias must be"),
    ("alias with NUL", "GET", "/relays/a%00b", None, {}, 400, "alias must be"),
    ("alias with markup", "PUT", "/relays/%3Cscript%3E", _body(), {}, 400, "alias must be"),
    ("alias of 65 characters", "PUT", "/relays/" + "a" * 65, _body(), {}, 400, "alias must be"),
    ("alias non-ASCII", "PUT", "/relays/caf%C3%A9", _body(), {}, 400, "alias must be"),
    ("alias with ;", "PUT", "/relays/a;b", _body(), {}, 400, "alias must be"),
    ("empty alias", "PUT", "/relays/", _body(), {}, 400, "alias must be"),
    ("path below an alias", "GET", "/relays/cookout/x/y", None, {}, 404, "nothing at this path"),
    # header injection and odd URLs in dst / wakeUrl
    ("CRLF in dst", "PUT", "/relays/x", _body(dst="wss://b.example/\r\nX-Evil: 1"), {}, 400,
     "whitespace or control characters"),
    ("NUL in dst", "PUT", "/relays/x", _body(dst="wss://b.example/\x00"), {}, 400,
     "whitespace or control characters"),
    ("U+2028 in dst", "PUT", "/relays/x", _body(dst="wss://b.example/\u2028"), {}, 400,
     "whitespace or control characters"),
    ("CRLF in wakeUrl", "PUT", "/relays/x", _body(wakeUrl="https://b.example/\r\nX: 1"), {},
     400, "whitespace or control characters"),
    ("dst port 99999", "PUT", "/relays/x", _body(dst="wss://b.example:99999/"), {}, 400,
     "port must be 1 to 65535"),
    ("dst with #fragment", "PUT", "/relays/x", _body(dst="wss://b.example/#f"), {}, 400,
     "fragment"),
    ("dst ftp://", "PUT", "/relays/x", _body(dst="ftp://b.example/"), {}, 400,
     "must be an absolute"),
    ("dst without host", "PUT", "/relays/x", _body(dst="wss:///x"), {}, 400, "dst"),
    ("dst broken IPv6", "PUT", "/relays/x", _body(dst="ws://[::1/"), {}, 400, "not a URL"),
    ("dst loopback literal", "PUT", "/relays/x", _body(dst="ws://127.0.0.1:9/"), {}, 400,
     "loopback address"),
    ("dst localhost", "PUT", "/relays/x", _body(dst="ws://localhost/"), {}, 400,
     "loopback address"),
    ("dst cloud metadata", "PUT", "/relays/x", _body(dst="http://169.254.169.254/"), {}, 400,
     "link-local address"),
    ("dst IPv4-mapped loopback", "PUT", "/relays/x", _body(dst="ws://[::ffff:127.0.0.1]/"), {},
     400, "loopback address (127.0.0.1) inside an IPv6 address"),
    ("dst multicast", "PUT", "/relays/x", _body(dst="ws://224.0.1.1/"), {}, 400,
     "multicast address"),
    ("wakeUrl private", "PUT", "/relays/x", _body(wakeUrl="http://10.0.0.1/"), {}, 400,
     "private address"),
    ("dst %0d%0a percent-encoded (stays encoded on the wire)", "PUT", "/relays/enc",
     _body(token="enc.token", dst="wss://b.example/%0d%0aX-Evil:%201"), {}, 201, ""),
    # credentials
    ("update without credentials", "PUT", "/relays/cookout", _body(dst="wss://evil.example/"),
     {}, 401, "clientSecret"),
    ("Basic not base64", "GET", "/relays/cookout", None, {"Authorization": ["Basic !!!"]}, 401,
     "Authorization must be Basic"),
    ("unknown auth scheme", "DELETE", "/relays/cookout", None,
     {"Authorization": ["Digest x"]}, 401, "Authorization must be Basic"),
    ("another bot's secret", "DELETE", "/relays/cookout", None, basic(OTHER["clientSecret"]),
     401, "wrong clientSecret"),
    # methods and paths
    ("PATCH", "PATCH", "/relays/cookout", _body(), {}, 405, "PATCH is not allowed here"),
    ("POST to the collection", "POST", "/relays", _body(), {}, 405, "POST is not allowed"),
    ("DELETE the collection", "DELETE", "/relays", None, {}, 405, "DELETE is not allowed here"),
    ("made-up method", "BREW", "/relays", None, {}, 501, "is not supported"),
    ("unknown path", "GET", "/admin", None, {}, 404, "nothing at this path"),
]


class HostileInputTests(SynchronousTestCase):
    """
    Every case of :data:`CASES`, against a node that holds two bots.
    """

    def setUp(self) -> None:
        self.node = Node(max_relays=50)
        self.addCleanup(self.node.stop)
        self.assertEqual(answer(self, self.node, "PUT", "/relays/cookout", BODY)[0], 201)
        self.assertEqual(answer(self, self.node, "PUT", "/relays/other", OTHER)[0], 201)
        self.other = self.node.manager.relays["other"]

    def test_cases(self) -> None:
        """
        Each hostile input gets the expected status and, for a refusal, a
        JSON ``{"error"}`` that says why; the other bot is untouched.
        """
        wrong = []
        for what, method, path, raw, headers, status, words in CASES:
            code, body, _ = answer(
                self, self.node, method, path, raw=raw if raw is not None else b"",
                headers=headers,
            )
            error = body.get("error", "") if isinstance(body, dict) else None
            if code != status or (status >= 400 and (error is None or words not in error)):
                wrong.append((what, code, body if code >= 400 else "..."))
        self.assertEqual(wrong, [])
        self.assertIs(self.node.manager.relays["other"], self.other)
        self.assertEqual(self.other.settings.dst, OTHER["dst"])
        self.assertEqual(self.node.manager.relays["cookout"].settings.dst, BODY["dst"])
        self.assertEqual(
            answer(self, self.node, "GET", "/relays/other", headers=basic(OTHER["clientSecret"]))[0],
            200,
        )

    def test_catastrophic_regex_is_linear(self) -> None:
        """
        ``(a+)+$`` against 100 000 ``a`` and a ``!`` (exponential on a
        backtracking engine) is answered at once on RE2.
        """
        match = compile_criteria("mongo", {"d.content": {"$regex": "(a+)+$"}})
        payload = {"d": {"content": "a" * 100_000 + "!"}}
        started = time.perf_counter()
        self.assertFalse(match(payload))
        self.assertLess(time.perf_counter() - started, 1.0)


class MaxRelaysTests(SynchronousTestCase):
    """
    Thousands of registrations: the node stops at --max-relays, says so,
    and the bots it has keep working.
    """

    def test_thousands(self) -> None:
        """
        1000 registrations fill a node of 1000; the next is 503 with
        Retry-After and a reason; existing bots still update.
        """
        node = Node(max_relays=1000)
        self.addCleanup(node.stop)
        for n in range(1000):
            code, _, _ = answer(self, node, "PUT", f"/relays/bot{n}", {**BODY, "token": f"t.{n}"})
            self.assertEqual(code, 201)
        code, body, response = answer(
            self, node, "PUT", "/relays/onemore", {**BODY, "token": "t.more"}
        )
        self.assertEqual(code, 503)
        self.assertIn("maximum of 1000 bots", body["error"])
        self.assertTrue(response.headers.getRawHeaders("Retry-After"))
        self.assertNotIn("onemore", node.manager.relays)
        changed = {**BODY, "token": "t.7", "dst": "wss://moved.example/"}
        self.assertEqual(
            answer(self, node, "PUT", "/relays/bot7", changed, headers=basic(SECRET))[0], 200
        )
