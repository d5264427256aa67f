"""A custom tool in a file outside the package, written against the original's names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tools_support import SUCCESSES, Download, apply, removed_rows

from distdl.errors import ToolError

pytestmark = pytest.mark.timeout(120)

PLUGIN = textwrap.dedent(
    """
    import polars as pl

    from distributed_downloader.tools import FilterRegister, PythonFilterToolBase, RunnerRegister
    from distributed_downloader.tools.runners import FilterRunnerTool


    @FilterRegister("drop_host_b")
    class DropHostB(PythonFilterToolBase):
        columns = ("title",)

        def select(self, rows):
            return rows.filter(pl.col("title").str.starts_with("b-")).select(
                "uuid", "server_name", "partition_id", pl.lit("host b").alias("reason")
            )


    @RunnerRegister("drop_host_b")
    class DropHostBRunner(FilterRunnerTool):
        pass
    """
)
HOST_B_ROWS = 10


def write_plugin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab_tools.py"
    path.write_text(PLUGIN)
    return path


def test_a_plugin_file_runs_like_a_built_in(download: Download, tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "elsewhere")
    outcome = apply(download, "drop_host_b", plugins=[str(plugin)])
    assert outcome.totals["removed"] == HOST_B_ROWS
    assert outcome.totals["kept"] == SUCCESSES - HOST_B_ROWS
    assert set(removed_rows(download, "drop_host_b")["reason"]) == {"host b"}
    again = apply(download, "drop_host_b", plugins=[str(plugin)])  # loading it twice is fine
    assert again.totals == outcome.totals


def test_a_broken_plugin_is_a_tool_error(tmp_path: Path, download: Download) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no')\n")
    with pytest.raises(ToolError, match="failed to load"):
        apply(download, "size_based", plugins=[str(broken)])
    with pytest.raises(ToolError, match="does not exist"):
        apply(download, "size_based", plugins=[str(tmp_path / "missing.py")])
