"""The profiles table names its servers by their server keys, however a row spells them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distdl.core.urls import classify_url
from distdl.errors import InputError
from distdl.io.profiles import HostProfile, read_profiles, write_profiles


def test_hand_written_rows_are_keyed_like_the_urls_of_their_server(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text(
        "server_name,rate_limit\nBücher.de,1\nＡ.ORG.,2\n2130706693:8080,3\n[0:0::1],4\n"
    )
    profiles = read_profiles(path)
    urls = {
        "http://xn--bcher-kva.de/x.jpg": 1.0,
        "https://a.org/x.jpg": 2.0,
        "http://127.0.1.5:8080/x.jpg": 3.0,
        "http://[::1]/x.jpg": 4.0,
    }
    for url, rate in urls.items():
        name = classify_url(url).server_name
        assert name is not None
        assert profiles[name].rate_limit == rate
        assert profiles[name].server_name == name


def test_two_rows_naming_one_server_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("server_name,rate_limit\nbücher.de,1\nxn--bcher-kva.de,5\n")
    with pytest.raises(
        InputError, match=re.escape("'bücher.de' and 'xn--bcher-kva.de' both name server")
    ):
        read_profiles(path)


def test_a_row_that_names_no_server_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("server_name,rate_limit\na.org,1\n256.1.1.1,2\n")
    with pytest.raises(InputError, match=re.escape("bad row for '256.1.1.1'")):
        read_profiles(path)


def test_a_written_table_reads_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    profiles = [
        HostProfile("xn--bcher-kva.de", 2.0, max_rate_limit=10.0, learned_at="t"),
        HostProfile("127.0.1.5:8080", 3.0),
        HostProfile("[2001:db8::1]:81", 4.0, status="healthy"),
    ]
    write_profiles(path, profiles)
    assert read_profiles(path) == {p.server_name: p for p in profiles}
