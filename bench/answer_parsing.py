"""
``python -m bench.answer_parsing``: what the head caps of
:mod:`dccrelay.net.answer_caps` cost per webhook answer.

One request and its answer (a ``204`` with the headers a typical web
server sends, in one read) on Twisted's ``HTTP11ClientProtocol`` and on the
capped one, over ``StringTransport``, alternated ``--repeats`` times in this
process; prints microseconds per answer (best run) and their ratio.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from twisted.internet.testing import StringTransport
from twisted.web._newclient import HTTP11ClientProtocol, Request
from twisted.web.http_headers import Headers

from bench.processes import machine
from dccrelay.net.answer_caps import AnswerCaps, _CappedClientProtocol

ANSWER = (
    b"HTTP/1.1 204 No Content\r\n"
    b"Date: Sun, 06 Dec 2026 16:00:00 GMT\r\n"
    b"Server: nginx/1.24.0\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Request-Id: 6f9c0d2e-52c1-4d8e-9d43-0a4c7e0f5b11\r\n"
    b"Strict-Transport-Security: max-age=31536000\r\n"
    b"\r\n"
)


def per_answer(make: Callable[[Callable[[Any], object]], HTTP11ClientProtocol], count: int) -> float:
    """Seconds per request and answer on one kept connection."""
    protocol = make(lambda p: None)
    protocol.makeConnection(StringTransport())
    headers = Headers({b"host": [b"bot.example"]})
    started = time.perf_counter()
    for _ in range(count):
        d = protocol.request(Request(b"POST", b"/hook", headers, None, True))
        protocol.dataReceived(ANSWER)
        assert d.called
    return (time.perf_counter() - started) / count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args(argv)
    caps = AnswerCaps()
    plain: list[float] = []
    capped: list[float] = []
    for _ in range(options.repeats):
        plain.append(per_answer(HTTP11ClientProtocol, options.count))
        capped.append(per_answer(lambda q: _CappedClientProtocol(q, caps), options.count))
    print(machine())
    print(f"{options.count} answers x {options.repeats} runs, best run each")
    print(f"HTTP11ClientProtocol   {min(plain) * 1e6:7.2f} us/answer")
    print(f"capped                 {min(capped) * 1e6:7.2f} us/answer")
    print(f"ratio                  {min(capped) / min(plain):7.2f}")


if __name__ == "__main__":
    main()
