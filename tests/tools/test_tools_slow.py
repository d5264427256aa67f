"""Tools on real MPI ranks, SIGKILLed runners, and the Hugging Face `datasets` library."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from test_tools_plugins import HOST_B_ROWS, write_plugin
from tools_support import (
    SUCCESSES,
    Download,
    apply,
    download_rows,
    set_tools_parameters,
    version_rows,
)

from distdl.core.stopping import DEFAULT_GRACE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PARTITIONS = 9


def _tools(
    download: Download, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "distdl", "tools", str(download.config), *argv]
    return subprocess.run(
        command,
        cwd=download.config.parent,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def _done_markers(download: Download, name: str) -> int:
    return len(
        list((download.output / "tools" / name).glob("server_name=*/partition_id=*/completed"))
    )


def _assert_exactly_once(download: Download, name: str) -> None:
    """Every input row is kept or removed in exactly one partition; no temp file is left."""
    folder = download.output / "tools" / name
    seen: Counter[str] = Counter()
    for path in folder.glob("server_name=*/partition_id=*/*.parquet"):
        seen.update(pq.read_table(path, columns=["uuid"]).column("uuid").to_pylist())
    assert set(seen) == set(download_rows(download, ["uuid"])["uuid"])
    assert max(seen.values()) == 1
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name]


@pytest.mark.mpi
def test_mpi_ranks_write_what_one_process_writes(download: Download, tmp_path: Path) -> None:
    set_tools_parameters(download, new_resize_size=100)
    ranked = _tools(download, "resize", "--ranks", "3")
    assert ranked.returncode == 0, ranked.stderr
    assert f"{SUCCESSES} kept" in ranked.stdout
    apply(download, "resize", tool_name_override="resize_one")
    by_ranks = version_rows(download, "resize", ["uuid", "hashsum_resized"]).sort("uuid")
    alone = version_rows(download, "resize_one", ["uuid", "hashsum_resized"]).sort("uuid")
    assert by_ranks.equals(alone)
    markers = (download.output / "tools" / "resize").glob("server_name=*/partition_id=*/completed")
    assert {json.loads(m.read_text())["rank"] for m in markers} == {0, 1, 2}
    # A plugin file runs on every rank like a built-in.
    plugin = write_plugin(tmp_path / "elsewhere")
    custom = _tools(download, "drop_host_b", "--ranks", "2", "--plugin", str(plugin))
    assert custom.returncode == 0, custom.stderr
    assert f"{HOST_B_ROWS} removed" in custom.stdout


def test_a_killed_runner_resumes_exactly_once(download: Download) -> None:
    # SIGKILL at the 7th parquet rename: three partitions done, the fourth half written.
    killed = _tools(
        download, "resize", "--ranks", "1", env={"DISTDL_FAULT": "parquet.publish@7=kill"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert 0 < _done_markers(download, "resize") < PARTITIONS
    assert not (download.output / "tools" / "resize" / "verified").exists()
    resumed = _tools(download, "resize", "--ranks", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert _done_markers(download, "resize") == PARTITIONS
    _assert_exactly_once(download, "resize")


@pytest.mark.mpi
def test_a_killed_mpi_rank_fails_the_run_and_resume_finishes(download: Download) -> None:
    killed = _tools(
        download,
        "size_based",
        "--ranks",
        "2",
        env={"DISTDL_FAULT": "parquet.publish@3=kill", "DISTDL_FAULT_RANK": "1"},
    )
    assert killed.returncode != 0
    assert not (download.output / "tools" / "size_based" / "verified").exists()
    resumed = _tools(download, "size_based", "--ranks", "2")
    assert resumed.returncode == 0, resumed.stderr
    _assert_exactly_once(download, "size_based")


@pytest.mark.mpi
@pytest.mark.parametrize("after", [0.05, 0.3, 0.6])
def test_a_stop_signal_on_tool_ranks_stops_them_all_at_once(
    download: Download, after: float
) -> None:
    """The signal reaches every rank, wherever each one is (rank 0 taking the lock or
    preparing the version while the others wait for it, a share of the partitions, the
    final gathering, the exit): none may leave a collective on its own, or the others would
    wait in it until the launcher killed them after the grace, and none dies of it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "distdl", "tools", str(download.config), "resize", "--ranks", "3"],
        cwd=download.config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signal reaches only the launcher, which forwards it
    )
    last_rank_log = download.output / "logs" / "rank-2.log"
    deadline = time.monotonic() + 120
    while not last_rank_log.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the ranks never started"
        time.sleep(0.01)
    time.sleep(after)
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGUSR1)
    stdout, stderr = process.communicate(timeout=DEFAULT_GRACE + 60)
    seconds = time.monotonic() - sent
    assert "did not stop within the grace" not in stdout + stderr, stdout + stderr
    assert seconds < DEFAULT_GRACE / 2, (seconds, stderr)
    assert process.returncode in (0, 143), stdout + stderr  # 0: it finished first
    assert "BAD TERMINATION" not in stderr, stderr  # mpiexec's word for a rank that died
    if process.returncode == 143:
        assert "stopped: continue with: distdl tools" in stdout + stderr, stdout + stderr
        assert "Traceback" not in stdout + stderr, stdout + stderr
    resumed = _tools(download, "resize", "--ranks", "3")
    assert resumed.returncode == 0, resumed.stderr
    _assert_exactly_once(download, "resize")


HF_CHECK = """
import sys, datasets
dataset = datasets.load_dataset("parquet", data_dir=sys.argv[1], split="train")
assert isinstance(dataset.features["image"], datasets.Image), dataset.features
image = dataset[0]["image"]
print(len(dataset), image.size)
"""


def test_huggingface_datasets_loads_the_export(download: Download, tmp_path: Path) -> None:
    """`datasets` needs plain Pillow to decode: it runs in a virtualenv of its own, never in
    distdl's (which has pillow-simd)."""
    from distdl.tools.exports import export_version

    export_version(download.config, "download", tmp_path / "hf", "huggingface", 10)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "datasets", "pillow"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    if pip.returncode != 0:
        pytest.skip(f"cannot install datasets here: {pip.stderr[-300:]}")
    checked = subprocess.run(
        [str(venv / "bin" / "python"), "-c", HF_CHECK, str(tmp_path / "hf")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")},
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    count, _size = checked.stdout.split(" ", 1)
    assert int(count) == SUCCESSES
    assert pl.read_parquet(tmp_path / "hf" / "data" / "*.parquet").height == SUCCESSES
