"""What runs inside an image decoder process (see :mod:`distdl.image.decoder_pool`).

Protocol over the child's stdin and stdout (``multiprocessing.connection`` framing): first
the pickled ``(options, work, shared)``, then one frame per image, each answered by a
pickled ``ProcessedImage`` or ``ImageFailure``. An image's frame is ``INLINE_BODY`` and the
raw body, or ``SLOT_BODY`` and where in the shared memory file ``shared`` describes the
rank put the body (slot, length); the rank leaves that slot alone until it has the answer.
The child exits when stdin closes, and is killed when its rank dies (on Linux, even in the
middle of an image). Its stdout is moved to stderr, so nothing a library prints can corrupt
the protocol.
"""

from __future__ import annotations

import ctypes
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
DEFAULT_WORK: Work = process_image
# Written to stderr after each image, before its answer: the rank reads stderr and answers
# through different pipes, in no fixed order, and this line tells it which image the lines
# before it came from.
IMAGE_DONE = b"\x1e distdl: image done\n"
INLINE_BODY = b"B"  # the body follows in the frame
SLOT_BODY = b"S"  # SLOT_REFERENCE follows: the body is in shared memory
SLOT_REFERENCE = struct.Struct("!BI")  # slot, length


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
    requests = Connection(0, writable=False)
    replies = Connection(reply_fd, readable=False)
    options, work, shared = requests.recv()
    _return_freed_pixels()
    slots = None
    if shared is not None:
        slots = mmap.mmap(shared.fd, shared.count * shared.size, prot=mmap.PROT_READ)
        os.close(shared.fd)
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
            sys.stdout.flush()  # what Python printed (stdout is stderr here) goes first
            sys.stderr.flush()
            os.write(2, IMAGE_DONE)
            replies.send(answer)
        except (EOFError, OSError):  # the rank closed our pipes, or died mid-image
            return


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
