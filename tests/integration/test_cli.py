"""The command line as a user runs it: exit codes, messages, stage checkpoints, reset."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import layout_of, write_config

from distdl.api import chosen_ranks
from distdl.config import load_config
from distdl.core.text import plural
from distdl.io.checkpoint import Checkpoint

pytestmark = pytest.mark.timeout(120)


def distdl(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "distdl", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=100,
    )


def _input(folder: Path, rows: list[str], header: str = "uuid,identifier,source_id") -> Path:
    path = folder / "urls.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


ROWS = [f"u{i},http://127.0.0.1:9/img/{i}.jpeg,s{i}" for i in range(7)] + ["bad,ftp://x/y,s"]


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROWS planned once by `distdl run --until batched`: tests that start from a plan take
    a copy (the config's paths are relative, so a copy stands alone)."""
    folder = tmp_path_factory.mktemp("batched")
    _input(folder, ROWS)
    config = write_config(folder)
    planned = distdl("run", config, "--until", "batched")
    assert planned.returncode == 0, planned.stderr
    return folder


def _copy_of(template: Path, folder: Path) -> Path:
    shutil.copytree(template, folder, dirs_exist_ok=True)
    return folder / "config.yaml"


def test_bad_config_exits_2_names_every_key_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "path_to_input": "urls.csv",
                "path_to_output": "out",
                "downloader_parameters": {"image_size": 0, "batch_sise": 3},
            }
        )
    )
    result = distdl("run", config)
    assert result.returncode == 2
    assert "downloader_parameters.image_size" in result.stderr
    assert "did you mean 'batch_size'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_column_and_duplicate_uuids_exit_3(tmp_path: Path) -> None:
    _input(tmp_path, ["u1,http://a.org/x"], header="uuid,identifier")
    config = write_config(tmp_path)
    result = distdl("run", config, "--until", "batched")
    assert result.returncode == 3, result.stderr
    assert "source_id" in result.stderr and "identifier" in result.stderr

    _input(tmp_path, ["u1,http://a.org/x,1", "u1,http://a.org/y,2"])
    result = distdl("run", config, "--until", "batched")
    assert result.returncode == 3, result.stderr
    assert "u1" in result.stderr


def test_changed_plan_is_refused_until_reset(tmp_path: Path) -> None:
    _input(tmp_path, ROWS)
    config = write_config(tmp_path, batch_size=3)
    first = distdl("run", config, "--until", "batched")
    assert first.returncode == 0, first.stderr
    layout = layout_of(config)
    assert Checkpoint.load(layout.checkpoint_file).is_complete("batched")
    assert sorted(p.name for p in layout.urls.glob("server_name=*/partition_id=*")) == [
        "partition_id=0",
        "partition_id=1",
        "partition_id=2",
    ]

    write_config(tmp_path, batch_size=5)
    refused = distdl("run", config, "--until", "batched")
    assert refused.returncode == 4
    assert "batch_size" in refused.stderr and "distdl reset" in refused.stderr

    reset = distdl("reset", config, "--stage", "batched")
    assert reset.returncode == 0, reset.stderr
    again = distdl("run", config, "--until", "batched")
    assert again.returncode == 0, again.stderr
    assert len(list(layout.urls.glob("server_name=*/partition_id=*"))) == 2


def test_resume_refuses_when_nothing_was_started(tmp_path: Path) -> None:
    _input(tmp_path, ROWS)
    config = write_config(tmp_path)
    result = distdl("resume", config)
    assert result.returncode == 4
    assert "nothing to resume" in result.stderr


def test_reset_downloaded_keeps_images_unless_asked_and_stays_inside_output(
    batched: Path, tmp_path: Path
) -> None:
    config = _copy_of(batched, tmp_path)
    layout = layout_of(config)
    fake = layout.images / "server_name=a.org" / "partition_id=0"
    fake.mkdir(parents=True)
    (fake / "successes.parquet").write_bytes(b"images")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")

    result = distdl("reset", config, "--stage", "downloaded")
    assert result.returncode == 0, result.stderr
    (aside,) = layout.root.glob("downloaded_images.previous-*")
    assert (aside / "server_name=a.org" / "partition_id=0" / "successes.parquet").exists()
    assert (layout.rejected_dir / "errors.parquet").exists()  # planning rejects survive
    assert outside.read_text() == "keep me"

    fake.mkdir(parents=True)
    result = distdl("reset", config, "--stage", "downloaded", "--delete-images")
    assert result.returncode == 0, result.stderr
    assert not fake.exists()
    assert (layout.rejected_dir / "errors.parquet").exists()
    assert outside.read_text() == "keep me"


def test_status_and_doctor(batched: Path, tmp_path: Path) -> None:
    config = _copy_of(batched, tmp_path)
    status = distdl("status", config)
    assert status.returncode == 0
    assert "batched     complete" in status.stdout
    assert "1 rejected at planning" in status.stdout
    doctor = distdl("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "pillow-simd" in doctor.stdout


def test_legacy_entry_point_runs_the_stages_and_resets(tmp_path: Path) -> None:
    _input(tmp_path, ["u1,ftp://x/y,1", "u2,,2"])  # nothing to fetch: every row is rejected
    config = write_config(tmp_path)
    legacy = str(Path(sys.executable).parent / "distributed_downloader")
    first = subprocess.run([legacy, str(config)], capture_output=True, text=True, timeout=100)
    assert first.returncode == 0, first.stdout + first.stderr
    checkpoint = Checkpoint.load(layout_of(config).checkpoint_file)
    assert checkpoint.is_complete("downloaded")
    again = subprocess.run(
        [legacy, str(config), "--reset_batched"], capture_output=True, text=True, timeout=100
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "removed the plan" in again.stdout
    assert "2 rejected at planning" in again.stdout


def test_demo_runs_as_shipped_with_the_ranks_distdl_run_picks(tmp_path: Path) -> None:
    result = distdl("demo", "--hosts", "3", "--images", "40", "--output", tmp_path / "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dataset: " in result.stdout and "server side:" in result.stdout
    config_path = tmp_path / "demo" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    assert config["downloader_parameters"]["jpeg_quality"] == 95  # from configs/example.yaml
    ranks = chosen_ranks(load_config(config_path), None)
    assert f"req/s, {plural(ranks, 'rank')}" in result.stdout


def _tree(*roots: Path) -> dict[str, str]:
    """Every entry under ``roots`` (links not followed) with its kind: a snapshot to compare."""
    found: dict[str, str] = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[str(path)] = kind
    return found


@pytest.mark.parametrize("delete", [True, False])
def test_a_refused_reset_moves_nothing(batched: Path, tmp_path: Path, delete: bool) -> None:
    config = _copy_of(batched, tmp_path)
    layout = layout_of(config)
    fake = layout.images / "server_name=a.org" / "partition_id=0"
    fake.mkdir(parents=True)
    (fake / "successes.parquet").write_bytes(b"images")
    # The images folder lives elsewhere, linked into the output (as in the issue).
    elsewhere = tmp_path / "bigdisk" / "images"
    elsewhere.parent.mkdir()
    layout.images.rename(elsewhere)
    layout.images.symlink_to(elsewhere, target_is_directory=True)
    before = _tree(layout.root, elsewhere)
    checkpoint_before = layout.checkpoint_file.read_text()

    refused = distdl("reset", config, "--stage", "downloaded", *(["--delete-images"] * delete))
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert str(layout.images) in refused.stderr and "Nothing was changed" in refused.stderr
    assert _tree(layout.root, elsewhere) == before
    assert layout.checkpoint_file.read_text() == checkpoint_before
    status = distdl("status", config)
    assert "1 rejected at planning" in status.stdout, status.stdout


def test_reset_refuses_a_partition_linked_out_of_the_output_before_touching_any(
    batched: Path, tmp_path: Path
) -> None:
    config = _copy_of(batched, tmp_path)
    layout = layout_of(config)
    for name in ("a.org", "b.org"):
        (layout.images / f"server_name={name}").mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("mine")
    (layout.images / "server_name=z.org").symlink_to(precious, target_is_directory=True)
    before = _tree(layout.root, precious)
    refused = distdl("reset", config, "--stage", "downloaded", "--delete-images")
    assert refused.returncode == 4, refused.stderr
    assert "server_name=z.org" in refused.stderr
    assert _tree(layout.root, precious) == before


def _plant_lock(root: Path, pid: int, host: str | None = None) -> None:
    import socket
    from datetime import datetime, timezone

    from distdl.io.lock import LOCK_FILE, LockHolder

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    holder = LockHolder(
        host=host or socket.gethostname(),
        pid=pid,
        started_at=now,
        heartbeat_at=now,
        command="distdl run /elsewhere/config.yaml",
        token="0123456789abcdef",
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / LOCK_FILE).write_bytes(holder.to_bytes())


def test_a_locked_output_is_refused_with_exit_9_naming_the_holder(tmp_path: Path) -> None:
    import os

    _input(tmp_path, ROWS)
    config = write_config(tmp_path)
    layout = layout_of(config)
    _plant_lock(layout.root, os.getpid())  # this test process stands for the live run
    for command in (["run", config], ["resume", config], ["reset", config, "--stage", "batched"]):
        refused = distdl(*command)
        assert refused.returncode == 9, refused.stdout + refused.stderr
        assert f"pid {os.getpid()}" in refused.stderr
        assert "distdl run /elsewhere/config.yaml" in refused.stderr
        assert "distdl reset" not in refused.stderr  # never suggest a reset here
    assert sorted(p.name for p in layout.root.iterdir() if p.name != "logs") == ["distdl.lock"]
    status = distdl("status", config)
    assert status.returncode == 0 and "in use by `distdl run /elsewhere" in status.stdout


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    _input(tmp_path, ROWS)
    config = write_config(tmp_path)
    layout = layout_of(config)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    _plant_lock(layout.root, int(gone.stdout))
    result = distdl("run", config, "--until", "batched")
    assert result.returncode == 0, result.stderr
    assert (
        "took over the stale lock" in result.stderr
        and f"pid {gone.stdout.strip()}" in result.stderr
    )
    assert not (layout.root / "distdl.lock").exists()


def test_nested_output_entries_are_a_config_error(tmp_path: Path) -> None:
    _input(tmp_path, ROWS)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "path_to_input": "urls.csv",
                "path_to_output": "out",
                "output_structure": {"images_folder": "servers_batched/x"},
            }
        )
    )
    result = distdl("run", config)
    assert result.returncode == 2
    assert "output_structure.urls_folder" in result.stderr
    assert "output_structure.images_folder" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_that_cannot_be_written_is_one_line_and_exit_10(tmp_path: Path) -> None:
    import resource

    _input(tmp_path, [f"u{i},http://127.0.0.{1 + i % 3}:9/{i}.jpeg,s{i}" for i in range(3000)])
    config = write_config(tmp_path, batch_size=1000)

    def small_files() -> None:  # a quota: any file past 1500 bytes fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))

    full = subprocess.run(
        [sys.executable, "-m", "distdl", "run", str(config), "--until", "batched"],
        capture_output=True,
        text=True,
        timeout=100,
        preexec_fn=small_files,
    )
    assert full.returncode == 10, full.stderr
    assert "Traceback" not in full.stderr
    (line,) = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert "cannot write" in line and "File too large (EFBIG)" in line
    assert not Checkpoint.load(layout_of(config).checkpoint_file).is_complete("batched")
    again = distdl("run", config, "--until", "batched")
    assert again.returncode == 0, again.stderr
