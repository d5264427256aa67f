"""The image pipeline in child processes, one image at a time each, under a time limit.

A thread cannot be stopped, so with a thread pool one pathological image could hold a
rank's pipeline forever. Each of the rank's decoders (``cpu_per_worker`` of them) is a child
process instead. The rank's event loop hands it bodies and reads its answers itself (its
pipes are watched by the loop, no thread in between); when an image has taken more than
``timeout`` seconds the loop kills the child (SIGKILL) and starts a fresh one: that image
becomes an ``IMAGE_TIMEOUT`` row and the other rows go on. A child that dies (a crash in a
codec, the OOM killer) costs its image an ``UNDECODABLE`` row, and is replaced too.

Why the loop and not a thread per decoder: between two images such a thread needs the GIL
(to take the answer, to hand over the next body), and waits for a busy event loop to let go
of it, up to the 5 ms switch interval each time, while its decoder sits idle. Here each
decoder holds up to ``QUEUED_PER_DECODER`` bodies in its pipe, so it starts its next image
the moment it has answered, whenever the loop gets round to reading that answer. A body
queued behind an image that times out (or kills its decoder) goes to the fresh decoder: only
the image being worked on is lost. Its time limit counts from when its decoder was free to
start it.

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

A body goes to the child through shared memory when it fits a slot (``SLOT_BYTES``): each
decoder has ``QUEUED_PER_DECODER`` slots in a memory file (Linux's ``memfd_create``), the
rank copies the body into a free one and writes only the slot's number and length to the
pipe; a slot is free again once the child has answered the body it held. Why: writing a
photo's body into a pipe costs the rank far more CPU than copying it into shared memory
(the kernel allocates and fills a page at a time and wakes the reader; the figures are in
benchmarks/README.md), and a rank driving several decoders is limited by its own CPU per
image. Larger bodies, and every body where memory files do not exist, go through the pipe
as raw bytes (no pickled copy).
Results come back pickled (the stored image: kilobytes to a few megabytes), framed as
``multiprocessing.connection`` frames them (:mod:`distdl.image.decoder_child` reads and
writes with a ``Connection``).

What a decoder writes to its stderr (libtiff's C warnings such as ``TIFFFillStrip`` or
``Using code not yet in table``, Pillow's Python warnings) never reaches the terminal: it
goes to a file of the rank's, and comes back with the image's answer (or, when the decoder
dies or is killed mid-image, is read from that file); the rank logs each line to the
``distdl.decoders`` logger (the rank's log file only, see :mod:`distdl.runtime.logs`) with
the URL of the image the decoder was working on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import distdl
from distdl.core import codes
from distdl.image.decoder_child import (
    DEFAULT_WORK,
    INLINE_BODY,
    SLOT_BODY,
    SLOT_REFERENCE,
    Reply,
    SharedSlots,
    Work,
    take_messages,
)
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage

log = logging.getLogger("distdl.worker")
decoder_log = logging.getLogger("distdl.decoders")  # the rank's log file, never the terminal

Answer = ProcessedImage | ImageFailure

# Two: the one being decoded and the next, waiting in the pipe. More would only hold more
# bodies per decoder (each one's memory is already claimed) and lose more time to a timeout.
QUEUED_PER_DECODER = 2
_KILL_WAIT = 5.0  # seconds to reap a killed child
_DEATH_WAIT = 0.5  # seconds for a child whose answers pipe closed to exit
_PIPE_BYTES = 1024 * 1024
# Most image bodies are well under this; a larger one goes through the pipe. Pages of the
# memory file are only allocated once touched: a decoder's slots hold about as much as the
# largest bodies it was sent.
SLOT_BYTES = 4 * 1024 * 1024
_READ_BYTES = 1024 * 1024
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


def _widen(fd: int) -> None:
    """Give a pipe room for a whole body (Linux: up to pipe-max-size, 1 MiB by default), so
    a body and the one queued behind it mostly go in one write each."""
    with contextlib.suppress(OSError, AttributeError):  # other systems, or a lower limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _frame_header(size: int) -> bytes:
    """``multiprocessing.connection``'s length prefix."""
    if size > 0x7FFFFFFF:
        return struct.pack("!iQ", -1, size)
    return struct.pack("!i", size)


class _Frames:
    """Whole frames out of the bytes read so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        frames: list[bytes] = []
        while len(self._buffer) >= 4:
            (size,) = struct.unpack_from("!i", self._buffer)
            start = 4
            if size == -1:
                if len(self._buffer) < 12:
                    break
                (size,) = struct.unpack_from("!Q", self._buffer, 4)
                start = 12
            if len(self._buffer) < start + size:
                break
            frames.append(bytes(self._buffer[start : start + size]))
            del self._buffer[: start + size]
        return frames


class _Slots:
    """A decoder's shared-memory slots, from the rank's side: which are free, and the copy
    of a body into one."""

    def __init__(self, fd: int, count: int, size: int) -> None:
        self.fd = fd
        self.layout = SharedSlots(fd, count, size)  # what the child maps
        self._memory = mmap.mmap(fd, count * size)
        self._free = list(range(count))

    @classmethod
    def open(cls, count: int, size: int) -> _Slots | None:
        """None where memory files do not exist or cannot be had (a file size limit,
        ``ulimit -f``, refuses one this large): bodies then all go through the pipe."""
        create = getattr(os, "memfd_create", None)
        if create is None:
            return None
        try:
            fd = create("distdl-decoder-bodies", os.MFD_CLOEXEC)
        except OSError:
            return None
        try:
            os.ftruncate(fd, count * size)
            return cls(fd, count, size)
        except OSError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise

    def put(self, data: bytes) -> int | None:
        """The slot now holding ``data``, or None if it does not fit or none is free."""
        if len(data) > self.layout.size or not self._free:
            return None
        slot = self._free.pop()
        start = slot * self.layout.size
        self._memory[start : start + len(data)] = data
        return slot

    def release(self, slot: int) -> None:
        self._free.append(slot)

    def close(self) -> None:
        self._memory.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


@dataclass(eq=False)
class _Job:
    data: bytes
    label: str
    answer: asyncio.Future[Answer]
    slot: int | None = None  # the shared-memory slot holding ``data`` while a decoder has it

    def settle(self, answer: Answer) -> None:
        if not self.answer.done():  # its caller may have given up on it
            self.answer.set_result(answer)


@dataclass(eq=False)
class _Child:
    """One decoder process, the rank's ends of its pipes and the jobs sent to it, oldest
    (the one it works on) first."""

    process: subprocess.Popen[bytes]
    to_child: int
    from_child: int
    messages: BinaryIO  # the child's stderr (see distdl.image.decoder_child)
    jobs: deque[_Job] = field(default_factory=deque)
    frames: _Frames = field(default_factory=_Frames)
    unsent: bytearray = field(default_factory=bytearray)
    deadline: asyncio.TimerHandle | None = None
    slots: _Slots | None = None

    @classmethod
    def start(cls, options: ImageOptions, work: Work) -> _Child:
        slots = _Slots.open(QUEUED_PER_DECODER, SLOT_BYTES)
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        _widen(to_child)
        _widen(from_child)
        messages = tempfile.TemporaryFile()  # noqa: SIM115 - as long as the child: close_pipes
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _child_code()],
                stdin=child_in,
                stdout=child_out,
                stderr=messages,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if not k.startswith(_MPI_ENV_PREFIXES)},
                pass_fds=(slots.fd,) if slots is not None else (),
            )
        except BaseException:
            for fd in (to_child, from_child):
                os.close(fd)
            messages.close()
            if slots is not None:
                slots.close()
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        child = cls(process, to_child, from_child, messages, slots=slots)
        settings = pickle.dumps((options, work, slots.layout if slots is not None else None))
        os.write(to_child, _frame_header(len(settings)) + settings)  # into an empty pipe
        os.set_blocking(to_child, False)
        os.set_blocking(from_child, False)
        return child

    def log(self, messages: str, label: str) -> None:
        """Each line the child wrote, as one event in the rank's log, naming the image."""
        where = f" ({label})" if label else ""
        for line in messages.splitlines():
            text = line.rstrip()
            if text:
                decoder_log.warning("decoder %d%s: %s", self.process.pid, where, text)

    def log_leftover(self) -> None:
        """What a child that died or was killed had written for its image in flight."""
        label = self.jobs[0].label if self.jobs else ""
        self.log(take_messages(self.messages.fileno()), label)

    def send(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        """Queue ``job``'s body in the pipe; what the pipe cannot take now goes when the
        loop finds it writable."""
        self.jobs.append(job)
        job.slot = self.slots.put(job.data) if self.slots is not None else None
        if job.slot is not None:
            reference = SLOT_BODY + SLOT_REFERENCE.pack(job.slot, len(job.data))
            parts = [_frame_header(len(reference)), reference]
        else:
            parts = [_frame_header(1 + len(job.data)), INLINE_BODY, job.data]
        if self.unsent:
            self.unsent += b"".join(parts)
            return
        try:
            written = os.writev(self.to_child, parts)
        except BlockingIOError:
            written = 0
        except OSError:  # the child is gone: its answers pipe tells the loop
            return
        if written < sum(map(len, parts)):
            self.unsent += b"".join(parts)[written:]
            loop.add_writer(self.to_child, self._write_unsent, loop)

    def settle_oldest(self, answer: Answer) -> None:
        """The child answered its oldest job: done with its body, whose slot is free."""
        job = self.jobs.popleft()
        if job.slot is not None and self.slots is not None:
            self.slots.release(job.slot)
        job.slot = None
        job.settle(answer)

    def _write_unsent(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            written = os.write(self.to_child, self.unsent)
        except BlockingIOError:
            return
        except OSError:
            written = len(self.unsent)  # the child is gone: its answers pipe tells the loop
        del self.unsent[:written]
        if not self.unsent:
            loop.remove_writer(self.to_child)

    def read_replies(self) -> list[Reply] | None:
        """The replies that arrived whole; None once the child has closed its end."""
        replies: list[Reply] = []
        while True:
            try:
                chunk = os.read(self.from_child, _READ_BYTES)
            except BlockingIOError:
                return replies
            except OSError:
                return None
            if not chunk:
                return replies or None  # the end is read again next time
            replies += [pickle.loads(frame) for frame in self.frames.feed(chunk)]

    def kill(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def reap(self) -> None:
        try:
            self.process.wait(_KILL_WAIT)
        except subprocess.TimeoutExpired:
            log.warning("image decoder process %d did not exit", self.process.pid)

    def close_pipes(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Its pipes and its slots (the bodies of its jobs stay in their ``data``, for the
        decoder that takes them next)."""
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.from_child)
            loop.remove_writer(self.to_child)
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.messages.close()
        if self.slots is not None:
            self.slots.close()
            self.slots = None

    def death(self) -> str:
        try:
            code = self.process.wait(_DEATH_WAIT)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


class DecoderPool:
    """``processes`` decoder processes; :meth:`process` runs the pipeline on one body.

    Driven by the event loop of the first :meth:`process` call; :meth:`close` from that
    loop's thread (or once it has stopped)."""

    def __init__(
        self, processes: int, options: ImageOptions, timeout: float, work: Work = DEFAULT_WORK
    ) -> None:
        if processes < 1 or timeout <= 0:
            raise ValueError("a decoder pool needs >= 1 process and a positive timeout")
        self.timeout = timeout
        self.replaced = 0  # children killed after a timeout, or found dead
        self._options = options
        self._work = work
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._waiting: deque[_Job] = deque()
        self._children: list[_Child] = []
        try:
            for _ in range(processes):
                self._children.append(_Child.start(options, work))
        except BaseException:
            self.close()  # the children already started
            raise

    @property
    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children]

    async def process(self, data: bytes, label: str = "") -> Answer:
        """``label`` (the image's URL) tags the lines the decoder writes to its stderr."""
        if self._closed:
            raise RuntimeError("the decoder pool is closed")
        loop = self._attach()
        job = _Job(data, label, loop.create_future())
        self._waiting.append(job)
        self._dispatch()
        return await job.answer

    def close(self) -> None:
        """Kill every decoder (a busy one's image is abandoned: its caller is cancelled)."""
        self._closed = True
        children, self._children = self._children, []
        for child in children:
            child.kill()
        for child in children:
            child.reap()
            child.close_pipes(self._loop)
        abandoned = [job for child in children for job in child.jobs] + list(self._waiting)
        self._waiting.clear()
        for job in abandoned:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                job.answer.cancel()

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            for child in self._children:
                self._watch(child)
        elif self._loop is not loop:
            raise RuntimeError("a decoder pool serves the event loop it started with")
        return loop

    def _watch(self, child: _Child) -> None:
        assert self._loop is not None
        self._loop.add_reader(child.from_child, self._on_readable, child)

    def _dispatch(self) -> None:
        """Hand waiting bodies to the decoders with the fewest queued, while any has room."""
        assert self._loop is not None
        if not self._children:
            self._fail_waiting("no image decoder process could be started")
        while self._waiting:
            child = min(self._children, key=lambda c: len(c.jobs), default=None)
            if child is None or len(child.jobs) >= QUEUED_PER_DECODER:
                return
            job = self._waiting.popleft()
            if job.answer.done():  # its caller gave up while it waited
                continue
            child.send(job, self._loop)
            if len(child.jobs) == 1:
                self._start_clock(child)

    def _start_clock(self, child: _Child) -> None:
        assert self._loop is not None
        child.deadline = self._loop.call_later(self.timeout, self._on_timeout, child)

    def _on_readable(self, child: _Child) -> None:
        replies = child.read_replies()
        for answer, messages in replies or ():
            if messages:  # of the image answered, or of the child's start (no answer)
                in_flight = answer is not None and child.jobs
                child.log(messages, child.jobs[0].label if in_flight else "")
            if answer is None:
                continue
            if child.deadline is not None:
                child.deadline.cancel()
            child.settle_oldest(answer)
            if child.jobs:
                self._start_clock(child)
        if replies is None:
            self._on_death(child)
        self._dispatch()

    def _on_timeout(self, child: _Child) -> None:
        failure = ImageFailure(
            codes.IMAGE_TIMEOUT,
            f"image processing took longer than image_timeout {self.timeout:g} s",
        )
        self._replace(child, failure, reap=True)

    def _on_death(self, child: _Child) -> None:
        reason = child.death()
        failure = ImageFailure(
            codes.UNDECODABLE, f"the image decoder process died on this image ({reason})"
        )
        self._replace(child, failure, reap=False)

    def _replace(self, child: _Child, failure: ImageFailure, *, reap: bool) -> None:
        """``child``'s current image fails; the bodies queued behind it wait for the next
        free decoder, first in line; a fresh decoder takes its place."""
        child.kill()
        if reap:
            child.reap()
        child.log_leftover()
        child.close_pipes(self._loop)
        if child.jobs:
            child.settle_oldest(failure)
        self._waiting.extendleft(reversed(child.jobs))
        child.jobs.clear()
        index = self._children.index(child)
        try:
            fresh = _Child.start(self._options, self._work)
        except Exception:
            # One decoder fewer; with none left, what waits fails rather than hanging.
            log.exception("cannot start an image decoder process")
            del self._children[index]
            self._dispatch()
            return
        self._children[index] = fresh
        self.replaced += 1
        self._watch(fresh)
        self._dispatch()

    def _fail_waiting(self, why: str) -> None:
        while self._waiting:
            self._waiting.popleft().settle(ImageFailure(codes.UNDECODABLE, why))
