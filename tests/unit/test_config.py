from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distdl.config import load_config, parse_config
from distdl.errors import ConfigError


def _problems(tmp_path: Path, data: object) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


BASE = {"path_to_input": "in.csv", "path_to_output": "out"}


def test_defaults_fill_everything_but_the_two_paths(tmp_path: Path) -> None:
    config = parse_config(dict(BASE), tmp_path)
    assert config.path_to_input == (tmp_path / "in.csv").resolve()
    assert config.output_structure.urls_folder == "servers_batched"
    assert config.downloader_parameters.batch_size == 10000
    assert config.downloader_parameters.header is True


def test_missing_paths_name_the_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"path_to_input": "x"})
    assert problems == ["path_to_output: required key is missing (add it)"]


def test_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {**BASE, "downloader_parameters": {"batch_sise": 5}})
    assert problems == [
        "downloader_parameters.batch_sise: unknown key; did you mean 'batch_size'? "
        "(remove or rename it)"
    ]
    (top,) = _problems(tmp_path, {**BASE, "output_structur": {}})
    assert "did you mean 'output_structure'" in top


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("downloader_parameters", "image_size", 0, "greater than 0"),
        ("downloader_parameters", "batch_size", 0, "greater than or equal to 1"),
        ("downloader_parameters", "default_rate_limit", -1, "greater than 0"),
        ("downloader_parameters", "rate_multiplier", 1.5, "less than or equal to 1"),
        ("downloader_parameters", "logger_level", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("downloader_parameters", "image_format", "gif", "'jpeg', 'png' or 'raw'"),
        ("downloader_parameters", "batch_size", "many", "valid integer"),
        ("downloader_parameters", "header", "no colon here", "'Name: value'"),
        ("downloader_parameters", "header", {"Bad Name": "x"}, "invalid HTTP header name"),
        ("tools_parameters", "num_workers", 0, "greater than or equal to 1"),
        ("output_structure", "urls_folder", "../escape", "inside path_to_output"),
        ("output_structure", "logs_folder", "/abs", "inside path_to_output"),
    ],
)
def test_each_bad_value_is_one_line_naming_its_key_path(
    tmp_path: Path, section: str, key: str, value: object, expected: str
) -> None:
    (problem,) = _problems(tmp_path, {**BASE, section: {key: value}})
    assert problem.startswith(f"{section}.{key}: ")
    assert expected in problem


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path, {"downloader_parameters": {"image_size": -1, "batch_size": 0, "nope": 1}}
    )
    assert len(problems) == 5  # two missing paths, two bad values, one unknown key


def test_header_forms(tmp_path: Path) -> None:
    for header in (True, False, {"User-Agent": "me"}, "X-Contact: me@example.org"):
        config = parse_config({**BASE, "downloader_parameters": {"header": header}}, tmp_path)
        assert config.downloader_parameters.header == header


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "a: [unclosed\n")
    assert "not valid YAML at line" in problem
    (problem,) = _problems(tmp_path, "- just\n- a list\n")
    assert "must be a YAML mapping" in problem
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.yaml")


def test_paths_expand_variables_and_are_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTDL_TEST_ROOT", str(tmp_path / "scratch"))
    config = parse_config(
        {"path_to_input": "$DISTDL_TEST_ROOT/in.csv", "path_to_output": "sub/out"}, tmp_path
    )
    assert config.path_to_input == tmp_path / "scratch" / "in.csv"
    assert config.path_to_output == (tmp_path / "sub" / "out").resolve()


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("example.yaml", "gbif.yaml"):
        load_config(root / name)


@pytest.mark.parametrize(
    ("structure", "first", "relation", "second"),
    [
        (
            {"images_folder": "servers_batched/x"},
            "output_structure.urls_folder",
            "contains",
            "output_structure.images_folder",
        ),
        (
            {"logs_folder": "./downloaded_images/"},
            "output_structure.logs_folder",
            "is the same as",
            "output_structure.images_folder",
        ),
        (
            {"urls_folder": "data", "profiles_table": "data/profiles.csv"},
            "output_structure.urls_folder",
            "contains",
            "output_structure.profiles_table",
        ),
        ({"images_folder": "robots"}, "output_structure.images_folder", "is the same as", "robots"),
    ],
)
def test_output_entries_that_nest_or_coincide_name_both_keys(
    tmp_path: Path, structure: dict[str, str], first: str, relation: str, second: str
) -> None:
    (problem,) = _problems(tmp_path, {**BASE, "output_structure": structure})
    assert problem.startswith("output_structure: ")
    assert f"{first} " in problem and f") {relation} " in problem and second in problem


def test_output_entries_may_share_a_parent_folder(tmp_path: Path) -> None:
    structure = {"urls_folder": "work/plan", "images_folder": "work/images"}
    config = parse_config({**BASE, "output_structure": structure}, tmp_path)
    assert config.output_structure.images_folder == "work/images"


def test_an_output_entry_cannot_be_the_output_folder_itself(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, {**BASE, "output_structure": {"images_folder": "."}})
    assert problem.startswith("output_structure.images_folder: ") and "folder itself" in problem


@pytest.mark.parametrize(
    ("sampling", "expected"),
    [
        ({"balanced": True, "rows": 10}, "need a label column: set label"),
        ({"max_per_label": 3}, "need a label column: set label"),
        ({"label": "license", "balanced": True}, "set rows, or drop balanced"),
    ],
)
def test_sampling_options_that_would_do_nothing_are_refused(
    tmp_path: Path, sampling: dict[str, object], expected: str
) -> None:
    (problem,) = _problems(tmp_path, {**BASE, "input_sampling": sampling})
    assert problem.startswith("input_sampling")
    assert expected in problem
