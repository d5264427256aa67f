"""What a new user trips over first: --version, help without `<bool>`, a failed start that
leaves a folder behind, resets whose leftovers pile up unmentioned, plurals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import layout_of, write_config

import distdl
from distdl.core.text import plural

pytestmark = pytest.mark.timeout(120)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "distdl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=100,
    )


def test_version_and_help_without_bool_labels() -> None:
    shown = run_cli("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"distdl {distdl.__version__}"
    for command in ([], ["run"], ["reset"], ["status"]):
        helped = run_cli(*command, "--help")
        assert helped.returncode == 0, helped.stderr
        assert "<bool>" not in helped.stdout, helped.stdout
    reset_help = run_cli("reset", "--help").stdout
    assert "--purge-previous" in reset_help and "--no-purge-previous" not in reset_help


def test_a_start_with_a_missing_input_writes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, input_name="nothere.csv")
    failed = run_cli("run", config, "--ranks", "1")
    assert failed.returncode == 3, failed.stderr
    assert "nothere.csv" in failed.stderr
    assert not (tmp_path / "out").exists()


def test_status_lists_what_resets_moved_aside_and_purge_removes_it(tmp_path: Path) -> None:
    rows = "".join(f"u{i},http://a.org/{i}.jpg,s{i}\n" for i in range(3))
    (tmp_path / "urls.csv").write_text("uuid,identifier,source_id\n" + rows)
    config = write_config(tmp_path)
    assert run_cli("run", config, "--until", "profiled", "--ranks", "1").returncode == 0
    layout = layout_of(config)
    old = layout.images / "server_name=a.org" / "partition_id=0"
    old.mkdir(parents=True)
    (old / "successes.parquet").write_bytes(b"x" * 5000)
    reset = run_cli("reset", config, "--stage", "profiled")
    assert reset.returncode == 0, reset.stderr
    assert "moved the profiles table to" in reset.stdout
    assert "moved downloaded partitions to" in reset.stdout
    status = json.loads(run_cli("status", config, "--json").stdout)
    moved = {Path(entry["path"]).name.split(".previous-")[0] for entry in status["previous"]}
    assert moved == {layout.images.name, layout.profiles_table.name}
    assert max(entry["bytes"] for entry in status["previous"]) >= 5000
    assert "distdl reset CONFIG --purge-previous" in run_cli("status", config).stdout
    purged = run_cli("reset", config, "--purge-previous")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.count("removed ") == 2
    assert json.loads(run_cli("status", config, "--json").stdout)["previous"] == []
    assert layout.root.exists() and (layout.urls / "servers.parquet").exists()


def test_counts_read_as_words() -> None:
    assert plural(1, "partition") == "1 partition"
    assert plural(0, "partition") == "0 partitions"
    assert plural(2, "rank") == "2 ranks"
    assert plural(3, "entry", "entries") == "3 entries"
