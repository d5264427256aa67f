"""Request headers and FetchSettings built from the config."""

from __future__ import annotations

import re

import pytest

from distdl.config import DownloaderParameters
from distdl.errors import ConfigError
from distdl.net.headers import (
    default_user_agent,
    resolve_headers,
    user_agent_token,
    with_header,
)
from distdl.net.settings import FetchSettings

UA_SHAPE = re.compile(r"^distdl/\S+ \(\+https://github\.com/distdl/distdl(; contact: [^()]+)?\)$")


def test_user_agent_names_distdl_its_version_and_the_project() -> None:
    agent = default_user_agent(None)
    assert UA_SHAPE.match(agent)
    assert "contact" not in agent


def test_user_agent_carries_the_contact() -> None:
    agent = default_user_agent("ops@example.org")
    assert UA_SHAPE.match(agent)
    assert agent.endswith("; contact: ops@example.org)")


@pytest.mark.parametrize("contact", ["evil\r\nX-Injected: 1", "a (b) c", "  "])
def test_contact_cannot_break_the_header(contact: str) -> None:
    agent = default_user_agent(contact)
    assert UA_SHAPE.match(agent)
    assert "\r" not in agent and "\n" not in agent


def test_user_agent_token_is_the_product_name() -> None:
    assert user_agent_token() == "distdl"
    assert default_user_agent(None).startswith(user_agent_token() + "/")


def test_header_true_sends_our_agent_and_asks_for_images() -> None:
    assert resolve_headers(True, "me@x.org") == {
        "User-Agent": default_user_agent("me@x.org"),
        "Accept": "image/*",
    }


def test_header_false_still_sends_our_agent() -> None:
    assert resolve_headers(False, None) == {"User-Agent": default_user_agent(None)}


def test_header_dict_is_used_as_given_plus_our_agent() -> None:
    got = resolve_headers({"Referer": "https://gbif.org", "Accept": "*/*"}, None)
    assert got == {
        "Referer": "https://gbif.org",
        "Accept": "*/*",
        "User-Agent": default_user_agent(None),
    }


def test_header_dict_with_its_own_agent_in_any_case_keeps_it() -> None:
    assert resolve_headers({"user-agent": "MyBot/1.0"}, "me@x.org") == {"user-agent": "MyBot/1.0"}


def test_header_string_is_one_header_plus_our_agent() -> None:
    assert resolve_headers("Referer: https://gbif.org/a:b", None) == {
        "Referer": "https://gbif.org/a:b",
        "User-Agent": default_user_agent(None),
    }


def test_header_string_that_is_the_user_agent_replaces_ours() -> None:
    assert resolve_headers("User-Agent: MyBot/1.0", None) == {"User-Agent": "MyBot/1.0"}


@pytest.mark.parametrize("bad", ["no colon here", ": value", "Bad Name: v"])
def test_malformed_header_string_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"downloader_parameters\.header"):
        resolve_headers(bad, None)


def test_header_value_with_a_line_break_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"downloader_parameters\.header\.X-A"):
        resolve_headers({"X-A": "one\r\nX-B: two"}, None)


def test_with_header_replaces_regardless_of_case() -> None:
    assert with_header({"accept": "image/*", "X": "1"}, "Accept", "text/plain") == {
        "X": "1",
        "Accept": "text/plain",
    }


def test_fetch_settings_from_config() -> None:
    params = DownloaderParameters(
        connect_timeout=3,
        read_timeout=4,
        total_timeout=50,
        max_image_bytes=1234,
        max_redirects=2,
        header={"X-Project": "bio"},
        contact="ops@example.org",
    )
    settings = FetchSettings.from_config(params)
    assert (settings.connect_timeout, settings.read_timeout, settings.total_timeout) == (3, 4, 50)
    assert (settings.max_bytes, settings.max_redirects) == (1234, 2)
    assert settings.headers == resolve_headers({"X-Project": "bio"}, "ops@example.org")


def test_connection_pool_is_never_smaller_than_the_per_host_caps_allow() -> None:
    small = FetchSettings.from_config(
        DownloaderParameters(leases_per_worker=4, max_in_flight_per_host=8)
    )
    big = FetchSettings.from_config(
        DownloaderParameters(leases_per_worker=20, max_in_flight_per_host=32)
    )
    assert small.connections_limit == 256  # the floor
    assert big.connections_limit == 640


def test_default_settings_send_our_agent() -> None:
    assert FetchSettings().headers == resolve_headers(True, None)


def test_settings_keep_a_private_copy_of_the_headers() -> None:
    headers = {"User-Agent": "a"}
    settings = FetchSettings(headers=headers)
    headers["User-Agent"] = "b"
    assert settings.headers == {"User-Agent": "a"}
    assert isinstance(hash(settings), int)  # headers do not take part in the hash


@pytest.mark.parametrize(
    "bad", [{"read_timeout": 0}, {"max_bytes": 0}, {"max_redirects": -1}, {"connections_limit": 0}]
)
def test_settings_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FetchSettings(**bad)  # type: ignore[arg-type]
