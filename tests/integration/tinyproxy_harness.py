"""A real forward proxy on loopback for the proxy tests: Debian's ``tinyproxy``, started in
the foreground with a generated config and stopped by its pid.

It listens on 127.0.0.1, allows only 127.0.0.0/8, has no upstream, and opens its outgoing
connections from :data:`PROXY_SOURCE`, so a server can tell a request that came through it
(``request.remote == PROXY_SOURCE``) from a direct one (from 127.0.0.1). Its log names every
request it handled: ``GET http://host:port/path HTTP/1.1`` for plain http (absolute form),
``CONNECT host:port HTTP/1.1`` for a tunnel.

Missing tinyproxy skips the tests, unless ``DISTDL_REQUIRE_TINYPROXY=1`` (CI) makes it a
failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# The address tinyproxy connects to servers from: loopback, and not 127.0.0.1 (where direct
# connections come from).
PROXY_SOURCE = "127.0.0.77"
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+ \S+) HTTP/")
_STARTUP_SECONDS = 10.0


@dataclass(frozen=True)
class Tinyproxy:
    url: str  # http://127.0.0.1:PORT, or with user:password@ when it asks for credentials
    log_path: Path

    def requests(self) -> list[str]:
        """``METHOD target`` of every request it handled, in order."""
        text = self.log_path.read_text(errors="replace")
        return [match.group(1) for match in _REQUEST.finditer(text)]


def tinyproxy_binary() -> str:
    """Its path, or skip (fail under ``DISTDL_REQUIRE_TINYPROXY=1``) when it is missing."""
    found = shutil.which("tinyproxy") or shutil.which("tinyproxy", path="/usr/sbin:/usr/bin")
    if found is None:
        reason = "tinyproxy is not installed (apt-get install tinyproxy)"
        if os.environ.get("DISTDL_REQUIRE_TINYPROXY") == "1":
            pytest.fail(f"DISTDL_REQUIRE_TINYPROXY=1 but {reason}")
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(port: int, log_path: Path, credentials: tuple[str, str] | None) -> str:
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        f"Bind {PROXY_SOURCE}",
        "Timeout 30",
        f'LogFile "{log_path}"',
        "LogLevel Connect",  # one line per connection and per request
        "MaxClients 64",
        "Allow 127.0.0.0/8",
        "DisableViaHeader Yes",
    ]
    # No ConnectPort line: CONNECT is allowed to every port (the test servers' are random).
    if os.geteuid() == 0:
        # As root tinyproxy would otherwise warn and keep root; it needs to read nothing
        # and writes only its log, which this user owns.
        lines += ["User root", "Group root"]
    if credentials is not None:
        lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
    return "\n".join(lines) + "\n"


@contextmanager
def running_tinyproxy(
    folder: Path, credentials: tuple[str, str] | None = None
) -> Iterator[Tinyproxy]:
    """A tinyproxy for the duration of the block (a new free port if one was taken)."""
    binary = tinyproxy_binary()
    for attempt in range(3):
        port = _free_port()
        log_path = folder / f"tinyproxy-{port}.log"
        config_path = folder / f"tinyproxy-{port}.conf"
        config_path.write_text(_config(port, log_path, credentials))
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if _wait_listening(process, port):
                user = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
                yield Tinyproxy(f"http://{user}127.0.0.1:{port}", log_path)
                return
        finally:
            _stop(process)
        if attempt == 2:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise RuntimeError(f"tinyproxy did not start: {stderr}\n{log}")


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False  # the port was taken meanwhile, or the config was refused
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
