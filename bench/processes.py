"""
The processes of a benchmark run, each separate and on loopback: the
project's Discord simulator (``python -m dccrelay.testing --lean``), the
real relay (``twistd --nodaemon --pidfile= dcc ...``) and the bots' receiver
(``python -m bench.receiver``); and what is measured from outside them
(``/proc/<pid>``: CPU seconds and resident memory).

By default they speak TLS, as production does (Discord is TLS only, and most
bots' ``dst`` are ``wss://`` or ``https://``): :class:`BenchTLS` makes a
throw-away CA for the run, the simulator and the receiver serve with its
certificate, and the relay trusts it through ``SSL_CERT_FILE``, as an
operator would a private CA.

Everything here waits with a deadline and stops what it started.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
LOOPBACK = "tcp:0:interface=127.0.0.1"
#: --max-api-connections of the relay under test (a run's API clients are few)
BENCH_API_CONNECTIONS = 32
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> str:
    """CPU model, cores and Python, for the header of every table."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f" ({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it is true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class BenchTLS:
    """
    A run's throw-away CA, and the files the processes need: ``ca.pem``
    (what the relay trusts: the platform's trust store, as production has
    it, plus the throw-away CA) and ``server.pem`` (key and certificate for
    127.0.0.1, what the simulator and the receiver serve with).
    """

    def __init__(self, workdir: str) -> None:
        from dccrelay.testing.tls import ThrowAwayCA

        ca = ThrowAwayCA("dccrelay bench CA")
        self.ca_file = os.path.join(workdir, "ca.pem")
        with open(self.ca_file, "wb") as out:
            out.write(platform_trust_store() + ca.ca_pem)
        self.cert_file = ca.write_server(os.path.join(workdir, "server.pem"))
        self.client_context = ssl.create_default_context(cafile=self.ca_file)


def platform_trust_store() -> bytes:
    """
    The certificates OpenSSL trusts on this machine by default (Debian's
    bundle: ~145), or nothing where there is no such file: a relay that
    trusts only the throw-away CA would hide what a real trust store costs.
    """
    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.openssl_cafile):
        if path and os.path.exists(path):
            with open(path, "rb") as bundle:
                return bundle.read().rstrip(b"\n") + b"\n"
    return b""


def http_json(
    method: str, url: str, body: Any = None, timeout: float = 60.0, tls: BenchTLS | None = None
) -> Any:
    """One HTTP call with a JSON body and answer (``https`` trusting ``tls``'s CA)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    context = tls.client_context if tls is not None else None
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        content = response.read()
    return json.loads(content) if content else None


class Process:
    """One child process, its output in a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: str,
        env_extra: dict[str, str] | None = None,
        code: str = REPO,
    ) -> None:
        """
        :param code: the source tree whose ``dccrelay`` it runs (another
            commit's, for a baseline: :mod:`bench.baseline`).
        """
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, **(env_extra or {}))
        env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir, env=env
        )
        self.pid = self.popen.pid
        self.started = time.monotonic()

    def output(self) -> str:
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def wait_for_output(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first match of ``pattern`` in the output, once it appears."""

        def found() -> re.Match[str] | None:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-3000:]}"
                )
            return re.search(pattern, self.output())

        match: re.Match[str] = wait_until(found, timeout, f"{self.name} to print {pattern!r}")
        return match

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far (``/proc/<pid>/stat``)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def rss_bytes(self) -> int:
        """Resident memory now (``/proc/<pid>/statm``)."""
        with open(f"/proc/{self.pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        """Signal it and wait; SIGKILL if it does not end in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()


def _tls_cert_args(tls: BenchTLS | None) -> list[str]:
    return ["--tls-cert", tls.cert_file] if tls is not None else []


class Simulator(Process):
    """``python -m dccrelay.testing --lean`` and its control API."""

    def __init__(self, workdir: str, *extra: str, tls: BenchTLS | None = None) -> None:
        self.tls = tls
        super().__init__(
            "simulator",
            [PYTHON, "-m", "dccrelay.testing", "--listen", LOOPBACK, "--lean",
             "--replay-limit", "100", "--token", "unused-token", *_tls_cert_args(tls), *extra],
            workdir,
        )
        self.api_url = self.wait_for_output(r"--discord-api\): (\S+)").group(1)
        self.control = self.wait_for_output(r"control API:\s+(\S+)/state").group(1)

    def add_bots(self, count: int) -> None:
        http_json("POST", self.control + "/bots/bulk", {"prefix": "bench", "count": count},
                  tls=self.tls)

    def summary(self) -> dict[str, int]:
        result: dict[str, int] = http_json("GET", self.control + "/summary", tls=self.tls)
        return result

    def load(self, rate: float, count: int, others: float = 0.0) -> Any:
        body: dict[str, Any] = {"rate": rate, "count": count}
        if others:
            body["others"] = others
        return http_json("POST", self.control + "/load", body, tls=self.tls)

    def load_status(self) -> Any:
        return http_json("GET", self.control + "/load", tls=self.tls)


class Receiver(Process):
    """``python -m bench.receiver``: ``wss``/``https`` with ``tls``."""

    def __init__(self, workdir: str, tls: BenchTLS | None = None) -> None:
        self.tls = tls
        super().__init__(
            "receiver",
            [PYTHON, "-m", "bench.receiver", "--listen", LOOPBACK, *_tls_cert_args(tls)],
            workdir,
        )
        port = self.wait_for_output(r"receiver listening on (\d+)").group(1)
        secure = "s" if tls is not None else ""
        self.base = f"http{secure}://127.0.0.1:{port}"
        self.ws_dst = f"ws{secure}://127.0.0.1:{port}/ws/{{alias}}"
        self.hook_dst = f"http{secure}://127.0.0.1:{port}/hook/{{alias}}"

    def stats(self) -> Any:
        return http_json("GET", self.base + "/stats", tls=self.tls)

    def reset(self) -> None:
        http_json("POST", self.base + "/stats", tls=self.tls)


class Relay(Process):
    """
    ``twistd --nodaemon --pidfile= dcc`` on loopback, lag probe on; with
    ``tls``, trusting the run's CA through ``SSL_CERT_FILE``.
    """

    def __init__(
        self,
        workdir: str,
        data_dir: str,
        api_url: str,
        *extra: str,
        tls: BenchTLS | None = None,
        max_relays: int = 1000,
        code: str = REPO,
    ) -> None:
        # --max-relays as the run needs: the relay refuses to start when the
        # open-files limit cannot cover it (2 per bot, and the API's clients).
        # A run has a handful of API clients: counting the default 256 of them
        # would not let 9,800 bots fit under a hard limit of 20,000.  (A
        # baseline from before the option was added counts none.)
        api = (
            ["--max-api-connections", str(BENCH_API_CONNECTIONS)]
            if _has_option(code, "max-api-connections") else []
        )
        super().__init__(
            "relay",
            [TWISTD, "--nodaemon", "--pidfile=", "dcc", "--listen", LOOPBACK,
             "--data-dir", data_dir, "--discord-api", api_url, "--allow-private-dst",
             "--max-relays", str(max(max_relays, 1)), *api, "--lag-probe", *extra],
            workdir,
            env_extra={"SSL_CERT_FILE": tls.ca_file} if tls is not None else None,
            code=code,
        )

    def wait_listening(self, timeout: float = 120.0) -> str:
        """
        Wait until the relay listens and has loaded its store (``/healthz``
        200: it refuses registrations before).

        :return: its base URL.
        """
        port = self.wait_for_output(r"Site starting on (\d+)", timeout).group(1)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(base), timeout, "the relay to load its store")
        return base

    def worst_lag_ms(self, since: int = 0) -> float:
        """The worst stall the lag probe logged after output offset ``since``."""
        found = re.findall(r"reactor lag: worst ([\d.]+) ms", self.output()[since:])
        return max((float(ms) for ms in found), default=0.0)

    def worst_on_cpu_ms(self, since: int = 0) -> float:
        """The worst stall's part on the reactor thread's CPU (0 where not logged)."""
        found = re.findall(r"worst on-CPU stall ([\d.]+) ms", self.output()[since:])
        return max((float(ms) for ms in found), default=0.0)

    def froze(self) -> float:
        """1 if start-up's objects were frozen out of the collector, else 0."""
        return 1.0 if re.search(r"start-up \w[^:]*: froze", self.output()) else 0.0

    def worst_gc_ms(self, since: int = 0) -> float:
        """The longest garbage collection the lag probe logged."""
        found = re.findall(r"longest garbage collection ([\d.]+) ms", self.output()[since:])
        return max((float(ms) for ms in found), default=0.0)


def _has_option(code: str, option: str) -> bool:
    """Whether the relay in source tree ``code`` has ``--option``."""
    with open(os.path.join(code, "dccrelay", "tap.py")) as tap:
        return f'"{option}"' in tap.read()


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:  # 503 (HTTPError) while loading, or not answering yet
        return False


def populate(workdir: str, data_dir: str, count: int, dst: str, protocol: int = 1) -> None:
    """Write ``count`` registrations into a fresh store (bench.populate)."""
    subprocess.run(
        [PYTHON, "-m", "bench.populate", data_dir, str(count), dst, "--protocol", str(protocol)],
        check=True, cwd=workdir, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")),
    )


class Workdir:
    """A temporary directory for one run's logs and store, removed after."""

    def __init__(self, keep: bool = False) -> None:
        self.path = tempfile.mkdtemp(prefix="dcc-bench-")
        self.keep = keep

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
