"""The rank's image stage with fake decoders: back-pressure on requests, claims of arrived
bodies, and images refused before any decoder sees them."""

from __future__ import annotations

import asyncio

import pytest
from png_bombs import png_bomb

from distdl.core import codes
from distdl.core.memory_budget import MemoryBudget
from distdl.image.pipeline import ImageFailure, ImageOptions, ProcessedImage, process_image
from distdl.runtime.image_stage import ImageStage
from distdl.testing.image_samples import make_image_bytes

MIB = 1024 * 1024
GIB = 1024 * MIB


class FakeDecoders:
    """Runs the real pipeline in the loop's thread, once released by the test."""

    def __init__(self, options: ImageOptions) -> None:
        self.options = options
        self.seen: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def process(self, data: bytes, label: str = "") -> ProcessedImage | ImageFailure:
        self.seen.append(data)
        await self.gate.wait()
        return process_image(data, self.options)

    def close(self) -> None:
        pass


def _stage(capacity: int, first_allowance: int, **options: int) -> tuple[ImageStage, FakeDecoders]:
    image_options = ImageOptions(**options)
    decoders = FakeDecoders(image_options)
    return ImageStage(MemoryBudget(capacity, first_allowance), decoders, image_options), decoders


async def test_requests_wait_for_room_and_are_admitted_in_order() -> None:
    stage, _ = _stage(10 * MIB, first_allowance=4 * MIB)
    first, second = await stage.admit(), await stage.admit()
    admitted: list[str] = []

    async def request(name: str) -> None:
        reservation = await stage.admit()
        admitted.append(name)
        reservation.release()

    waiting = [asyncio.create_task(request(name)) for name in ("third", "fourth")]
    await asyncio.sleep(0.01)
    assert admitted == [] and stage.budget.reserved == 8 * MIB  # 8 + 4 > 10: both wait
    first.arrived(0)  # an answer without a body: its room is not handed out before ...
    await asyncio.sleep(0.01)
    assert admitted == []
    first.release()  # ... its row is settled (or the body's claim is known)
    await asyncio.gather(*waiting)
    assert admitted == ["third", "fourth"]
    second.release()
    assert stage.budget.reserved == 0 and stage.budget.peak <= 10 * MIB


async def test_an_arrived_body_claims_its_bytes_and_decoded_footprint_until_released() -> None:
    stage, decoders = _stage(64 * MIB, first_allowance=MIB)
    decoders.gate.clear()
    body = make_image_bytes("png", 1000, 1000, seed=1)
    reservation = await stage.admit()
    reservation.arrived(len(body))
    processing = asyncio.create_task(stage.process(body, reservation))
    await asyncio.sleep(0.01)
    claim = stage.budget.reserved
    assert claim > len(body) + 4 * 1000 * 1000  # the body plus at least the RGB frame
    assert stage.budget.allowance() == claim  # what the next requests expect to cost
    decoders.gate.set()
    assert isinstance(await processing, ProcessedImage)
    reservation.release()
    assert stage.budget.reserved == 0


async def test_a_png_bomb_over_max_image_pixels_is_refused_before_any_decoder() -> None:
    stage, decoders = _stage(GIB, first_allowance=MIB, max_pixels=50_000_000)
    bomb = png_bomb(9000, 9000)  # 81 Mpx in 80 kB
    reservation = await stage.admit()
    reservation.arrived(len(bomb))
    failure = await stage.process(bomb, reservation)
    assert isinstance(failure, ImageFailure)
    assert failure.error_code == codes.DECOMPRESSION_BOMB
    assert "max_image_pixels 50000000" in failure.error_msg
    assert decoders.seen == []


async def test_an_image_too_big_for_the_whole_budget_is_refused_naming_memory_per_rank() -> None:
    stage, decoders = _stage(256 * MIB, first_allowance=MIB)
    bomb = png_bomb(9000, 9000)  # under max_image_pixels, about 460 MB to decode
    reservation = await stage.admit()
    reservation.arrived(len(bomb))
    failure = await stage.process(bomb, reservation)
    assert isinstance(failure, ImageFailure)
    assert failure.error_code == codes.DECOMPRESSION_BOMB
    assert "9000x9000 L" in failure.error_msg and "memory_per_rank 256 MiB" in failure.error_msg
    assert decoders.seen == []
    assert stage.budget.allowance() < MIB  # one refused bomb does not throttle what follows
    reservation.release()
    assert stage.budget.reserved == 0


async def test_undecodable_bytes_never_reach_a_decoder() -> None:
    stage, decoders = _stage(16 * MIB, first_allowance=MIB)
    reservation = await stage.admit()
    failure = await stage.process(b"<!DOCTYPE html><p>login</p>", reservation)
    assert isinstance(failure, ImageFailure) and failure.error_code == codes.UNDECODABLE
    assert decoders.seen == []


async def test_a_cancelled_waiter_leaves_nothing_reserved() -> None:
    stage, _ = _stage(4 * MIB, first_allowance=4 * MIB)
    held = await stage.admit()
    waiter = asyncio.create_task(stage.admit())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    held.release()
    assert stage.budget.reserved == 0
    (await stage.admit()).release()  # the queue is not stuck behind the cancelled waiter


async def test_a_waiter_cancelled_just_as_it_was_admitted_gives_its_room_back() -> None:
    stage, _ = _stage(4 * MIB, first_allowance=4 * MIB)
    held = await stage.admit()
    waiter = asyncio.create_task(stage.admit())
    await asyncio.sleep(0.01)
    held.release()  # admits the waiter: its future has a result ...
    waiter.cancel()  # ... but the task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert stage.budget.reserved == 0
