"""A whole run in one process (coordinator + worker over queues) against a real loopback fleet."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from support import assert_exactly_once, layout_of, output_rows, visible_temp_files, write_config

from distdl.api import RunOptions, run
from distdl.core import codes
from distdl.io.checkpoint import Checkpoint
from distdl.io.markers import is_completed
from distdl.testing.fleet import HostSpec, max_requests_in_window
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

pytestmark = pytest.mark.timeout(180)

HOSTS = [
    HostSpec("big", rate_limit=40, not_found_rate=0.05),
    HostSpec("flaky", rate_limit=15, error_rate_5xx=0.15, reset_rate=0.05, truncate_rate=0.05),
    HostSpec("museum", rate_limit=6, corrupt_rate=0.1, opt_out_rate=0.1, redirect_rate=0.2),
]
ROWS = {"big": 80, "flaky": 40, "museum": 24}
FORMATS = ("jpeg", "png", "gif", "bmp", "tiff", "webp")


def _budgets(folder: Path, fleet: object, rates: dict[str, float]) -> None:
    lines = ["server_name,rate_limit"]
    lines += [f"{fleet.server_name(name)},{rate}" for name, rate in rates.items()]  # type: ignore[attr-defined]
    (folder / "out").mkdir(exist_ok=True)
    (folder / "out" / "servers_profiles.csv").write_text("\n".join(lines) + "\n")


def test_every_row_lands_once_and_no_host_is_overloaded(tmp_path: Path) -> None:
    with FleetThread(HOSTS, seed=3) as fleet:
        write_url_list(
            fleet,
            tmp_path / "urls.csv",
            ROWS,
            bad_rows=7,
            formats=FORMATS,
            sizes=((1600, 1200), (300, 200), (90, 800)),
        )
        budgets = {spec.name: spec.rate_limit for spec in HOSTS}
        _budgets(tmp_path, fleet, budgets)
        config = write_config(tmp_path, image_size=256, max_retries=4)
        outcome = run(config, RunOptions(ranks=1))
        records = fleet.requests

    layout = layout_of(config)
    successes, errors = assert_exactly_once(tmp_path / "urls.csv", layout)
    assert successes > 100 and errors >= 7
    assert outcome.completed_stages == ["batched", "profiled", "downloaded"]
    assert not visible_temp_files(layout.root)
    for directory in layout.images.glob("server_name=*/partition_id=*"):
        assert is_completed(directory)

    by_code = {row["error_code"] for row in output_rows(layout, "errors.parquet", ["error_code"])}
    assert codes.INVALID_URL in by_code or codes.UNSUPPORTED_SCHEME in by_code
    assert codes.OPTED_OUT in by_code and codes.UNDECODABLE in by_code and 404 in by_code

    # Politeness, from the servers' side: no 1 s window holds more than the budget plus the
    # documented tolerance of one request per open lease (one lease per host here).
    for spec in HOSTS:
        times = [r.time for r in records if r.host == spec.name and r.path.startswith("/img")]
        assert max_requests_in_window(times, 1.0) <= math.ceil(budgets[spec.name]) + 1, spec.name

    rows = output_rows(layout, "successes.parquet", ["image", "resized_size", "original_size"])
    for row in rows[:40]:
        image = Image.open(io.BytesIO(row["image"]))
        assert [image.height, image.width] == row["resized_size"]
        assert max(row["resized_size"]) == min(256, max(row["original_size"]))


def test_second_run_is_a_no_op_and_retry_errors_requeues_only_failures(tmp_path: Path) -> None:
    hosts = [HostSpec("h", rate_limit=30, not_found_rate=0.3)]
    with FleetThread(hosts, seed=5) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"h": 30})
        config = write_config(tmp_path)
        run(config, RunOptions(ranks=1))
        first = len(fleet.requests)
        run(config, RunOptions(ranks=1))
        assert len(fleet.requests) == first  # nothing left to do: no request at all
        layout = layout_of(config)
        before = assert_exactly_once(tmp_path / "urls.csv", layout)
        not_found = [
            r
            for r in output_rows(layout, "errors.parquet", ["error_code"])
            if r["error_code"] in (404, 410)
        ]
        run(config, RunOptions(ranks=1, retry_errors=frozenset({404, 410})))
        retried = [r for r in fleet.requests[first:] if r.path.startswith("/img")]
    assert len(retried) == len(not_found) > 0  # only the failures were fetched again
    assert assert_exactly_once(tmp_path / "urls.csv", layout) == before


def test_output_files_have_the_declared_schema_even_when_empty(tmp_path: Path) -> None:
    hosts = [HostSpec("gone", rate_limit=50, not_found_rate=1.0)]
    with FleetThread(hosts, seed=1) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"gone": 5})
        config = write_config(tmp_path)
        run(config, RunOptions(ranks=1))
    layout = layout_of(config)
    (successes,) = layout.images.glob("server_name=*/partition_id=0/successes.parquet")
    assert pq.read_metadata(successes).num_rows == 0
    assert_exactly_once(tmp_path / "urls.csv", layout)


def test_a_crash_between_commit_and_marker_loses_and_doubles_nothing(tmp_path: Path) -> None:
    hosts = [HostSpec("h", rate_limit=50)]
    with FleetThread(hosts, seed=8) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"h": 12})
        config = write_config(tmp_path, batch_size=5)
        run(config, RunOptions(ranks=1))
        layout = layout_of(config)
        before = assert_exactly_once(tmp_path / "urls.csv", layout)
        # As if killed after renaming a partition's files but before writing its marker.
        (marker,) = layout.images.glob("server_name=*/partition_id=1/completed")
        marker.unlink()
        Checkpoint.load(layout.checkpoint_file).invalidate_from("downloaded")
        requests = len(fleet.requests)
        run(config, RunOptions(ranks=1))
        assert len([r for r in fleet.requests[requests:] if r.path.startswith("/img")]) == 0
    assert marker.exists()
    assert assert_exactly_once(tmp_path / "urls.csv", layout) == before


def test_a_failing_partition_fails_the_run_loudly_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.errors import RankFailure
    from distdl.io.partition_writer import PartitionOutput

    real_commit = PartitionOutput.commit

    def disk_full(self: PartitionOutput, summary: dict) -> None:
        if self.partition_dir.name == "partition_id=1":
            raise OSError(28, "No space left on device")
        real_commit(self, summary)

    hosts = [HostSpec("h", rate_limit=80)]
    with FleetThread(hosts, seed=9) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"h": 9})
        config = write_config(tmp_path, batch_size=3)
        monkeypatch.setattr(PartitionOutput, "commit", disk_full)
        with pytest.raises(RankFailure, match=r"partition_id=1|/1 given up|No space left"):
            run(config, RunOptions(ranks=1))
        monkeypatch.setattr(PartitionOutput, "commit", real_commit)
        run(config, RunOptions(ranks=1, resume=True))
    assert_exactly_once(tmp_path / "urls.csv", layout_of(config))
