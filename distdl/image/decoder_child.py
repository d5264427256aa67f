"""What runs inside an image decoder process (see :mod:`distdl.image.decoder_pool`).

Protocol over the child's stdin and stdout (``multiprocessing.connection`` framing): first
the pickled ``(options, work)``, then one raw body per image, each answered by a pickled
``ProcessedImage`` or ``ImageFailure``. The child exits when stdin closes, which is also
what happens when the rank dies. Its stdout is moved to stderr, so nothing a library prints
can corrupt the protocol.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection

from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image

Work = Callable[[bytes, ImageOptions], ProcessedImage | ImageFailure]
DEFAULT_WORK: Work = process_image

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_MMAP_THRESHOLD = 1024 * 1024
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def main() -> None:
    # scancel and `sbatch --signal` signal every process of the job: the rank decides when
    # its decoders stop (it kills them), so a graceful stop never turns an image into an error.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    requests = Connection(0, writable=False)
    replies = Connection(reply_fd, readable=False)
    options, work = requests.recv()
    _return_freed_pixels()
    serve(requests, replies, options, work)


def serve(requests: Connection, replies: Connection, options: ImageOptions, work: Work) -> None:
    """Answer one image at a time until the rank closes the pipe."""
    while True:
        try:
            data = requests.recv_bytes()
        except (EOFError, OSError):
            return
        replies.send(work(data, options))


def _return_freed_pixels() -> None:
    """Pin glibc's mmap threshold: past a large free() glibc raises it, after which big
    pixel buffers come from the heap and stay in the process's RSS once freed, so a decoder
    would keep the memory of its largest image for good."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to pin
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


if __name__ == "__main__":
    main()
