"""When do the healthy hosts finish, with a black hole in the fleet? (issue 7, item 6)

A fleet of ``--hosts`` healthy hosts (hand-set budgets of ``--rate`` req/s, ``--urls`` URLs
each) and one black hole (accepts connections, never answers). ``distdl run --ranks 1`` is
timed from the call; the healthy hosts' last request, from their own records, says whether
the black hole's ``--read-timeout`` held them back. Prints one JSON line.

    python benchmarks/first_downloads.py [--hosts 5] [--urls 20] [--rate 20] [--read-timeout 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from distdl.api import RunOptions, run
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--urls", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--read-timeout", type=float, default=10.0)
    args = parser.parse_args()
    healthy = [f"healthy-{i}" for i in range(args.hosts)]
    hosts = [HostSpec(name, rate_limit=2 * args.rate) for name in healthy]
    hosts.append(HostSpec("hole", mode="black_hole"))
    with tempfile.TemporaryDirectory() as folder, FleetThread(hosts, seed=1) as fleet:
        root = Path(folder)
        write_url_list(fleet, root / "urls.csv", {host.name: args.urls for host in hosts})
        params = {
            "batch_size": args.urls,
            "read_timeout": args.read_timeout,
            "total_timeout": args.read_timeout + 2,
            "max_retries": 0,
            "logger_level": "ERROR",
        }
        config = {"path_to_input": "urls.csv", "path_to_output": "out"}
        (root / "config.yaml").write_text(
            yaml.safe_dump({**config, "downloader_parameters": params})
        )
        (root / "out").mkdir()
        budgets = [f"{fleet.server_name(name)},{args.rate}" for name in healthy]
        (root / "out" / "servers_profiles.csv").write_text(
            "\n".join(["server_name,rate_limit", *budgets]) + "\n"
        )
        started = time.monotonic()
        run(root / "config.yaml", RunOptions(ranks=1))
        run_seconds = time.monotonic() - started
        done = max(r.time for r in fleet.requests if r.host != "hole") - started
    bound = args.urls / args.rate
    print(
        json.dumps(
            {
                "healthy_hosts_done_s": round(done, 2),
                "their_bound_s": round(bound, 2),
                "read_timeout_s": args.read_timeout,
                "run_s": round(run_seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
