"""The simulated fleet, seen by a real aiohttp client over loopback sockets."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from distdl.core.urls import classify_url
from distdl.testing.fleet import (
    NO_RESPONSE,
    Fleet,
    HostSpec,
    RequestRecord,
    host_ip,
    load_requests,
    make_zipf_fleet,
    max_requests_in_window,
    write_url_list,
    zipf_rows,
)
from distdl.testing.fleet_limits import (
    OVERLOAD_MAX_SHARE,
    HostLoad,
    RateMeter,
    TokenBucket,
    overload_latency_factor,
    overload_share,
    retry_after_value,
)
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import BAD_IDENTIFIERS, URL_LIST_COLUMNS

pytestmark = pytest.mark.timeout(20)


@asynccontextmanager
async def serving(
    *hosts: HostSpec, seed: int = 0, total: float = 5.0, **timeouts: float
) -> AsyncIterator[tuple[Fleet, aiohttp.ClientSession]]:
    timeout = aiohttp.ClientTimeout(total=total, **timeouts)
    async with (
        Fleet(list(hosts), seed=seed) as fleet,
        aiohttp.ClientSession(timeout=timeout) as session,
    ):
        yield fleet, session


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, dict[str, str]]:
    async with session.get(url) as response:
        return response.status, await response.read(), dict(response.headers)


# --- addresses ----------------------------------------------------------------------------


async def test_each_host_listens_on_its_own_loopback_address() -> None:
    async with serving(HostSpec("a"), HostSpec("b"), HostSpec("c")) as (fleet, session):
        ips = [fleet.address(name)[0] for name in fleet.host_names]
        assert ips == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
        for name in fleet.host_names:
            status, _, _ = await fetch(session, fleet.robots_url(name))
            assert status == 200
            assert classify_url(fleet.image_url(name, 1)).server_name == fleet.server_name(name)
        assert len({fleet.server_name(name) for name in fleet.host_names}) == 3
        assert {record.host for record in fleet.requests} == {"a", "b", "c"}


def test_host_ip_skips_network_and_broadcast_octets() -> None:
    assert host_ip("127.0.1.1", 0) == "127.0.1.1"
    assert host_ip("127.0.1.1", 253) == "127.0.1.254"
    assert host_ip("127.0.1.1", 254) == "127.0.2.1"
    assert host_ip("127.0.1.250", 10) == "127.0.2.6"
    with pytest.raises(ValueError):
        host_ip("127.255.255.250", 10)
    with pytest.raises(ValueError):
        host_ip("127.0.1.0", 0)


async def test_fixed_port_is_honoured() -> None:
    with socket.socket() as probe:  # a port free on 127.0.1.1 right now
        probe.bind(("127.0.1.1", 0))
        port = probe.getsockname()[1]
    async with serving(HostSpec("fixed", port=port)) as (fleet, session):
        assert fleet.base_url("fixed") == f"http://127.0.1.1:{port}"
        status, _, _ = await fetch(session, fleet.image_url("fixed", 0, width=8, height=8))
        assert status == 200


def test_duplicate_host_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Fleet([HostSpec("a"), HostSpec("a")])


@pytest.mark.parametrize(
    "bad",
    [
        {"reset_rate": 1.5},
        {"error_rate_5xx": 0.6, "reset_rate": 0.6},
        {"not_found_rate": 0.5, "corrupt_rate": 0.6},
        {"rate_limit": 0},
        {"burst": 0, "rate_limit": 1},
        {"mode": "sideways"},
        {"port": 70000},
        {"rate_limit": 1, "burst": 2, "burst_seconds": 1.0},
        {"rate_limit": 1, "burst_seconds": -0.5},
        {"rate_limit": 1, "limited_status": 404},
        {"rate_limit": 1, "limit_drop_start": 5.0, "limit_drop_end": 2.0},
        {"rate_limit": 1, "limit_drop_start": 5.0},
        {"limit_drop_start": 0.0, "limit_drop_end": 2.0},
        {"rate_limit": 1, "limit_drop_factor": 0.0},
        {"overload_knee": 0.0},
        {"overload_knee": 5.0, "overload_slope": 0.0},
        {"error_statuses": (404,)},
        {"error_statuses": ()},
        {"error_retry_after": -1.0},
        {"redirect_to": "x"},
        {"redirect_to": "cdn", "corrupt_rate": 0.1},
    ],
)
def test_host_spec_rejects_impossible_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HostSpec("x", **bad)  # type: ignore[arg-type]


# --- rate limit ---------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.try_take(0.25) is False  # half a token
    assert bucket.try_take(0.5) is True
    assert [bucket.try_take(100.0) for _ in range(4)] == [True, True, True, False]


def test_default_burst_is_a_quarter_second_of_the_limit() -> None:
    assert HostSpec("a", rate_limit=10).bucket_capacity == 3
    assert HostSpec("a", rate_limit=2).bucket_capacity == 1
    assert HostSpec("a", rate_limit=10, burst=7).bucket_capacity == 7
    assert HostSpec("a").bucket_capacity is None


def test_burst_in_seconds_is_tokens_at_the_current_limit() -> None:
    assert HostSpec("a", rate_limit=10, burst_seconds=2.0).bucket_capacity == 20
    assert HostSpec("a", rate_limit=10, burst_seconds=0.0).bucket_capacity == 1  # no burst
    assert HostSpec("a", rate_limit=10, burst_seconds=0.5).capacity_at(5.0) == 2.5
    assert HostSpec("a", rate_limit=10, burst=4).capacity_at(5.0) == 4


def test_token_bucket_retune_keeps_what_was_earned_up_to_the_new_capacity() -> None:
    bucket = TokenBucket(rate=10.0, capacity=5, now=0.0)
    assert all(bucket.try_take(0.0) for _ in range(5))
    bucket.retune(1.0, 1.0, now=0.2)  # 2 tokens earned at the old rate, 1 kept
    assert [bucket.try_take(0.2), bucket.try_take(0.2)] == [True, False]
    assert bucket.try_take(0.7) is False  # half a token at the new rate
    assert bucket.try_take(1.2) is True


def test_limit_drop_is_timed_from_the_first_request() -> None:
    spec = HostSpec(
        "a",
        rate_limit=100,
        burst=5,
        limit_drop_start=1.0,
        limit_drop_end=3.0,
        limit_drop_factor=0.01,
    )
    assert [spec.limit_at(t) for t in (0.0, 0.99, 1.0, 2.99, 3.0)] == [100, 100, 1, 1, 100]
    load = HostLoad(spec)
    assert [load.admit(50.0).limited for _ in range(6)] == [False] * 5 + [True]
    assert not load.admit(50.9).limited  # before the drop: 100 req/s
    at_drop = [load.admit(51.5).limited for _ in range(6)]
    assert at_drop == [False] * 5 + [True]  # burst stays 5 tokens, refilled at 1 req/s
    assert load.admit(52.0).limited
    assert not load.admit(52.6).limited
    assert not load.admit(53.1).limited  # recovered


def test_limit_drop_ends_whatever_the_clock_reads_at_the_first_request() -> None:
    # A monotonic clock reads tens of thousands of seconds: first + offset - first is then
    # not always offset, and a change looked up there could miss its own side of it.
    spec = HostSpec(
        "a",
        rate_limit=53.88,
        burst_seconds=0.22,
        limit_drop_start=13.64,
        limit_drop_end=17.28,
        limit_drop_factor=0.41,
    )
    first = 59105.16
    load = HostLoad(spec)
    # 30 req/s: over the dropped limit (22 req/s), well under the full one.
    refused = [load.admit(first + step / 30).limited for step in range(30 * 25)]
    assert not any(refused[: 30 * 13])
    assert any(refused[30 * 14 : 30 * 17])
    assert not any(refused[30 * 18 :])


def test_overload_model() -> None:
    assert overload_share(10.0, knee=10.0, slope=1.0) == 0.0
    assert overload_share(15.0, knee=10.0, slope=1.0) == pytest.approx(0.5)
    assert overload_share(15.0, knee=10.0, slope=0.5) == pytest.approx(0.25)
    assert overload_share(100.0, knee=10.0, slope=1.0) == OVERLOAD_MAX_SHARE
    assert overload_latency_factor(0.0, knee=10.0) == 1.0
    assert overload_latency_factor(10.0, knee=10.0) == 2.0
    meter = RateMeter(window=2.0)
    assert [meter.arrive(t) for t in (0.0, 0.5, 1.0, 2.2)] == [0.5, 1.0, 1.5, 1.5]
    load = HostLoad(HostSpec("busy", overload_knee=2.0, overload_window=1.0))
    seen = [load.admit(0.01 * i) for i in range(6)]
    assert [a.shed_share for a in seen[:2]] == [0.0, 0.0]
    assert seen[-1].shed_share == OVERLOAD_MAX_SHARE
    assert seen[-1].latency_factor == 4.0
    assert not any(a.limited for a in seen)


async def test_a_burst_of_three_times_the_limit_is_mostly_refused() -> None:
    limit = 10
    async with serving(HostSpec("slow", rate_limit=limit)) as (fleet, session):
        url = fleet.robots_url("slow")
        answers = await asyncio.gather(*(fetch(session, url) for _ in range(3 * limit)))
        refused = sum(1 for status, _, _ in answers if status == 429)
        assert refused >= 2 * limit
        assert fleet.count_status(429) == refused
        assert fleet.count_status(200) == 3 * limit - refused
        assert len(fleet.requests_for("slow")) == 3 * limit


async def test_half_the_limit_is_never_refused() -> None:
    limit = 10
    async with serving(HostSpec("steady", rate_limit=limit)) as (fleet, session):
        url = fleet.robots_url("steady")
        statuses = []
        for _ in range(limit):  # 0.5 x limit for 2 s, never faster than one per 0.2 s
            started = time.monotonic()
            statuses.append((await fetch(session, url))[0])
            await asyncio.sleep(max(0.0, 2 / limit - (time.monotonic() - started)))
        assert statuses == [200] * limit
        assert fleet.count_status(429) == 0


async def test_retry_after_in_seconds_and_as_a_date() -> None:
    hosts = (
        HostSpec("secs", rate_limit=1, retry_after=2.2),
        HostSpec("date", rate_limit=1, retry_after=30, retry_after_form="date"),
        HostSpec("raw", rate_limit=1, retry_after="soon"),
        HostSpec("none", rate_limit=1),
    )
    async with serving(*hosts) as (fleet, session):
        headers = {}
        for name in fleet.host_names:
            await fetch(session, fleet.robots_url(name))  # takes the only token
            status, _, headers[name] = await fetch(session, fleet.robots_url(name))
            assert status == 429
    assert headers["secs"]["Retry-After"] == "3"
    delay = parsedate_to_datetime(headers["date"]["Retry-After"]).timestamp() - time.time()
    assert 20 < delay <= 32
    assert headers["raw"]["Retry-After"] == "soon"
    assert "Retry-After" not in headers["none"]


async def test_a_cdn_answers_403_when_its_bucket_is_empty() -> None:
    async with serving(HostSpec("cdn", rate_limit=1, limited_status=403)) as (fleet, session):
        answers = [await fetch(session, fleet.robots_url("cdn")) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 403, 403]
    assert all("Retry-After" not in headers for _, _, headers in answers)
    assert [r.fault for r in fleet.requests_for("cdn")] == [
        "robots",
        "rate_limited",
        "rate_limited",
    ]


async def test_a_limit_drop_refuses_what_the_full_limit_allows() -> None:
    host = HostSpec(
        "busy",
        rate_limit=100,
        burst_seconds=0.08,  # 8 tokens at the full limit, 1 during the drop
        limit_drop_start=0.0,
        limit_drop_end=1.0,
        limit_drop_factor=0.01,
    )
    async with serving(host) as (fleet, session):
        url = fleet.robots_url("busy")
        during = await asyncio.gather(*(fetch(session, url) for _ in range(8)))
        await asyncio.sleep(1.2)  # the drop is over and the bucket has refilled
        after = await asyncio.gather(*(fetch(session, url) for _ in range(8)))
    assert sorted(status for status, _, _ in during) == [200] + [429] * 7
    assert [status for status, _, _ in after] == [200] * 8


def test_retry_after_value_forms() -> None:
    assert retry_after_value(None, "seconds", 0.0) is None
    assert retry_after_value(0.0, "seconds", 0.0) == "0"
    assert retry_after_value(1.01, "seconds", 0.0) == "2"
    assert retry_after_value(5, "date", 0.0) == "Thu, 01 Jan 1970 00:00:05 GMT"


# --- transient faults ---------------------------------------------------------------------


async def test_injected_5xx_carries_retry_after_on_503() -> None:
    host = HostSpec("flaky", error_rate_5xx=1.0, retry_after=4)
    async with serving(host) as (fleet, session):
        answers = [await fetch(session, fleet.image_url("flaky", i)) for i in range(30)]
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) == {500, 502, 503}
    for status, _, headers in answers:
        assert (headers.get("Retry-After") == "4") == (status == 503)
    assert {record.fault for record in fleet.requests} == {"5xx"}


async def test_5xx_retry_after_is_set_apart_from_the_429s() -> None:
    hosts = (
        HostSpec(
            "bare",
            rate_limit=1,
            retry_after=2,
            error_rate_5xx=1.0,
            error_statuses=(503,),
            error_retry_after=None,
        ),
        HostSpec(
            "own",
            rate_limit=1,
            retry_after=2,
            error_rate_5xx=1.0,
            error_statuses=(503,),
            error_retry_after=5,
        ),
    )
    async with serving(*hosts) as (fleet, session):
        seen = {}
        for name in fleet.host_names:
            url = fleet.image_url(name, 1)
            seen[name] = [await fetch(session, url) for _ in range(2)]
    for name, expected in (("bare", None), ("own", "5")):
        (fault_status, _, fault_headers), (limited, _, limited_headers) = seen[name]
        assert (fault_status, fault_headers.get("Retry-After")) == (503, expected)
        assert (limited, limited_headers.get("Retry-After")) == (429, "2")


async def test_overload_sheds_with_503_past_the_knee_and_not_below() -> None:
    host = HostSpec(
        "busy", overload_knee=5, overload_slope=2, overload_window=1.0, error_retry_after=2
    )
    async with serving(host) as (fleet, session):
        url = fleet.image_url("busy", 1, width=8, height=8)
        pushed = await asyncio.gather(*(fetch(session, url) for _ in range(40)))
        await asyncio.sleep(1.1)
        gentle = []
        for _ in range(3):  # at most 3 in any 1-s window: below the knee
            gentle.append((await fetch(session, url))[0])
            await asyncio.sleep(0.4)
    shed = [headers for status, _, headers in pushed if status == 503]
    assert len(shed) >= 20
    assert all(headers.get("Retry-After") == "2" for headers in shed)
    assert gentle == [200, 200, 200]
    faults = Counter(r.fault for r in fleet.requests)
    assert faults["overload"] == len(shed)
    assert faults["5xx"] == 0


async def test_transient_faults_depend_on_the_attempt_so_retries_can_succeed() -> None:
    host = HostSpec("coin", error_rate_5xx=0.5)

    async def statuses(seed: int) -> list[int]:
        async with serving(host, seed=seed) as (fleet, session):
            url = fleet.image_url("coin", 7, width=16, height=16)
            return [(await fetch(session, url))[0] for _ in range(24)]

    first = await statuses(seed=1)
    assert first == await statuses(seed=1)  # deterministic by (seed, path, attempt)
    assert 200 in first
    assert any(status >= 500 for status in first)
    assert first != await statuses(seed=2)


async def test_reset_closes_the_connection_without_an_answer() -> None:
    async with serving(HostSpec("reset", reset_rate=1.0)) as (fleet, session):
        with pytest.raises(aiohttp.ClientConnectionError):
            await fetch(session, fleet.image_url("reset", 1))
    assert fleet.requests
    assert all(r.status == NO_RESPONSE and r.fault == "reset" for r in fleet.requests)


async def test_truncated_body_is_a_payload_error() -> None:
    async with serving(HostSpec("cut", truncate_rate=1.0)) as (fleet, session):
        with pytest.raises(aiohttp.ClientPayloadError):
            await fetch(session, fleet.image_url("cut", 1))
    assert [(r.status, r.fault) for r in fleet.requests] == [(200, "truncate")]


async def test_slow_drip_trips_a_read_timeout() -> None:
    host = HostSpec("drip", drip_rate=1.0, drip_interval=1.0, drip_chunk=100)
    async with (
        serving(host, sock_read=0.2) as (fleet, session),
        session.get(fleet.image_url("drip", 1)) as response,
    ):
        assert response.status == 200
        assert response.content_length is not None and response.content_length > 100
        with pytest.raises(asyncio.TimeoutError):
            await response.read()
    assert [r.fault for r in fleet.requests] == ["drip"]


async def test_black_hole_accepts_and_never_answers() -> None:
    async with serving(HostSpec("void", mode="black_hole"), total=0.5) as (fleet, session):
        url = fleet.image_url("void", 3)
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, url)
        # the fleet must shut down even with the connection still open
    assert [(r.host, r.path, r.status) for r in fleet.requests] == [
        ("void", "/img/3.jpeg?w=640&h=480", NO_RESPONSE)
    ]
    assert fleet.image_fate("void", 3).kind == "black_hole"


async def test_refused_host_has_nothing_listening() -> None:
    async with serving(HostSpec("gone", mode="refused")) as (fleet, session):
        with pytest.raises(aiohttp.ClientConnectorError):
            await fetch(session, fleet.image_url("gone", 1))
    assert fleet.requests == []


async def test_latency_delays_the_answer() -> None:
    async with serving(HostSpec("far", latency=1.0), total=0.2) as (fleet, session):
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, fleet.robots_url("far"))


# --- content ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "bmp", "tiff", "webp"])
async def test_served_image_decodes_to_the_requested_format_and_size(fmt: str) -> None:
    async with serving(HostSpec("museum")) as (fleet, session):
        status, body, headers = await fetch(session, fleet.image_url("museum", 5, fmt, 96, 40))
    assert status == 200
    assert headers["Content-Type"] == f"image/{fmt}"
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        assert image.format == fmt.upper()
        assert image.size == (96, 40)


async def test_image_mode_exif_and_frames_come_from_the_query() -> None:
    async with serving(HostSpec("museum")) as (fleet, session):
        url = fleet.image_url("museum", 1, "jpeg", 32, 24, exif_orientation=6)
        _, rotated, _ = await fetch(session, url)
        _, animated, _ = await fetch(session, fleet.image_url("museum", 1, "gif", 20, 20, frames=3))
        _, grey, _ = await fetch(session, fleet.image_url("museum", 1, "png", 20, 20, mode="L"))
        status, _, _ = await fetch(session, fleet.image_url("museum", 1, "jpeg", mode="RGBA"))
        bad_size, _, _ = await fetch(session, fleet.base_url("museum") + "/img/1.jpeg?w=0&h=5")
        unknown, _, _ = await fetch(session, fleet.base_url("museum") + "/elsewhere")
    assert Image.open(io.BytesIO(rotated)).getexif()[0x0112] == 6
    assert Image.open(io.BytesIO(animated)).n_frames == 3
    assert Image.open(io.BytesIO(grey)).mode == "L"
    assert (status, bad_size, unknown) == (400, 400, 404)


def _decodes(body: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
    except Exception:
        return False
    return True


async def test_permanent_fates_are_served_as_predicted() -> None:
    host = HostSpec(
        "mixed",
        not_found_rate=0.2,
        not_image_rate=0.15,
        corrupt_rate=0.15,
        oversize_rate=0.1,
        oversize_bytes=300_000,
        opt_out_rate=0.15,
        opt_out_tags=("noai", "noimageai", "otherbot: noai"),
    )
    async with serving(host, seed=3) as (fleet, session):
        seen = Counter()
        for image_id in range(60):
            fate = fleet.image_fate("mixed", image_id)
            seen[fate.kind] += 1
            url = fleet.image_url("mixed", image_id, "png", 64, 48)
            status, body, headers = await fetch(session, url)
            assert status == fate.status
            assert headers.get("X-Robots-Tag") == fate.robots_tag
            if fate.kind in ("ok", "opt_out", "oversize"):
                assert _decodes(body)
            else:
                assert not _decodes(body)
            if fate.kind in ("not_image", "corrupt"):
                assert headers["Content-Type"] == "image/png"
            if fate.kind == "oversize":
                assert len(body) == 300_000
    assert set(seen) == {"ok", "not_found", "not_image", "corrupt", "oversize", "opt_out"}
    assert [fleet.image_fate("mixed", i) for i in range(60)] == [
        Fleet([host], seed=3).image_fate("mixed", i) for i in range(60)
    ]


async def test_oversize_can_be_sent_without_a_content_length() -> None:
    host = HostSpec("huge", oversize_rate=1.0, oversize_bytes=1_000_000, oversize_chunked=True)
    async with (
        serving(host) as (fleet, session),
        session.get(fleet.image_url("huge", 1)) as response,
    ):
        assert response.content_length is None
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert len(await response.read()) == 1_000_000


async def test_not_found_share_uses_404_410_and_403() -> None:
    async with serving(HostSpec("lost", not_found_rate=1.0)) as (fleet, session):
        statuses = Counter(
            [(await fetch(session, fleet.image_url("lost", i)))[0] for i in range(40)]
        )
    assert set(statuses) == {404, 410, 403}
    assert statuses[404] > statuses[410]


# --- redirects and robots.txt -------------------------------------------------------------


async def test_redirect_chain_ends_at_the_image() -> None:
    async with serving(HostSpec("hop", redirect_rate=1.0, redirect_hops=2)) as (fleet, session):
        async with session.get(fleet.image_url("hop", 9, width=16, height=12)) as response:
            assert response.status == 200
            assert len(response.history) == 2
            assert all(step.status == 302 for step in response.history)
            assert str(response.url).endswith("/redirect/0/img/9.jpeg?w=16&h=12")
        async with session.get(fleet.image_url("hop", 9, width=16, redirects=4)) as response:
            assert response.status == 200
            assert len(response.history) == 4
    assert fleet.image_fate("hop", 9).redirects == 2


async def test_a_resolver_redirects_to_its_cdn_which_applies_its_own_rules() -> None:
    hosts = (
        HostSpec("resolver", redirect_to="cdn", not_found_rate=0.3),
        HostSpec("cdn", rate_limit=50, not_found_rate=0.3),
    )
    async with serving(*hosts, seed=4) as (fleet, session):
        outcomes = {}
        for image_id in range(20):
            async with session.get(fleet.image_url("resolver", image_id, width=8)) as response:
                hops = [str(step.headers["Location"]) for step in response.history]
                outcomes[image_id] = (response.status, hops)
    fates = {i: fleet.image_fate("resolver", i) for i in outcomes}
    resolved = [i for i, fate in fates.items() if fate.redirects == 1]
    assert resolved and len(resolved) < len(outcomes)  # some 404 at the resolver itself
    cdn = fleet.base_url("cdn")
    for image_id, (status, hops) in outcomes.items():
        assert status == fates[image_id].status
        if image_id in resolved:
            assert hops == [f"{cdn}/img/{image_id}.jpeg?w=8&h=480&via=resolver"]
            assert fates[image_id] == replace(fleet.image_fate("cdn", image_id), redirects=1)
        else:
            assert hops == []
    cdn_paths = [r.path for r in fleet.requests_for("cdn")]
    assert len(cdn_paths) == len(resolved)
    assert {r.status for r in fleet.requests_for("resolver")} <= {302, 404, 410, 403}


def test_resolver_targets_must_exist_and_not_loop() -> None:
    with pytest.raises(ValueError, match="unknown host"):
        Fleet([HostSpec("a", redirect_to="nowhere")])
    with pytest.raises(ValueError, match="cycle"):
        Fleet([HostSpec("a", redirect_to="b"), HostSpec("b", redirect_to="a")])


async def test_redirect_loop_and_non_http_redirect() -> None:
    async with serving(HostSpec("loopy")) as (fleet, session):
        with pytest.raises(aiohttp.TooManyRedirects):
            await fetch(session, fleet.loop_url("loopy"))
        async with session.get(fleet.bad_redirect_url("loopy"), allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"].startswith("ftp://")
    assert fleet.count_status(302) >= 11


async def test_robots_txt_text_and_error_statuses() -> None:
    hosts = (
        HostSpec("default"),
        HostSpec("strict", robots_txt="User-agent: *\nDisallow: /img/\n"),
        HostSpec("missing", robots_status=404),
        HostSpec("broken", robots_status=500, error_rate_5xx=1.0),
    )
    async with serving(*hosts) as (fleet, session):
        answers = {name: await fetch(session, fleet.robots_url(name)) for name in fleet.host_names}
    assert answers["default"][:2] == (200, b"User-agent: *\nAllow: /\n")
    assert answers["strict"][:2] == (200, b"User-agent: *\nDisallow: /img/\n")
    assert answers["missing"][0] == 404
    assert answers["broken"][0] == 500


# --- the request log ----------------------------------------------------------------------


async def test_log_records_every_request_and_round_trips(tmp_path: Path) -> None:
    async with serving(HostSpec("a", rate_limit=1), HostSpec("b")) as (fleet, session):
        before = time.monotonic()
        for _ in range(3):
            await fetch(session, fleet.image_url("a", 1, width=8, height=8))
        await fetch(session, fleet.robots_url("b"))
        after = time.monotonic()
    records = fleet.requests_for("a")
    assert [r.status for r in records] == [200, 429, 429]
    assert [r.fault for r in records] == ["", "rate_limited", "rate_limited"]
    assert all(r.path == "/img/1.jpeg?w=8&h=8" and r.remote == "127.0.0.1" for r in records)
    assert all(before <= r.time <= after for r in fleet.requests)
    assert [r.time for r in records] == sorted(r.time for r in records)
    assert fleet.count_status(429, "b") == 0
    fleet.save_requests(tmp_path / "log.jsonl")
    assert load_requests(tmp_path / "log.jsonl") == fleet.requests


def test_max_requests_in_window_on_hand_built_times() -> None:
    assert max_requests_in_window([]) == 0
    assert max_requests_in_window([5.0]) == 1
    assert max_requests_in_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_requests_in_window([2.95, 0.0, 2.0, 2.5, 2.9]) == 4  # unsorted input
    assert max_requests_in_window([0.0, 1.0, 2.0], window=1.0) == 1  # half-open window
    assert max_requests_in_window([0.0, 1.0, 2.0], window=2.5) == 3
    with pytest.raises(ValueError):
        max_requests_in_window([1.0], window=0)


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=30))
def test_max_requests_in_window_matches_brute_force(times: list[float]) -> None:
    brute = max((sum(1 for t in times if s <= t < s + 1.0) for s in times), default=0)
    assert max_requests_in_window(times, 1.0) == brute


# --- running from synchronous code --------------------------------------------------------


def test_fleet_thread_serves_synchronous_clients(tmp_path: Path) -> None:
    runner = FleetThread([HostSpec("sync", rate_limit=100), HostSpec("void", mode="black_hole")])
    with runner as fleet:
        with urllib.request.urlopen(fleet.image_url("sync", 2, "png", 30, 20), timeout=5) as reply:
            body = reply.read()
        with socket.create_connection(fleet.address("void"), timeout=5) as sock:
            sock.sendall(b"GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 5
            while len(runner.snapshot()) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            snapshot = runner.snapshot()
    assert Image.open(io.BytesIO(body)).size == (30, 20)
    assert [(r.host, r.path) for r in snapshot] == [
        ("sync", "/img/2.png?w=30&h=20"),
        ("void", "/waiting"),
    ]
    runner.stop()  # a second stop is harmless
    fleet.save_requests(tmp_path / "log.jsonl")
    assert len(load_requests(tmp_path / "log.jsonl")) == 2


def test_fleet_thread_reports_a_startup_failure() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.1.1", 0))
        taken.listen()
        runner = FleetThread([HostSpec("clash", port=taken.getsockname()[1])])
        with pytest.raises(RuntimeError, match="failed to start") as info:
            runner.start()
    assert isinstance(info.value.__cause__, OSError)


# --- GBIF-shaped workloads ----------------------------------------------------------------


def test_zipf_fleet_is_skewed_and_seeded() -> None:
    hosts = make_zipf_fleet(50, seed=4, limits=(2, 60), black_holes=2, refused=3)
    assert hosts == make_zipf_fleet(50, seed=4, limits=(2, 60), black_holes=2, refused=3)
    assert hosts[0].name == "host-00" and hosts[-1].name == "host-49"
    limits = [h.rate_limit or 0 for h in hosts]
    assert all(2 * 0.8 <= limit <= 60 * 1.2 for limit in limits)
    assert limits[0] > 4 * limits[-1]
    assert Counter(h.mode for h in hosts) == {"normal": 45, "black_hole": 2, "refused": 3}
    assert hosts[0].mode == "normal"
    assert hosts[7].not_found_rate > 0  # the realistic template's fault mix


def test_zipf_rows_add_up_and_decrease() -> None:
    names = [f"h{i}" for i in range(10)]
    rows = zipf_rows(names, 1000, exponent=1.2, min_rows=2)
    assert sum(rows.values()) == 1000
    counts = [rows[name] for name in names]
    assert counts == sorted(counts, reverse=True)
    assert min(counts) >= 2
    with pytest.raises(ValueError):
        zipf_rows(names, 5, min_rows=1)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_write_url_list_points_at_the_fleet(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"urls.{fmt}"
    async with serving(HostSpec("a"), HostSpec("b", mode="refused")) as (fleet, session):
        count = write_url_list(
            fleet, path, {"a": 5, "b": 3}, fmt=fmt, formats=("png", "webp"), bad_rows=4
        )
        if fmt == "csv":
            with path.open(newline="") as stream:
                rows = list(csv.DictReader(stream))
            assert tuple(rows[0]) == URL_LIST_COLUMNS
        else:
            rows = pq.read_table(path).to_pylist()
        good = [row for row in rows if row["source"] != "bad"]
        served = next(row for row in good if row["source"] == "a")
        status, body, headers = await fetch(session, served["identifier"])
    assert count == len(rows) == 12
    assert len({row["uuid"] for row in rows}) == 12
    servers = Counter(classify_url(row["identifier"]).server_name for row in good)
    assert servers == {fleet.server_name("a"): 5, fleet.server_name("b"): 3}
    bad = [row["identifier"] for row in rows if row["source"] == "bad"]
    assert len(bad) == 4 and set(bad) <= set(BAD_IDENTIFIERS)
    assert all(not classify_url(identifier).ok for identifier in bad)
    assert status == 200 and _decodes(body)
    assert headers["Content-Type"] in ("image/png", "image/webp")


def test_records_are_plain_values() -> None:
    record = RequestRecord("h", 1.0, "/x", 200, "127.0.0.1")
    assert record.fault == ""
    assert record == RequestRecord("h", 1.0, "/x", 200, "127.0.0.1", "")
