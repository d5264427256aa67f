"""memory_per_rank and image_timeout: human sizes, and a budget that cannot hold one image
at max_image_bytes / max_image_pixels is a config error naming the key and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distdl.config import parse_config
from distdl.errors import ConfigError

BASE = {"path_to_input": "in.csv", "path_to_output": "out"}


def _params(tmp_path: Path, **params: object) -> object:
    return parse_config({**BASE, "downloader_parameters": params}, tmp_path).downloader_parameters


def test_defaults_are_one_gib_and_thirty_seconds(tmp_path: Path) -> None:
    params = _params(tmp_path)
    assert params.memory_per_rank == 1024**3  # type: ignore[attr-defined]
    assert params.image_timeout == 30.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "expected"), [("2GiB", 2 * 1024**3), ("1.5 GiB", 3 * 1024**3 // 2), (10**10, 10**10)]
)
def test_the_budget_takes_bytes_or_a_human_size(
    tmp_path: Path, value: object, expected: int
) -> None:
    assert _params(tmp_path, memory_per_rank=value).memory_per_rank == expected  # type: ignore[attr-defined]


def test_a_budget_too_small_for_one_image_names_the_key_the_limits_and_the_fix(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        _params(tmp_path, memory_per_rank="512MiB")
    [problem] = caught.value.problems
    assert problem.startswith("downloader_parameters.memory_per_rank:")
    assert "max_image_bytes (50 MiB)" in problem and "max_image_pixels (178956970 px" in problem
    assert "set memory_per_rank to at least" in problem
    need = int(problem.split("at least ")[1].split()[0])
    assert _params(tmp_path, memory_per_rank=need).memory_per_rank == need  # type: ignore[attr-defined]
    assert _problems_or_none(tmp_path, memory_per_rank=need - 1)


def _problems_or_none(tmp_path: Path, **params: object) -> list[str] | None:
    try:
        _params(tmp_path, **params)
    except ConfigError as error:
        return error.problems
    return None


def test_the_default_budget_is_checked_against_raised_limits(tmp_path: Path) -> None:
    problems = _problems_or_none(tmp_path, max_image_pixels=400_000_000)
    assert problems and problems[0].startswith("downloader_parameters.memory_per_rank:")
    # ... and lower limits make room for a smaller budget.
    small = _params(tmp_path, memory_per_rank="128MiB", max_image_pixels=8_000_000)
    assert small.memory_per_rank == 128 * 1024**2  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["lots", "-1GiB", 0, "1 parsec"])
def test_what_is_not_a_size_is_refused(tmp_path: Path, value: object) -> None:
    problems = _problems_or_none(tmp_path, memory_per_rank=value)
    assert problems and problems[0].startswith("downloader_parameters.memory_per_rank:")


def test_the_time_limit_must_be_positive(tmp_path: Path) -> None:
    problems = _problems_or_none(tmp_path, image_timeout=0)
    assert problems and problems[0].startswith("downloader_parameters.image_timeout:")


def test_distdl_run_exits_2_on_a_budget_too_small(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    params = {"memory_per_rank": "100MiB"}
    config.write_text(yaml.safe_dump({**BASE, "downloader_parameters": params}))
    result = subprocess.run(
        [sys.executable, "-m", "distdl", "run", str(config)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 2
    assert "downloader_parameters.memory_per_rank" in result.stderr
    assert "set memory_per_rank to at least" in result.stderr
    assert not (tmp_path / "out").exists()
