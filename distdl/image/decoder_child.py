"""What runs inside an image decoder process (see :mod:`distdl.image.decoder_pool`).

Protocol over the child's stdin and stdout (``multiprocessing.connection`` framing): first
the pickled ``(options, work, shared)``, then one frame per image, each answered by a
pickled :data:`Reply`: ``(answer, messages)``, the ``ProcessedImage`` or ``ImageFailure``
and what the process wrote to its stderr while working on that image. An image's frame is
``INLINE_BODY`` and the raw body, or ``SLOT_BODY`` and where in the shared memory file
``shared`` describes the rank put the body (slot, length); the rank leaves that slot alone
until it has the answer. What the child writes before its first image comes as a reply of
its own, ``(None, messages)``. The child exits when stdin closes, and is killed when its
rank dies (on Linux, even in the middle of an image).

Its stderr (and its stdout, moved there so that nothing a library prints can corrupt the
protocol) is a file the rank opened, in append mode: after each image the child takes what
was written to it and empties it. Why a file and not a pipe the rank reads: the rank must
know which image a line came from, and over a pipe that took a marker line after every
image, which woke a reader thread of the rank once an image (what that cost the rank:
benchmarks/README.md). When a child dies or is killed mid-image, what that image
made it write is still in the file, for the rank to read.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import mmap
import os
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image

Work = Callable[[bytes, ImageOptions], ProcessedImage | ImageFailure]
Reply = tuple[ProcessedImage | ImageFailure | None, str]
DEFAULT_WORK: Work = process_image
INLINE_BODY = b"B"  # the body follows in the frame
SLOT_BODY = b"S"  # SLOT_REFERENCE follows: the body is in shared memory
SLOT_REFERENCE = struct.Struct("!BI")  # slot, length
# What one image's messages may take in the rank's log; a codec in a loop can write
# megabytes of the same warning.
MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class SharedSlots:
    """The memory file the rank passes bodies in: ``count`` slots of ``size`` bytes."""

    fd: int
    count: int
    size: int


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
_M_MMAP_THRESHOLD = -3
# Pillow allocates an image in blocks of at most 16 MiB: blocks of big images are mapped
# and unmapped (returned at once), smaller images reuse the heap, which keeps at most
# _TRIM_THRESHOLD of free memory (trimming after every image costs 30% in page faults).
_MMAP_THRESHOLD = 16 * 1024 * 1024
_TRIM_THRESHOLD = 64 * 1024 * 1024
_PR_SET_PDEATHSIG = 1  # Linux prctl option
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def main(rank_pid: int) -> None:
    _die_with_rank(rank_pid)
    # scancel and `sbatch --signal` signal every process of the job: the rank decides when
    # its decoders stop (it kills them), so a graceful stop never turns an image into an error.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    _append_only(2)
    requests = Connection(0, writable=False)
    replies = Connection(reply_fd, readable=False)
    options, work, shared = requests.recv()
    _return_freed_pixels()
    slots = None
    if shared is not None:
        slots = mmap.mmap(shared.fd, shared.count * shared.size, prot=mmap.PROT_READ)
        os.close(shared.fd)
    early = _own_messages()
    if early:
        replies.send((None, early))
    serve(requests, replies, options, work, slots, shared.size if shared else 0)


def serve(
    requests: Connection,
    replies: Connection,
    options: ImageOptions,
    work: Work,
    slots: mmap.mmap | None = None,
    slot_size: int = 0,
) -> None:
    """Answer one image at a time until the rank closes the pipe (or is gone)."""
    while True:
        try:
            data = _body(requests.recv_bytes(), slots, slot_size)
            answer = work(data, options)
            reply: Reply = (answer, _own_messages())
            replies.send(reply)
        except (EOFError, OSError):  # the rank closed our pipes, or died mid-image
            return


def _own_messages() -> str:
    """What this process wrote to its stderr (Python's buffers flushed first: stdout is the
    same file here) since the last call."""
    with contextlib.suppress(OSError):  # a full disk loses the lines, never the image
        sys.stdout.flush()
        sys.stderr.flush()
    return take_messages(2)


def take_messages(fd: int) -> str:
    """What was written to the messages file ``fd`` since the last call, which empties it;
    "" when nothing was (one ``fstat``: the common case costs next to nothing). The rank
    calls it too, for what a dead decoder left.

    Past a file size limit (``ulimit -f``) a write to the file fails with EFBIG (Python
    ignores SIGXFSZ): a line is lost, never the image."""
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return ""
        written = os.pread(fd, min(size, MESSAGE_BYTES), 0)
        os.ftruncate(fd, 0)  # append mode: the next line starts the file again
    except OSError:
        return ""
    text = written.decode("utf-8", errors="replace")
    if size > MESSAGE_BYTES:
        text += f"\n[{size - MESSAGE_BYTES} more bytes of messages left out]"
    return text


def _append_only(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)


def _body(frame: bytes, slots: mmap.mmap | None, slot_size: int) -> bytes:
    """An image's body, out of its frame or out of the slot the frame names."""
    if frame[:1] == SLOT_BODY and slots is not None:
        slot, length = SLOT_REFERENCE.unpack_from(frame, 1)
        start = slot * slot_size
        return slots[start : start + length]
    return frame[1:]


def _die_with_rank(rank_pid: int) -> None:
    """Be killed when the rank dies, even in the middle of an image (the pipe only tells an
    idle child). Linux only; elsewhere a child exits at its next read."""
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != rank_pid:  # the rank died before we asked
        os._exit(0)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _return_freed_pixels() -> None:
    """Fix glibc's thresholds: left dynamic, glibc raises them past a large free(), after
    which big pixel buffers come from the heap and stay in the process's RSS once freed, so
    a decoder would keep the memory of its largest image for good."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
