"""The unthrottled host of raw_bench.py: nginx serving the corpus files, or the simulated
fleet's host (``distdl/testing/fleet.py``) serving them from memory.

nginx is what a real image server is (C, sendfile): at the bare loop's rate it takes a few
percent of a core, where the fleet's Python host takes about a millisecond of CPU a request
on the cores distdl is measured on. Its URLs are ``/<variant>.jpg?id=<i>``: distinct URLs
(distdl's rows), the variant's bytes as they are. The fleet's host tags each body with its
id (:func:`raw_corpus.tagged`), so there every body is distinct too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psutil
from raw_corpus import tagged

from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_content import ImageCache, ImageRequest
from distdl.testing.fleet_thread import FleetThread

NGINX_IP = "127.0.2.1"  # apart from the fleets other benchmarks and tests run on 127.0.1.x
_NGINX_CONF = """\
{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ image/jpeg jpg; }}
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen {ip}:{port};
        root {root};
        location = /robots.txt {{ return 200 "User-agent: *\\nAllow: /\\n"; }}
    }}
}}
"""


class CorpusImages(ImageCache):
    """The fleet's image source replaced by the corpus: image ``i`` is variant ``i % V``,
    tagged with ``i``."""

    def __init__(self, variants: list[bytes]) -> None:
        super().__init__()
        self._variants = variants

    async def get(self, request: ImageRequest) -> bytes:
        return tagged(self._variants[request.image_id % len(self._variants)], request.image_id)


class NginxHost:
    """nginx on a free port of ``NGINX_IP``, serving the ``*.jpg`` files of ``root``."""

    def __init__(self, root: Path, binary: str = "nginx") -> None:
        self._files = sorted(p.name for p in root.glob("*.jpg"))
        self._root = root
        self._binary = binary
        self._prefix = Path(tempfile.mkdtemp(prefix="raw-nginx-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> NginxHost:
        self.port = _free_port(NGINX_IP)
        (self._prefix / "tmp").mkdir()
        conf = self._prefix / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                # as root, nginx's workers would run as nobody, who cannot read root's cache
                user="user root;\n" if os.geteuid() == 0 else "",
                prefix=self._prefix,
                ip=NGINX_IP,
                port=self.port,
                root=self._root,
            )
        )
        command = [self._binary, "-p", str(self._prefix), "-c", str(conf)]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        _wait_listening(NGINX_IP, self.port, self._process)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        shutil.rmtree(self._prefix, ignore_errors=True)

    def url(self, image_id: int) -> str:
        name = self._files[image_id % len(self._files)]
        return f"http://{NGINX_IP}:{self.port}/{name}?id={image_id}"

    def cpu_seconds(self) -> float:
        """CPU time of the nginx processes so far."""
        assert self._process is not None
        master = psutil.Process(self._process.pid)
        total = 0.0
        for process in (master, *master.children(recursive=True)):
            times = process.cpu_times()
            total += times.user + times.system
        return total


class FleetHost:
    """The simulated fleet's host ``raw``, no rate limit, serving the corpus; its CPU is
    this process's (the fleet runs in a thread here)."""

    name = "raw"

    def __init__(self, variants: list[bytes]) -> None:
        self._thread = FleetThread([HostSpec(self.name)], images=CorpusImages(variants))

    def __enter__(self) -> FleetHost:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._thread.stop()

    def url(self, image_id: int) -> str:
        return self._thread.fleet.image_url(self.name, image_id, "jpeg", 1024, 768)

    def cpu_seconds(self) -> float:
        return time.process_time()


def _free_port(ip: str) -> int:
    with socket.socket() as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


def _wait_listening(ip: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}")
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nginx did not listen on {ip}:{port}")
