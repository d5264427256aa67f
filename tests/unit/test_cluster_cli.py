"""`distdl submit` and `distdl env` from the command line, with fake sbatch/squeue programs
on the PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distdl.cli import app


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    data = {
        "path_to_input": "urls.csv",
        "path_to_output": "out",
        "downloader_parameters": {"num_downloads": 2, "workers_per_node": 4},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _fake_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sbatch: str) -> Path:
    """sbatch runs ``sbatch`` (shell) and logs its arguments; squeue lists nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho "$@" >> {log}\n{sbatch}\n')
    (bin_dir / "squeue").write_text("#!/bin/bash\nexit 0\n")
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    return log


def test_submit_queues_the_chain_and_prints_its_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _fake_programs(
        tmp_path, monkeypatch, 'echo "$((500 + $(wc -l < ' + str(tmp_path / "sbatch.log") + ')))"'
    )
    result = CliRunner().invoke(app, ["submit", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "501 -> 502" in result.output
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "--dependency=afterany:501" in calls[1]


def test_a_refused_submission_exits_7_with_sbatch_s_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_programs(
        tmp_path,
        monkeypatch,
        'echo "sbatch: error: Batch job submission failed: Invalid qos" >&2; exit 1',
    )
    result = CliRunner().invoke(app, ["submit", str(_config(tmp_path))])
    assert result.exit_code == 7
    assert "Invalid qos" in result.output and "job 1 of 2" in result.output


def test_dry_run_submits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _fake_programs(tmp_path, monkeypatch, "echo 1")
    result = CliRunner().invoke(
        app, ["submit", str(_config(tmp_path)), "--dry-run", "--nodes", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "#SBATCH --nodes=3" in result.output and "JOB2=$(sbatch --parsable" in result.output
    assert not log.exists()


def test_env_prints_export_lines_a_shell_can_eval(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = CliRunner().invoke(app, ["env", str(config)])
    assert result.exit_code == 0, result.output
    shown = subprocess.run(
        [
            "bash",
            "-c",
            result.output
            + 'echo "$CONFIG_PATH|$OUTPUT_IMAGES_FOLDER|$DOWNLOADER_WORKERS_PER_NODE"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = tmp_path / "out"
    assert shown.stdout.strip() == f"{config}|{out / 'downloaded_images'}|4"
