"""
``python -m bench.hostile_answers``: what a hostile answer costs the relay
(issue 17, items 2 and 3).

It starts the Discord simulator and the real relay (``twistd dcc``) as
separate processes on loopback, over TLS with a throw-away CA, and a
hostile server in this process (threads, the standard library's ``ssl``)
that answers the relay with one of:

- ``headers``: a webhook answering ``200`` and then header lines without
  end;
- ``chunked``: a webhook answering ``200`` with a chunked body of
  ``--body-mb`` megabytes;
- ``wake-body``: a ``wakeUrl`` answering ``200`` with a ``Content-Length``
  body of ``--body-mb`` megabytes (the bot's ``dst`` is down, so a
  matching message makes the relay request its ``wakeUrl``);
- ``handshake``: a ``wss`` bot answering the websocket handshake with
  ``101`` and then header lines without end.

For each it prints the relay's RSS before, at its peak and after, the relay
CPU seconds spent, the seconds from the first hostile byte until the relay
closed the connection (or the server stopped sending: at ``--send-mb``
megabytes or ``--seconds`` seconds, whichever comes first), the bytes sent,
and what the bot's status says.  Everything is bounded in bytes and time,
loopback only, and every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any

from bench.processes import BenchTLS, Relay, Simulator, Workdir, machine, wait_until

TOKEN = "NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0.Gg1234.hostile-bench"
USER_ID = "444444444444444444"
SECRET = "bench:hostile-secret-1"
ALIAS = "hostile"
MESSAGE_CONTENT = 1 << 15
MIB = 1024 * 1024
ATTACKS = ("headers", "chunked", "wake-body", "handshake")


class HostileServer:
    """
    Answers every connection as ``attack`` says, in a thread each, and
    records how much it sent and when the relay hung up.
    """

    def __init__(self, attack: str, tls: BenchTLS, send_bytes: int, seconds: float) -> None:
        self.attack = attack
        self.send_bytes = send_bytes
        self.seconds = seconds
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tls.cert_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.first_byte: float | None = None
        self.ended: float | None = None
        self.end_reason = ""
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            conn = self.context.wrap_socket(raw, server_side=True)
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            if self.connections > 1:
                # a retry: held unanswered, so the status keeps what the
                # first attack did and one attack is measured
                conn.settimeout(self.seconds)
                while conn.recv(65536):
                    pass
                return
            self._attack(conn)
        except OSError:
            pass
        finally:
            raw.close()

    def _attack(self, conn: ssl.SSLSocket) -> None:
        if self.attack in ("headers", "handshake"):
            status = b"101 Switching Protocols" if self.attack == "handshake" else b"200 OK"
            head = b"HTTP/1.1 " + status + b"\r\n"
            unit = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 40) for i in range(1000))
            self._send(conn, head, unit, b"")
        elif self.attack == "chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"b" * 64 * 1024)
            self._send(conn, head, chunk, b"0\r\n\r\n")
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.send_bytes
            self.send_bytes += len(head)
            self._send(conn, head, b"c" * 64 * 1024, b"")

    def _send(self, conn: ssl.SSLSocket, head: bytes, unit: bytes, tail: bytes) -> None:
        deadline = time.monotonic() + self.seconds
        self.first_byte = time.monotonic()
        try:
            conn.sendall(head)
            self.sent += len(head)
            while self.sent < self.send_bytes and time.monotonic() < deadline:
                # whole chunks only: a cut one would leave the body unfinished
                piece = unit if self.attack == "chunked" else unit[: self.send_bytes - self.sent]
                conn.sendall(piece)
                self.sent += len(piece)
            if tail:
                conn.sendall(tail)
            self.ended = time.monotonic()
            self.end_reason = "server stopped sending (limit reached)"
            # hold the connection until the relay closes it, within the time
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            while conn.recv(65536):
                pass
        except socket.timeout:
            self.end_reason = "the connection was still open when the server's time was up"
        except (OSError, ssl.SSLError) as e:
            self.end_reason = f"relay closed the connection ({type(e).__name__})"
        finally:
            if self.ended is None:
                self.ended = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(5)


def _request(method: str, url: str, body: Any = None, tls: BenchTLS | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(SECRET.encode()).decode())
    if data is not None:
        request.add_header("Content-Type", "application/json")
    context = tls.client_context if tls is not None else None
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.loads(response.read() or b"null")


def registration(attack: str, port: int, dead_port: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "token": TOKEN,
        "intents": 4608 | MESSAGE_CONTENT,
        "criteria": {"t": "MESSAGE_CREATE"},
        "clientSecret": SECRET,
    }
    if attack in ("headers", "chunked"):
        body["dst"] = f"https://127.0.0.1:{port}/hook"
    elif attack == "handshake":
        body["dst"] = f"wss://127.0.0.1:{port}/ws"
    else:
        # nothing listens on dead_port: the bot is asleep, so it is woken
        body["dst"] = f"wss://127.0.0.1:{dead_port}/ws"
        body["wakeUrl"] = f"https://127.0.0.1:{port}/wake"
    return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(attack: str, options: argparse.Namespace) -> dict[str, Any]:
    with Workdir() as workdir:
        tls = BenchTLS(workdir)
        sim = Simulator(workdir, tls=tls)
        relay = None
        server = HostileServer(attack, tls, options.send_mb * MIB, options.seconds)
        try:
            # one bot: --max-relays low, so that the descriptor check passes here
            relay = Relay(workdir, workdir + "/data", sim.api_url, "--max-relays", "100",
                          *options.relay_args, tls=tls)
            base = relay.wait_listening()
            _request("POST", sim.control + "/bots", {
                "token": TOKEN, "user_id": USER_ID, "privileged_intents": MESSAGE_CONTENT,
            }, tls=tls)
            _request("PUT", f"{base}/relays/{ALIAS}",
                     registration(attack, server.port, free_port()))
            wait_until(lambda: sim.summary()["ready"] >= 1, 60, "the bot's shard to be ready")
            time.sleep(1.0)
            rss_before = relay.rss_bytes()
            cpu_before = relay.cpu_seconds()
            peak = rss_before
            _request("POST", f"{sim.control}/bots/{TOKEN}/messages",
                     {"content": "cookout hostile"}, tls=tls)
            deadline = time.monotonic() + options.seconds + 30
            while time.monotonic() < deadline and server.ended is None:
                peak = max(peak, relay.rss_bytes())
                time.sleep(0.02)
            time.sleep(1.0)
            peak = max(peak, relay.rss_bytes())
            status = _request("GET", f"{base}/relays/{ALIAS}")
            wake = status.get("wakeUrl") or {}
            return {
                "attack": attack,
                "rss_before_mb": rss_before / MIB,
                "rss_peak_mb": peak / MIB,
                "rss_after_mb": relay.rss_bytes() / MIB,
                "cpu_s": relay.cpu_seconds() - cpu_before,
                "seconds": (server.ended or time.monotonic()) - (server.first_byte or time.monotonic()),
                "sent_mb": server.sent / MIB,
                "end": server.end_reason,
                "error": wake.get("lastError") if attack == "wake-body"
                else status.get("lastDeliveryError"),
            }
        finally:
            server.close()
            if relay is not None:
                relay.stop()
            sim.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help="comma-separated: " + ", ".join(ATTACKS))
    parser.add_argument("--send-mb", type=int, default=300,
                        help="megabytes the hostile server sends at most (default 300)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="seconds the hostile server sends at most (default 20)")
    parser.add_argument("relay_args", nargs="*", help="extra relay options, after --")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    print(machine())
    print(f"hostile server: at most {options.send_mb} MB or {options.seconds:g} s per attack")
    print(f"{'attack':<10} {'RSS before':>10} {'peak':>8} {'after':>8} {'CPU s':>6} "
          f"{'seconds':>7} {'sent MB':>8}  end; status")
    for attack in options.attacks.split(","):
        row = run(attack, options)
        print(f"{row['attack']:<10} {row['rss_before_mb']:>8.1f}MB {row['rss_peak_mb']:>6.1f}MB "
              f"{row['rss_after_mb']:>6.1f}MB {row['cpu_s']:>6.2f} {row['seconds']:>7.2f} "
              f"{row['sent_mb']:>8.1f}  {row['end']}; {row['error']!r}", flush=True)


if __name__ == "__main__":
    main()
