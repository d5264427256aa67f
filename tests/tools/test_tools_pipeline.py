"""Stages, checkpoints and version identity of the tools pipeline (one process)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from tools_support import SMALL, SUCCESSES, Download, apply, set_tools_parameters

from distdl.errors import OutputLockedError, ToolError, ToolNotFoundError
from distdl.io.lock import OutputLock
from distdl.io.markers import read_marker
from distdl.tools.bases import DefaultScheduler
from distdl.tools.runner import my_share

pytestmark = pytest.mark.timeout(120)


def _markers(download: Download, name: str) -> dict[str, object]:
    folder = download.output / "tools" / name
    return {
        str(p.relative_to(folder)): read_marker(p)
        for p in sorted(folder.glob("server_name=*/partition_id=*"))
    }


def test_a_finished_tool_run_again_does_nothing(download: Download) -> None:
    apply(download, "size_based")
    before = _markers(download, "size_based")
    again = apply(download, "size_based")
    assert _markers(download, "size_based") == before
    assert again.totals["removed"] == SMALL


def test_reset_runners_redoes_every_partition(download: Download) -> None:
    apply(download, "size_based")
    first = _markers(download, "size_based")
    (download.output / "tools" / "size_based" / "verified").unlink()
    for path in (download.output / "tools" / "size_based").glob(
        "server_name=*/partition_id=*/completed"
    ):
        path.write_text(json.dumps({"kept": -1}))  # a marker the reset must replace
    outcome = apply(download, "size_based", reset="runners")
    after = _markers(download, "size_based")
    assert set(after) == set(first) and all(m["kept"] >= 0 for m in after.values())  # type: ignore[index]
    assert outcome.totals["removed"] == SMALL


def test_a_changed_parameter_rebuilds_the_version(download: Download) -> None:
    apply(download, "size_based")
    set_tools_parameters(download, threshold_size=400)  # the 300x200 originals go too
    outcome = apply(download, "size_based")
    assert outcome.totals["removed"] == SMALL + 4
    identity = json.loads((download.output / "tools" / "size_based" / "version.json").read_text())
    assert identity["parameters"] == {"threshold_size": 400}


def test_more_downloads_make_versions_stale(download: Download) -> None:
    apply(download, "duplication_based")
    apply(download, "size_based", input_version="duplication_based", tool_name_override="clean")
    # A partition downloaded again (its marker rewritten): every version built on it is stale.
    marker = next(download.output.glob("downloaded_images/server_name=1*/partition_id=0/completed"))
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "redone": True}))
    with pytest.raises(ToolError, match=r"older '(duplication_based|download)'"):
        apply(download, "size_based", input_version="clean", tool_name_override="other")
    rebuilt = apply(download, "duplication_based")
    assert rebuilt.totals["input_rows"] == SUCCESSES
    identity = json.loads(
        (download.output / "tools" / "duplication_based" / "version.json").read_text()
    )
    assert identity["input"]["name"] == "download"
    with pytest.raises(ToolError, match="older 'duplication_based'"):
        apply(download, "resize", input_version="clean", tool_name_override="other")


def test_an_unknown_tool_names_the_registered_ones(download: Download) -> None:
    with pytest.raises(ToolNotFoundError) as caught:
        apply(download, "sharpen")
    for name in ("duplication_based", "image_verification", "resize", "size_based"):
        assert name in str(caught.value)


def test_an_unfinished_input_version_is_refused(download: Download) -> None:
    with pytest.raises(ToolError, match="no finished version 'size_based'"):
        apply(download, "resize", input_version="size_based")


def test_tools_take_the_output_lock(download: Download) -> None:
    with OutputLock(download.output, "distdl run elsewhere"), pytest.raises(OutputLockedError):
        apply(download, "size_based")
    assert not (download.output / "tools" / "size_based").exists()


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_every_scheduled_partition_has_exactly_one_rank(world: int) -> None:
    partitions = pl.DataFrame(
        {
            "server_name": ["a"] * 7 + ["b"] * 4,
            "partition_id": list(range(7)) + list(range(4)),
            "rows": [10, 1, 1, 1, 1, 1, 1, 10, 10, 1, 0],
        }
    )
    scheduler = DefaultScheduler.__new__(DefaultScheduler)
    schedule = scheduler.schedule(partitions, 3)
    loads = schedule.group_by("rank").agg(pl.col("rows").sum())["rows"].to_list()
    assert max(loads) - min(loads) <= 10  # largest first: no rank gets two big ones first
    shares = [my_share(schedule, rank, world) for rank in range(world)]
    keys = [(r["server_name"], r["partition_id"]) for s in shares for r in s.iter_rows(named=True)]
    assert sorted(keys) == sorted(
        zip(partitions["server_name"], partitions["partition_id"], strict=True)
    )
