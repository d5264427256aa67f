"""`distdl tools`, the original's `distributed_downloader_tools` and its imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tools_support import SMALL, Download
from typer.testing import CliRunner

from distdl.cli import app

pytestmark = pytest.mark.timeout(120)
BIN = Path(sys.executable).parent


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=100)


def test_list_names_the_built_in_tools(tmp_path: Path) -> None:
    listed = _run(str(BIN / "distdl"), "tools", "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in ("duplication_based", "image_verification", "resize", "size_based"):
        assert name in listed.stdout


def test_an_unknown_tool_exits_8_listing_the_known_ones(download: Download) -> None:
    failed = CliRunner().invoke(app, ["tools", str(download.config), "blur"])
    assert failed.exit_code == 8
    assert "unknown tool 'blur'" in failed.output and "size_based" in failed.output


def test_reset_flags_and_a_version_name(download: Download) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["tools", str(download.config), "size_based", "--ranks", "1"])
    assert first.exit_code == 0, first.output
    table = download.output / "tools" / "size_based" / "filter_table.parquet"
    before = table.stat().st_mtime_ns
    again = runner.invoke(app, ["tools", str(download.config), "size_based", "--reset-filtering"])
    assert again.exit_code == 0, again.output
    assert f"{SMALL} removed" in again.output and table.stat().st_mtime_ns != before
    both = runner.invoke(
        app, ["tools", str(download.config), "size_based", "--reset-runners", "--reset-filtering"]
    )
    assert both.exit_code != 0


def test_the_original_entry_point_and_flags(download: Download) -> None:
    legacy = str(BIN / "distributed_downloader_tools")
    first = _run(legacy, str(download.config), "size_based", cwd=download.config.parent)
    assert first.returncode == 0, first.stderr
    assert f"{SMALL} removed" in first.stdout
    again = _run(
        legacy,
        str(download.config),
        "size_based",
        "--reset_runners",
        "--tool_name_override",
        "small_gone",
        cwd=download.config.parent,
    )
    assert again.returncode == 0, again.stderr
    assert (download.output / "tools" / "small_gone" / "verified").is_file()


def test_the_original_imports_work() -> None:
    code = (
        "from distributed_downloader import download_images, apply_tools\n"
        "from distributed_downloader.tools import FilterRegister, SchedulerRegister, "
        "RunnerRegister, PythonFilterToolBase, DefaultScheduler, MPIRunnerTool\n"
        "from distributed_downloader.tools.registry import ToolsRegistryBase\n"
        "from distributed_downloader.tools.runners import MPIRunnerTool as M\n"
        "from distdl import apply_tools as a\n"
        "assert M is MPIRunnerTool and callable(a) and callable(download_images)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
