"""
``python -m bench.tls_connection``: what one idle TLS client connection
holds, measured in this process without sockets, to explain the TLS line
of the memory breakdown.

Client and server connections are paired in memory
(``TLSMemoryBIOProtocol`` over ``StringTransport``), the handshake is pumped
to its end and a few kilobytes of data are sent to the client, as a gateway
sends HELLO and READY; then the server sides are freed and what the clients
still hold is read from the C allocator (glibc's ``mallinfo2``: OpenSSL
allocates there) and from ``tracemalloc`` (Python objects).  Each variant
runs in a fresh interpreter so that one does not inherit another's heap.

Variants: the relay's shared context (:class:`dccrelay.net.tls.ClientTLS`)
against Twisted's ``optionsForClientTLS`` (a context per connection, what
the relay did before), each with a one-certificate trust store and with the
platform's; the shared context without ``MODE_RELEASE_BUFFERS``, to show
what releasing an idle connection's buffers saves; and TLS 1.3 against
1.2, to show what the protocol version itself costs.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from typing import Any

#: variant -> (context, trust store, highest TLS version)
VARIANTS = {
    "shared context, platform trust store, TLS 1.3 (the relay now)": ("shared", "platform", "1.3"),
    "the same, idle buffers kept (MODE_RELEASE_BUFFERS off)": ("keep-buffers", "platform", "1.3"),
    "shared context, one-certificate store, TLS 1.3": ("shared", "one", "1.3"),
    "shared context, platform trust store, TLS 1.2 at most": ("shared", "platform", "1.2"),
    "context per connection, platform trust store (before)": ("own", "platform", "1.3"),
    "context per connection, one-certificate store": ("own", "one", "1.3"),
}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def c_heap_in_use() -> int:
    """Bytes the C allocator has handed out (glibc), or -1 elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return -1
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def measure(context: str, trust: str, version: str, count: int, data: int) -> dict[str, float]:
    """Bytes per client connection, in this process."""
    from OpenSSL import SSL
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.ssl import optionsForClientTLS
    from twisted.internet.testing import StringTransport
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from bench.processes import platform_trust_store
    from dccrelay.net.tls import ClientTLS
    from dccrelay.testing.tls import ThrowAwayCA

    ca = ThrowAwayCA("bench CA")
    if trust == "platform":
        bundle = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dcc-bench-ca-{os.getpid()}.pem")
        with open(bundle, "wb") as f:
            f.write(platform_trust_store() + ca.ca_pem)
        os.environ["SSL_CERT_FILE"] = bundle
        root = None
    else:
        root = ca.trust_root()
    shared = ClientTLS(trust_root=root)
    if context == "keep-buffers":
        shared.context().clear_mode(SSL.MODE_RELEASE_BUFFERS)
    if version == "1.2":
        shared.context().set_max_proto_version(SSL.TLS1_2_VERSION)

    def creator() -> Any:
        if context != "own":
            return shared.creator_for("127.0.0.1")
        return optionsForClientTLS("127.0.0.1", trustRoot=root)

    server = TLSMemoryBIOFactory(ca.server_options(), False, Factory.forProtocol(Protocol))

    def pump(client: Any, srv: Any, to_server: StringTransport, to_client: StringTransport) -> None:
        for _ in range(20):
            out, back = to_server.value(), to_client.value()
            to_server.clear()
            to_client.clear()
            if not out and not back:
                return
            if out:
                srv.dataReceived(out)
            if back:
                client.dataReceived(back)

    def connect() -> tuple[Any, Any]:
        factory = TLSMemoryBIOFactory(creator(), True, Factory.forProtocol(Protocol))
        client, srv = factory.buildProtocol(None), server.buildProtocol(None)
        to_server, to_client = StringTransport(), StringTransport()
        client.makeConnection(to_server)
        srv.makeConnection(to_client)
        pump(client, srv, to_server, to_client)
        srv.write(b"x" * data)
        pump(client, srv, to_server, to_client)
        if not client._handshakeDone:
            raise RuntimeError("the in-memory handshake did not complete")
        return client, srv

    def free(srv: Any) -> None:
        # The TLS connection points back at its protocol from C (app data),
        # which the garbage collector cannot see: break the cycle by hand.
        srv._tlsConnection.set_app_data(None)
        srv._tlsConnection = None
        srv.transport.protocol = None
        srv.transport = None

    free(connect()[1])
    gc.collect()
    tracemalloc.start()
    before_c, before_py = c_heap_in_use(), tracemalloc.get_traced_memory()[0]
    clients = []
    for _ in range(count):
        client, srv = connect()
        clients.append(client)
        free(srv)
    del srv
    gc.collect()
    after_c, after_py = c_heap_in_use(), tracemalloc.get_traced_memory()[0]
    python = (after_py - before_py) / count
    return {
        # tracemalloc's own bookkeeping is C heap too: the C part excludes
        # what Python objects took
        "openssl": (after_c - before_c) / count - python,
        "python": python,
    }


def table(connections: int = 1000, data: int = 3000) -> list[str]:
    """The variants' figures as lines of text, each variant in its own interpreter."""
    lines = [
        f"One idle TLS client connection, {connections:,} in memory, after the handshake and"
        f" {data:,} bytes received (KiB per connection):",
        f"   {'':66}{'C heap':>8}{'Python':>8}{'total':>8}",
    ]
    for label in VARIANTS:
        run = subprocess.run(
            [sys.executable, "-m", "bench.tls_connection", "--one", label,
             "--connections", str(connections), "--data", str(data)],
            capture_output=True, text=True, check=True, timeout=600,
        )
        row = json.loads(run.stdout.strip().splitlines()[-1])
        total = row["openssl"] + row["python"]
        lines.append(f"   {label:66}{row['openssl'] / 1024:>8.1f}{row['python'] / 1024:>8.1f}"
                     f"{total / 1024:>8.1f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_connection")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--data", type=int, default=3000,
                        help="bytes the server sends each client after the handshake")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.one is not None:
        context, trust, version = VARIANTS[options.one]
        print(json.dumps(measure(context, trust, version, options.connections, options.data)))
        return
    for line in table(options.connections, options.data):
        print(line)


if __name__ == "__main__":
    main()
