"""The original tool's environment variables, and `export` lines a shell reads back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from distdl.cluster.environment import export_lines, exported, original_environment
from distdl.config import load_config


def test_names_and_values_as_the_original_exported_them(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    data = {
        "path_to_input": "urls.csv",
        "path_to_output": "out dir",
        "downloader_parameters": {
            "batch_size": 500,
            "default_rate_limit": 2,
            "rate_multiplier": 0.5,
        },
        "tools_parameters": {"threshold_size": 128},
        "slurm": {"account": "bio42"},
    }
    path.write_text(yaml.safe_dump(data))
    env = original_environment(load_config(path), path, tool="resize")
    out = tmp_path / "out dir"
    assert env["CONFIG_PATH"] == str(path)
    assert env["PATH_TO_INPUT"] == str(tmp_path / "urls.csv")
    assert env["PATH_TO_OUTPUT"] == env["OUTPUT_PATH_TO_OUTPUT_FOLDER"] == str(out)
    assert env["OUTPUT_URLS_FOLDER"] == str(out / "servers_batched")
    assert env["OUTPUT_LOGS_FOLDER"] == str(out / "logs")
    assert env["OUTPUT_SCHEDULES_FOLDER"] == str(out / "schedules")
    assert env["OUTPUT_INNER_CHECKPOINT_FILE"] == str(out / "inner_checkpoint.yaml")
    assert env["OUTPUT_TOOLS_LOGS_FOLDER"] == str(out / "tools" / "resize" / "logs")
    assert env["DOWNLOADER_BATCH_SIZE"] == "500"
    assert env["DOWNLOADER_DEFAULT_RATE_LIMIT"] == "2"  # as written, not 2.0
    assert env["DOWNLOADER_RATE_MULTIPLIER"] == "0.5"
    assert env["DOWNLOADER_HEADER"] == "True"
    assert env["DOWNLOADER_CONTACT"] == ""
    assert env["DOWNLOADER_NUM_DOWNLOADS"] == "1"
    assert env["TOOLS_THRESHOLD_SIZE"] == "128"
    assert env["ACCOUNT"] == "bio42"


def test_export_lines_read_back_by_bash_give_the_same_values() -> None:
    env = {"A": "plain", "B": "with space", "C": 'it\'s $HOME `x` "q"', "D": ""}
    script = "\n".join(export_lines(env)) + '\nprintf "%s|" "$A" "$B" "$C" "$D"\n'
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert shown.stdout == 'plain|with space|it\'s $HOME `x` "q"||'


def test_a_proxy_password_never_reaches_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    data = {
        "path_to_input": "urls.csv",
        "path_to_output": "out",
        "downloader_parameters": {"proxy": "http://ana:s3cret@proxy.site.example:3128"},
    }
    path.write_text(yaml.safe_dump(data))
    env = original_environment(load_config(path), path)
    assert env["DOWNLOADER_PROXY"] == "http://proxy.site.example:3128"
    assert not any("s3cret" in line for line in export_lines(env))


def test_exported_gives_the_callers_environment_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH_TO_OUTPUT", "/theirs")
    monkeypatch.delenv("CONFIG_PATH", raising=False)
    with exported({"PATH_TO_OUTPUT": "/ours", "CONFIG_PATH": "/ours/config.yaml"}):
        assert os.environ["PATH_TO_OUTPUT"] == "/ours"
        assert os.environ["CONFIG_PATH"] == "/ours/config.yaml"
    assert os.environ["PATH_TO_OUTPUT"] == "/theirs"
    assert "CONFIG_PATH" not in os.environ
