"""A plan whose servers were named by an older rule is refused, never mixed (exit 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import layout_of, write_config

from distdl.io.checkpoint import Checkpoint

pytestmark = pytest.mark.timeout(120)

# Planning only: these hosts are never contacted.
SPELLINGS = ["http://Bücher.de/a.jpg", "http://xn--bcher-kva.de./b.jpg", "http://BÜCHER.DE:80/c"]


def distdl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "distdl", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=100)


def _forget_host_key_version(checkpoint: Path) -> None:
    """What a version before host keys wrote: a fingerprint without host_key_version."""
    data = yaml.safe_load(checkpoint.read_text())
    del data["input_fingerprint"]["host_key_version"]
    checkpoint.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_plan_made_with_old_server_names_is_refused_until_reset(tmp_path: Path) -> None:
    rows = [f"u{i},{url},s{i}" for i, url in enumerate(SPELLINGS)]
    (tmp_path / "urls.csv").write_text("\n".join(["uuid,identifier,source_id", *rows]) + "\n")
    config = write_config(tmp_path)
    layout = layout_of(config)
    first = distdl("run", config, "--until", "batched")
    assert first.returncode == 0, first.stderr
    folders = sorted(p.name for p in layout.urls.glob("server_name=*"))
    assert folders == ["server_name=xn--bcher-kva.de"]  # three spellings, one server

    _forget_host_key_version(layout.checkpoint_file)
    for command in ("run", "resume"):
        refused = distdl(command, config)
        assert refused.returncode == 4, refused.stderr
        assert "server names changed" in refused.stderr
        assert f"distdl reset {config} --stage batched" in refused.stderr
    assert not Checkpoint.load(layout.checkpoint_file).is_complete("profiled")
    assert not layout.profiles_table.exists()  # refused before anything was profiled

    assert distdl("reset", config, "--stage", "batched").returncode == 0
    again = distdl("run", config, "--until", "batched")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in layout.urls.glob("server_name=*")) == folders
