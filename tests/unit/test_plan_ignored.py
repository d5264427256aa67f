"""The ignored-servers table, in both header spellings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distdl.core.urls import classify_url
from distdl.errors import InputError
from distdl.plan.ignored import read_ignored_servers


def test_no_file_means_nothing_is_ignored(tmp_path: Path) -> None:
    assert read_ignored_servers(tmp_path / "ignored_servers.csv") == frozenset()


@pytest.mark.parametrize("header", ["server_name", "ServerName"])
def test_both_header_spellings_are_accepted(tmp_path: Path, header: str) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text(f"{header},reason\n Example.ORG ,slow\nhost:8080,\n,empty\n")
    assert read_ignored_servers(path) == frozenset({"example.org", "host:8080"})


def test_names_are_read_as_server_keys(tmp_path: Path) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text("server_name\nBücher.de\nＡ.org.\n2130706433:80\n[0:0::1]:8080\n")
    ignored = read_ignored_servers(path)
    assert ignored == frozenset({"xn--bcher-kva.de", "a.org", "127.0.0.1", "[::1]:8080"})
    urls = ["http://xn--bcher-kva.de/a", "https://a.org/b", "http://0x7f.1/c", "http://[::1]:8080/"]
    assert {classify_url(url).server_name for url in urls} == ignored


def test_a_name_that_is_no_server_is_refused_by_row(tmp_path: Path) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text("server_name\na.org\nhttp://b.org/x\n")
    with pytest.raises(InputError, match=re.escape("'http://b.org/x' is not a host name")):
        read_ignored_servers(path)


def test_a_header_only_file_ignores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text("server_name\n")
    assert read_ignored_servers(path) == frozenset()


def test_a_table_without_the_column_names_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "ignored_servers.csv"
    path.write_text("host,reason\nexample.org,slow\n")
    with pytest.raises(InputError, match="columns found: host, reason"):
        read_ignored_servers(path)
