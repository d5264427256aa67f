"""One server, one name, end to end: every spelling of a host shares one budget (checked from
the server's side), and a plan whose servers were named by an older rule is refused (exit 4)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import assert_exactly_once, layout_of, write_config

from distdl.api import RunOptions, run
from distdl.io.checkpoint import Checkpoint
from distdl.plan.partition_files import list_url_partitions
from distdl.plan.planner import read_servers_table
from distdl.testing.fleet import HostSpec, max_requests_in_window
from distdl.testing.fleet_thread import FleetThread

pytestmark = pytest.mark.timeout(120)

# Planning only: these hosts are never contacted.
SPELLINGS = ["http://Bücher.de/a.jpg", "http://xn--bcher-kva.de./b.jpg", "http://BÜCHER.DE:80/c"]


def loopback_spellings(ip: str, port: int) -> tuple[list[str], list[str]]:
    """Origins of ``ip:port``: (those the client fetches, those it refuses).

    aiohttp refuses the all-decimal legacy forms (integer, octal, short) without a request;
    the hex forms go to glibc, which reads them as the address without a DNS lookup. The
    trailing-dot form ``127.0.1.1.`` is a unit test only: the resolver would send it to
    the DNS server, which tests never contact.
    """
    octets = ipaddress.IPv4Address(ip).packed
    as_int = int(ipaddress.IPv4Address(ip))
    fetched = [
        f"http://{ip}:{port}",
        "http://" + ".".join(f"0x{o:x}" for o in octets) + f":{port}",
        f"HTTP://0X{as_int:X}:0{port}",
        f"http://0x{octets[0]:x}.{octets[1]}.0x{octets[2] * 256 + octets[3]:x}:{port}",
    ]
    refused = [
        f"http://{as_int}:{port}",
        "http://" + ".".join(f"0{o:o}" for o in octets) + f":{port}",
        f"http://{octets[0]}.{octets[1]}.{octets[2] * 256 + octets[3]}:{port}",
    ]
    return fetched, refused


def test_every_spelling_of_a_host_shares_its_one_budget(tmp_path: Path) -> None:
    budget = 2.0
    with FleetThread([HostSpec("museum", rate_limit=50)], seed=7) as fleet:
        ip, port = fleet.address("museum")
        fetched, refused = loopback_spellings(ip, port)
        base = fleet.base_url("museum")
        urls = [fleet.image_url("museum", i).replace(base, fetched[i % 4], 1) for i in range(16)]
        urls += [
            fleet.image_url("museum", 16 + i).replace(base, spelling, 1)
            for i, spelling in enumerate(refused)
        ]
        _write_urls(tmp_path / "urls.csv", urls)
        # The hand-set budget names the server by yet another spelling.
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "servers_profiles.csv").write_text(
            f"server_name,rate_limit\n0x{int(ipaddress.IPv4Address(ip)):x}:{port},{budget}\n"
        )
        # Were the spellings seven servers, each would get 20 req/s and a lease of its own.
        config = write_config(tmp_path, batch_size=5, default_rate_limit=20)
        run(config, RunOptions(ranks=1))
        records = fleet.requests_for("museum")
        server = fleet.server_name("museum")
    layout = layout_of(config)
    assert list(read_servers_table(layout)["server_name"]) == [server]
    assert {name for name, _, _ in list_url_partitions(layout)} == {server}
    assert assert_exactly_once(tmp_path / "urls.csv", layout) == (16, len(refused))
    images = [r for r in records if r.path.startswith("/img/")]
    assert len(images) == 16 and all(r.status == 200 for r in images)
    arrivals = [r.time for r in records]  # robots.txt included
    assert max_requests_in_window(arrivals, 1.0) <= budget + 1, arrivals


def _write_urls(path: Path, urls: list[str]) -> None:
    rows = [f"u{i},{url},s{i}" for i, url in enumerate(urls)]
    path.write_text("\n".join(["uuid,identifier,source_id", *rows]) + "\n")


def distdl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "distdl", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=100)


def _forget_host_key_version(checkpoint: Path) -> None:
    """What a version before host keys wrote: a fingerprint without host_key_version."""
    data = yaml.safe_load(checkpoint.read_text())
    del data["input_fingerprint"]["host_key_version"]
    checkpoint.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_plan_made_with_old_server_names_is_refused_until_reset(tmp_path: Path) -> None:
    _write_urls(tmp_path / "urls.csv", SPELLINGS)
    config = write_config(tmp_path)
    layout = layout_of(config)
    first = distdl("run", config, "--until", "batched")
    assert first.returncode == 0, first.stderr
    folders = sorted(p.name for p in layout.urls.glob("server_name=*"))
    assert folders == ["server_name=xn--bcher-kva.de"]  # three spellings, one server

    _forget_host_key_version(layout.checkpoint_file)
    # `run` as users type it launches MPI ranks (rank 0 plans and refuses, and says so
    # once); `resume` differs only before the launch, so one rank is enough for it.
    for command in (["run"], ["resume", "--ranks", "1"]):
        refused = distdl(*command, config)
        assert refused.returncode == 4, refused.stderr
        assert refused.stderr.count("server names changed") == 1, refused.stderr
        assert f"distdl reset {config} --stage batched" in refused.stderr
    assert not Checkpoint.load(layout.checkpoint_file).is_complete("profiled")
    assert not layout.profiles_table.exists()  # refused before anything was profiled

    assert distdl("reset", config, "--stage", "batched").returncode == 0
    again = distdl("run", config, "--until", "batched")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in layout.urls.glob("server_name=*")) == folders
