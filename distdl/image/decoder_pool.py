"""The image pipeline in child processes, one image at a time each, under a time limit.

A thread cannot be stopped, so with a thread pool one pathological image could hold a
rank's pipeline forever. Each of the rank's decoders (two per ``cpu_per_worker``) is a child
process instead; a thread of the rank hands it the body and waits for the answer at most
``timeout`` seconds, then kills the child (SIGKILL) and starts a fresh one: that image
becomes an ``IMAGE_TIMEOUT`` row and the other rows go on. A child that dies (a crash in a
codec, the OOM killer) costs its image an ``UNDECODABLE`` row, and is replaced too.

Why not ``concurrent.futures.ProcessPoolExecutor``: a running task cannot be cancelled,
killing one of its processes breaks the whole pool (every pending future fails with
``BrokenProcessPool``), and ``max_tasks_per_child`` only recycles processes that finished.

Why a fresh interpreter (``python -c``) rather than ``multiprocessing``'s fork or
forkserver: forking a rank that has threads may copy a lock one of them held, and both
multiprocessing start methods re-run the parent's main script in the child when it has no
``if __name__ == "__main__"`` guard (a user's script calling ``download_images()`` would run
again in every decoder). The child imports the same ``distdl`` as the rank, runs in its own
session (a Ctrl-C in the terminal goes to the rank, which stops its decoders) and exits when
its stdin closes or its rank dies (Linux's parent-death signal, even mid-image), so decoders
never outlive their rank. A start costs about half a second, paid once per decoder and once
per timeout.

Bodies go to the child as raw bytes (no pickled copy); results come back pickled (the
stored image: kilobytes to a few megabytes).

What a decoder writes to its stderr (libtiff's C warnings such as ``TIFFFillStrip`` or
``Using code not yet in table``, Pillow's Python warnings) never reaches the terminal: a
thread of the rank reads it line by line and logs each line to the ``distdl.decoders``
logger (the rank's log file only, see :mod:`distdl.runtime.logs`) with the URL of the image
the decoder was working on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import distdl
from distdl.core import codes
from distdl.image.decoder_child import DEFAULT_WORK, Work
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage

log = logging.getLogger("distdl.worker")
decoder_log = logging.getLogger("distdl.decoders")  # the rank's log file, never the terminal

_KILL_WAIT = 5.0  # seconds to reap a killed child
_PIPE_BYTES = 1024 * 1024
# A decoder is no MPI process: without these, tools that find ranks by their environment
# (PMI_RANK, ...) would take a decoder for its rank.
_MPI_ENV_PREFIXES = ("PMI_", "PMIX_", "OMPI_")
# sys.path[0] is the working folder under -c: the child must import the rank's distdl.
_PACKAGE_ROOT = str(Path(distdl.__file__).resolve().parent.parent)


def _child_code() -> str:
    return (
        f"import sys; sys.path[0] = {_PACKAGE_ROOT!r}; "
        f"from distdl.image.decoder_child import main; main({os.getpid()})"
    )


class _ChildDied(Exception):
    pass


def _widen(fd: int) -> None:
    """Give a pipe room for a whole body (Linux: up to pipe-max-size, 1 MiB by default).

    Through the default 64 KiB a 200 KB body goes in several writes, and between two of
    them the rank's image thread must take the GIL back from a busy event loop (up to the
    5 ms switch interval each time) while its decoder sits idle. One write, one wait.
    """
    with contextlib.suppress(OSError, AttributeError):  # other systems, or a lower limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class _Child:
    """One decoder process and the rank's ends of its pipes."""

    def __init__(self, options: ImageOptions, work: Work) -> None:
        self.label = ""  # the URL of the image it works on, for its stderr lines
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        _widen(to_child)
        _widen(from_child)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _child_code()],
                stdin=child_in,
                stdout=child_out,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if not k.startswith(_MPI_ENV_PREFIXES)},
            )
        except BaseException:
            for fd in (to_child, from_child):
                os.close(fd)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self._requests = Connection(to_child, readable=False)
        self._replies = Connection(from_child, writable=False)
        self._stderr = threading.Thread(
            target=self._log_stderr, name=f"decoder-{self.process.pid}-stderr", daemon=True
        )
        self._stderr.start()
        self._requests.send((options, work))

    def _log_stderr(self) -> None:
        """Each line the child writes to its stderr, as one event in the rank's log."""
        assert self.process.stderr is not None
        with self.process.stderr:
            for raw in self.process.stderr:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    where = f" ({self.label})" if self.label else ""
                    decoder_log.warning("decoder %d%s: %s", self.process.pid, where, line)

    def run(
        self, data: bytes, timeout: float, label: str = ""
    ) -> ProcessedImage | ImageFailure | None:
        """The child's answer for ``data``; None past ``timeout`` s; raises _ChildDied.
        ``label`` (its URL) tags what the child writes to its stderr meanwhile."""
        self.label = label
        try:
            self._requests.send_bytes(data)
            if not self._replies.poll(timeout):
                return None
            answer: ProcessedImage | ImageFailure = self._replies.recv()
        except (EOFError, OSError) as exc:
            raise _ChildDied from exc
        return answer

    def stop(self) -> None:
        self.process.kill()
        try:
            self.process.wait(_KILL_WAIT)
        except subprocess.TimeoutExpired:
            log.warning("image decoder process %d did not exit", self.process.pid)
        self._requests.close()
        self._replies.close()

    def death(self) -> str:
        try:
            code = self.process.wait(_KILL_WAIT)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


class DecoderPool:
    """``processes`` decoder processes; :meth:`process` runs the pipeline on one body."""

    def __init__(
        self, processes: int, options: ImageOptions, timeout: float, work: Work = DEFAULT_WORK
    ) -> None:
        if processes < 1 or timeout <= 0:
            raise ValueError("a decoder pool needs >= 1 process and a positive timeout")
        self.timeout = timeout
        self.replaced = 0  # children killed after a timeout, or found dead
        self._options = options
        self._work = work
        self._lock = threading.Lock()
        self._closed = False
        self._children: set[_Child] = set()
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._threads = ThreadPoolExecutor(processes, thread_name_prefix="image")
        try:
            for _ in range(processes):
                self._idle.put(self._spawn())
        except BaseException:
            self.close()  # the children already started
            raise

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [child.process.pid for child in self._children]

    async def process(self, data: bytes, label: str = "") -> ProcessedImage | ImageFailure:
        """``label`` (the image's URL) tags the lines the decoder writes to its stderr."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._process, data, label)

    def close(self) -> None:
        """Kill every decoder (a busy one's image is abandoned) and join the threads."""
        with self._lock:
            self._closed = True
            children = list(self._children)
        for child in children:
            child.stop()
        self._threads.shutdown(wait=True, cancel_futures=True)

    def _process(self, data: bytes, label: str) -> ProcessedImage | ImageFailure:
        child = self._idle.get()
        replace = True  # unless the child answers in time
        try:
            answer = child.run(data, self.timeout, label)
            if answer is None:
                return ImageFailure(
                    codes.IMAGE_TIMEOUT,
                    f"image processing took longer than image_timeout {self.timeout:g} s",
                )
            replace = False
            return answer
        except _ChildDied:
            return ImageFailure(
                codes.UNDECODABLE,
                f"the image decoder process died on this image ({child.death()})",
            )
        finally:
            self._idle.put(self._replace(child) if replace else child)

    def _spawn(self) -> _Child:
        child = _Child(self._options, self._work)
        with self._lock:
            self._children.add(child)
        return child

    def _replace(self, child: _Child) -> _Child:
        child.stop()
        with self._lock:
            if self._closed:
                return child
            self._children.discard(child)
            self.replaced += 1
        try:
            return self._spawn()
        except Exception:
            # Keep the dead one: its next image finds it dead and tries again.
            log.exception("cannot start an image decoder process")
            return child
