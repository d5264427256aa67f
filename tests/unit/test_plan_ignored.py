"""The ignored-servers table, in both header spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from distdl.errors import InputError
from distdl.plan.ignored import read_ignored_servers


def test_no_file_means_nothing_is_ignored(tmp_path: Path) -> None:
    assert read_ignored_servers(tmp_path / "ignored_servers.csv") == frozenset()


@pytest.mark.parametrize("header", ["server_name", "ServerName"])
def test_both_header_spellings_are_accepted(tmp_path: Path, header: str) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text(f"{header},reason\n Example.ORG ,slow\nhost:8080,\n,empty\n")
    assert read_ignored_servers(path) == frozenset({"example.org", "host:8080"})


def test_a_header_only_file_ignores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text("server_name\n")
    assert read_ignored_servers(path) == frozenset()


def test_a_table_without_the_column_names_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text("host,reason\nexample.org,slow\n")
    with pytest.raises(InputError, match="columns found: host, reason"):
        read_ignored_servers(path)
