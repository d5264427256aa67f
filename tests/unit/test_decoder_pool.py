"""Decoder processes: images processed in children, a time limit per image, a child that
dies or stalls replaced while the other images go on, nothing left behind on close."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from distdl.core import codes
from distdl.image import decoder_child, decoder_pool
from distdl.image.decoder_pool import DecoderPool, _Slots
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage
from distdl.testing.image_samples import make_image_bytes
from distdl.testing.slow_images import (
    NOISE_LINE,
    SLOW_SECONDS_ENV,
    body_digest,
    crash_on_gif,
    gif_never_ends,
    loud_on_gif,
    noisy_crash_on_gif,
    noisy_on_gif,
    slow_process_image,
)

JPEG = make_image_bytes("jpeg", 800, 600, seed=1)
GIF = make_image_bytes("gif", 64, 64, seed=2)


@pytest.fixture
def pools() -> Iterator[list[DecoderPool]]:
    opened: list[DecoderPool] = []
    yield opened
    for pool in opened:
        pool.close()


async def test_images_are_processed_in_child_processes(pools: list[DecoderPool]) -> None:
    pool = DecoderPool(2, ImageOptions(image_size=256), timeout=60)
    pools.append(pool)
    results = await asyncio.gather(*(pool.process(JPEG) for _ in range(6)))
    assert all(isinstance(r, ProcessedImage) and max(r.resized_size) == 256 for r in results)
    assert len(pool.pids) == 2 and os.getpid() not in pool.pids
    failure = await pool.process(b"not an image")
    assert isinstance(failure, ImageFailure) and failure.error_code == codes.UNDECODABLE


async def test_an_image_past_the_time_limit_is_a_row_and_its_process_is_replaced(
    pools: list[DecoderPool],
) -> None:
    pool = DecoderPool(1, ImageOptions(), timeout=1.0, work=gif_never_ends)
    pools.append(pool)
    stalled_pid = pool.pids[0]
    stalled, after = await asyncio.gather(pool.process(GIF), pool.process(JPEG))
    assert isinstance(stalled, ImageFailure)
    assert stalled.error_code == codes.IMAGE_TIMEOUT
    assert "image_timeout 1 s" in stalled.error_msg
    assert isinstance(after, ProcessedImage)  # the one decoder was freed for the next image
    assert pool.replaced == 1 and pool.pids != [stalled_pid]
    assert not psutil.pid_exists(stalled_pid) or psutil.Process(stalled_pid).status() == "zombie"


async def test_a_decoder_that_dies_costs_only_its_image(pools: list[DecoderPool]) -> None:
    pool = DecoderPool(1, ImageOptions(), timeout=60, work=crash_on_gif)
    pools.append(pool)
    crashed = await pool.process(GIF)
    assert isinstance(crashed, ImageFailure) and crashed.error_code == codes.UNDECODABLE
    assert "SIGABRT" in crashed.error_msg
    assert isinstance(await pool.process(JPEG), ProcessedImage)
    assert pool.replaced == 1


async def test_decoders_do_not_pass_for_mpi_ranks(
    pools: list[DecoderPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMI_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    pool = DecoderPool(1, ImageOptions(), timeout=60)
    pools.append(pool)
    # Once it has answered, its exec is over: right after Popen returns, the kernel may not
    # have set up the new environment yet, and /proc shows none.
    assert isinstance(await pool.process(JPEG), ProcessedImage)
    env = psutil.Process(pool.pids[0]).environ()
    assert "PMI_RANK" not in env and "OMPI_COMM_WORLD_RANK" not in env
    assert env.get("PATH") == os.environ.get("PATH")  # the rest is inherited


async def test_decoders_ignore_stop_signals_meant_for_the_job(pools: list[DecoderPool]) -> None:
    pool = DecoderPool(1, ImageOptions(), timeout=60)
    pools.append(pool)
    assert isinstance(await pool.process(JPEG), ProcessedImage)  # the child is up
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        os.kill(pool.pids[0], signum)
    await asyncio.sleep(0.2)
    assert isinstance(await pool.process(JPEG), ProcessedImage)
    assert pool.replaced == 0


async def test_close_kills_every_decoder_even_a_busy_one() -> None:
    pool = DecoderPool(2, ImageOptions(), timeout=600, work=gif_never_ends)
    pids = pool.pids
    busy = asyncio.ensure_future(pool.process(GIF))
    await asyncio.sleep(0.5)
    pool.close()
    with pytest.raises(asyncio.CancelledError):
        await busy  # its caller is not left waiting
    for pid in pids:
        assert not psutil.pid_exists(pid)


async def test_bodies_queued_behind_a_stalled_or_dead_decoder_go_to_its_replacement(
    pools: list[DecoderPool],
) -> None:
    for work, code in ((gif_never_ends, codes.IMAGE_TIMEOUT), (crash_on_gif, codes.UNDECODABLE)):
        pool = DecoderPool(1, ImageOptions(), timeout=1.0, work=work)
        pools.append(pool)
        lost, *queued = await asyncio.gather(*(pool.process(b) for b in (GIF, JPEG, JPEG, JPEG)))
        assert isinstance(lost, ImageFailure) and lost.error_code == code
        assert all(isinstance(answer, ProcessedImage) for answer in queued)
        assert pool.replaced == 1


async def test_the_time_limit_counts_from_when_a_decoder_starts_the_image(
    pools: list[DecoderPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SLOW_SECONDS_ENV, "0.5")  # read by the decoder process
    pool = DecoderPool(1, ImageOptions(), timeout=1.2, work=slow_process_image)
    pools.append(pool)
    answers = await asyncio.gather(*(pool.process(JPEG) for _ in range(5)))  # 2.5 s in all
    assert all(isinstance(answer, ProcessedImage) for answer in answers)
    assert pool.replaced == 0


async def test_callers_that_give_up_do_not_break_the_pool(
    pools: list[DecoderPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SLOW_SECONDS_ENV, "0.2")
    pool = DecoderPool(1, ImageOptions(), timeout=60, work=slow_process_image)
    pools.append(pool)
    given_up = [asyncio.ensure_future(pool.process(JPEG)) for _ in range(4)]
    await asyncio.sleep(0.05)
    for task in given_up:  # one in the decoder, one queued in its pipe, two in the rank
        task.cancel()
    assert isinstance(await pool.process(JPEG), ProcessedImage)
    assert all(task.cancelled() for task in given_up) and pool.replaced == 0


_RANK = """
import asyncio, sys
from distdl.image import decoder_pool
from distdl.image.decoder_pool import DecoderPool, _Slots
from distdl.image.pipeline import ImageOptions
from distdl.testing.slow_images import gif_never_ends
async def main():
    pool = DecoderPool(2, ImageOptions(), timeout=600, work=gif_never_ends)
    print(*pool.pids, flush=True)
    await pool.process(sys.stdin.buffer.read())  # one decoder busy for ever
asyncio.run(main())
"""


def test_decoders_do_not_outlive_a_killed_rank() -> None:
    rank = subprocess.Popen(
        [sys.executable, "-c", _RANK], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert rank.stdout is not None and rank.stdin is not None
    pids = [int(pid) for pid in rank.stdout.readline().split()]
    rank.stdin.write(GIF)
    rank.stdin.close()
    children = [psutil.Process(pid) for pid in pids]
    time.sleep(1.0)  # the busy one has its image
    rank.kill()
    rank.wait()
    _gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, alive


def test_answers_are_read_back_whole_however_the_pipe_splits_them() -> None:
    """The rank reads what the child's ``multiprocessing.connection`` writes, in any chunks."""
    from multiprocessing.connection import Connection

    from distdl.image.decoder_pool import _frame_header, _Frames

    read_end, write_end = os.pipe()
    sent = [b"", b"x" * 30_000, bytes(range(256))]  # within the pipe: no reader yet
    with Connection(write_end, readable=False) as writer:
        for payload in sent:
            writer.send_bytes(payload)
    with os.fdopen(read_end, "rb") as pipe:
        stream = pipe.read()
    frames = _Frames()
    chunks = [stream[at : at + 3] for at in range(0, len(stream), 3)]  # headers split too
    received = [frame for chunk in chunks for frame in frames.feed(chunk)]
    assert received == sent
    assert _Frames().feed(_frame_header(3) + b"abc" + _frame_header(5) + b"de") == [b"abc"]


def _noise(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The logged lines that carry ``NOISE_LINE``."""
    return [r.getMessage() for r in caplog.records if NOISE_LINE.decode() in r.getMessage()]


async def test_a_decoders_stderr_lines_name_the_image_that_wrote_them(
    pools: list[DecoderPool], caplog: pytest.LogCaptureFixture
) -> None:
    # Each GIF's line leaves through stderr and its answer through another pipe, right
    # after: the rank often reads the answer (and sends the next body) first.
    caplog.set_level(logging.WARNING, logger="distdl.decoders")
    pool = DecoderPool(2, ImageOptions(image_size=64), timeout=60, work=noisy_on_gif)
    pools.append(pool)
    images = [(GIF, f"gif-{i}") if i % 2 else (JPEG, f"jpeg-{i}") for i in range(40)]
    await asyncio.gather(*(pool.process(data, label) for data, label in images))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        noise = _noise(caplog)
        if len(noise) == 20:
            break
        await asyncio.sleep(0.05)
    assert len(noise) == 20
    assert all("(gif-" in line for line in noise), noise


async def test_what_a_decoder_wrote_before_it_crashed_names_the_image_that_crashed_it(
    pools: list[DecoderPool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="distdl.decoders")
    pool = DecoderPool(1, ImageOptions(image_size=64), timeout=60, work=noisy_crash_on_gif)
    pools.append(pool)
    labelled = [(JPEG, "jpeg-1"), (GIF, "gif-2"), (JPEG, "jpeg-3")]
    answers = await asyncio.gather(*(pool.process(data, label) for data, label in labelled))
    assert [type(answer) for answer in answers] == [ProcessedImage, ImageFailure, ProcessedImage]
    noise = _noise(caplog)
    assert len(noise) == 1 and "(gif-2)" in noise[0], noise


def test_a_decoder_under_a_file_size_limit_loses_lines_past_it_never_an_image() -> None:
    """``ulimit -f`` applies to the file a decoder's stderr goes to: a write past it fails
    (no SIGXFSZ), the image's answer still comes, and the file starts again at the next."""
    code = (
        "import asyncio, resource\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))\n"
        "from distdl.image.decoder_pool import DecoderPool\n"
        "from distdl.image.pipeline import ImageOptions\n"
        "from distdl.testing.image_samples import make_image_bytes\n"
        "from distdl.testing.slow_images import loud_on_gif\n"
        "gif, jpeg = make_image_bytes('gif', 64, 64, seed=2), make_image_bytes('jpeg', 80, 60)\n"
        "async def main():\n"
        "    pool = DecoderPool(1, ImageOptions(image_size=64), timeout=60, work=loud_on_gif)\n"
        "    answers = [await pool.process(body) for body in (gif, jpeg, gif, jpeg)]\n"
        "    print(pool.replaced, [type(a).__name__ for a in answers])\n"
        "    pool.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    replaced, kinds = done.stdout.strip().split(" ", 1)
    assert replaced == "0"
    assert kinds == "['ImageFailure', 'ProcessedImage', 'ImageFailure', 'ProcessedImage']"


async def test_an_image_that_fills_the_log_is_cut_short_in_it(
    pools: list[DecoderPool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="distdl.decoders")
    pool = DecoderPool(1, ImageOptions(image_size=64), timeout=60, work=loud_on_gif)
    pools.append(pool)
    assert isinstance(await pool.process(GIF, "gif-1"), ImageFailure)
    assert isinstance(await pool.process(JPEG, "jpeg-2"), ProcessedImage)
    lines = [r.getMessage() for r in caplog.records]
    assert all("(gif-1)" in line for line in lines)
    assert sum(len(line) for line in lines) < 2 * decoder_child.MESSAGE_BYTES
    assert "more bytes of messages left out" in lines[-1]


def _bodies(count: int, largest: int) -> list[bytes]:
    rng = random.Random(7)
    return [rng.randbytes(rng.randint(0, largest)) for _ in range(count)]


@pytest.mark.parametrize("shared_memory", [True, False])
async def test_every_body_reaches_its_decoder_whole_whichever_way_it_goes(
    pools: list[DecoderPool], monkeypatch: pytest.MonkeyPatch, shared_memory: bool
) -> None:
    # Slots of 64 KiB: about half the bodies fit one, the others go through the pipe; with
    # many callers at once every slot is reused while others are in flight.
    monkeypatch.setattr(decoder_pool, "SLOT_BYTES", 64 * 1024)
    if not shared_memory:  # a system without memory files
        monkeypatch.delattr(os, "memfd_create", raising=False)
    in_slots: list[int] = []
    put = _Slots.put

    def counted_put(slots: _Slots, data: bytes) -> int | None:
        slot = put(slots, data)
        if slot is not None:
            in_slots.append(len(data))
        return slot

    monkeypatch.setattr(_Slots, "put", counted_put)
    pool = DecoderPool(2, ImageOptions(), timeout=60, work=body_digest)
    pools.append(pool)
    bodies = _bodies(120, 128 * 1024)
    answers = await asyncio.gather(*(pool.process(body) for body in bodies))
    assert (len(in_slots) > 20) is shared_memory
    for body, answer in zip(bodies, answers, strict=True):
        assert isinstance(answer, ProcessedImage)
        assert answer.original_size[0] == len(body)
        assert answer.hashsum_original == hashlib.md5(body).hexdigest()


async def test_bodies_in_the_slots_of_a_dead_decoder_reach_its_replacement_whole(
    pools: list[DecoderPool],
) -> None:
    pool = DecoderPool(1, ImageOptions(), timeout=60, work=crash_on_gif)
    pools.append(pool)
    lost, *queued = await asyncio.gather(*(pool.process(b) for b in (GIF, JPEG, JPEG, GIF, JPEG)))
    assert isinstance(lost, ImageFailure) and lost.error_code == codes.UNDECODABLE
    assert [type(answer) for answer in queued] == [
        ProcessedImage,
        ProcessedImage,
        ImageFailure,
        ProcessedImage,
    ]
    assert pool.replaced == 2


def test_a_file_size_limit_leaves_bodies_to_the_pipe() -> None:
    """``ulimit -f`` applies to memory files too: under one, a decoder gets no slots."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000)); "
        "from distdl.image.decoder_pool import _Slots; print(_Slots.open(2, 1 << 20))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_a_slot_holds_one_body_until_released() -> None:
    slots = _Slots.open(2, 1000)
    if slots is None:
        pytest.skip("no memory files on this system")
    try:
        assert slots.put(b"x" * 1001) is None  # too large: the pipe takes it
        first, second = slots.put(b"a" * 1000), slots.put(b"b")
        assert {first, second} == {0, 1}
        assert slots.put(b"c") is None  # both in use
        assert first is not None
        slots.release(first)
        assert slots.put(b"d") == first
    finally:
        slots.close()
