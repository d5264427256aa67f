"""A custom tool in a file outside the package, written against the original's names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tools_support import SUCCESSES, Download, apply, removed_rows

from distdl.errors import ToolError
from distdl.tools.registry import ToolsRegistryBase

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


FAILING = textwrap.dedent(
    """
    from distdl.tools import MPIRunnerTool, PartitionResult, RunnerRegister

    FAIL_ON = {fail_on!r}


    @RunnerRegister("picky")
    class Picky(MPIRunnerTool):
        columns = ("uuid",)

        def apply_filter(self, rows, filtering_df, server_name, partition_id):
            if partition_id == FAIL_ON:
                raise RuntimeError("cannot handle this one")
            return PartitionResult.from_reasons(rows, {{}})
    """
)


def test_a_failing_partition_is_named_and_the_rerun_continues(
    download: Download, tmp_path: Path
) -> None:
    failing = tmp_path / "a" / "picky.py"
    failing.parent.mkdir()
    failing.write_text(FAILING.format(fail_on=1))
    with pytest.raises(
        ToolError, match=r"partition server_name=.*/partition_id=1 failed: RuntimeError"
    ):
        apply(download, "picky", plugins=[str(failing)])
    folder = download.output / "tools" / "picky"
    assert not (folder / "verified").exists()
    assert not list(folder.glob("server_name=*/partition_id=1/completed"))
    fixed = tmp_path / "b" / "picky.py"  # another file: a new module, registered anew
    fixed.parent.mkdir()
    fixed.write_text(FAILING.format(fail_on=-1))
    ToolsRegistryBase.TOOLS_REGISTRY.pop("picky")
    outcome = apply(download, "picky", plugins=[str(fixed)])
    assert outcome.totals["kept"] == SUCCESSES


def test_an_installed_entry_point_registers_its_tools(
    download: Download, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import EntryPoint

    from distdl.tools import plugins

    package = tmp_path / "site"
    package.mkdir()
    (package / "lab_entry_tools.py").write_text(PLUGIN.replace("drop_host_b", "drop_b_ep"))
    monkeypatch.syspath_prepend(str(package))
    entry = EntryPoint(name="lab", value="lab_entry_tools", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: [entry] if group == entry.group else []
    )
    monkeypatch.setattr(plugins, "_loaded_entry_points", False)
    outcome = apply(download, "drop_b_ep")
    assert outcome.totals["removed"] == HOST_B_ROWS
