"""One real download from the simulated fleet for every tools test; each test works on a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tools_support import Download, make_download


@pytest.fixture(scope="session")
def pristine_download(tmp_path_factory: pytest.TempPathFactory) -> Download:
    return make_download(tmp_path_factory.mktemp("tools-download") / "dl")


@pytest.fixture
def download(pristine_download: Download, tmp_path: Path) -> Download:
    """A private copy: tools write under its output, and some tests damage it."""
    copy = tmp_path / "dl"
    shutil.copytree(pristine_download.config.parent, copy, ignore=shutil.ignore_patterns("logs"))
    return Download(copy / "config.yaml", copy / "out")
