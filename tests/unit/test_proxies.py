"""Which proxy a request goes through (config key vs environment vs NO_PROXY), decided
without a socket; and what the network adapter makes of the choice."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from distdl.api import RunOptions, run
from distdl.config import DownloaderParameters, parse_config
from distdl.core.proxies import (
    DIRECT,
    choose_proxies,
    parse_no_proxy,
    redacted,
    without_credentials,
)
from distdl.errors import ConfigError
from distdl.net.addresses import ResolverLookup
from distdl.net.proxy import PROXY_AUTHORIZATION, proxied_request
from distdl.net.settings import FetchSettings

SITE = "http://proxy.site:3128"


def through(environ: dict[str, str], url: str, configured: str | bool | None = None) -> str | None:
    return choose_proxies(configured, environ).proxy_for(url)


# --- the environment ------------------------------------------------------------------------


def test_no_variable_means_direct() -> None:
    assert choose_proxies(None, {}) == DIRECT
    assert through({}, "https://a.org/x.jpg") is None


def test_each_scheme_has_its_own_variable() -> None:
    env = {"HTTPS_PROXY": "http://tls.site:1", "HTTP_PROXY": "http://plain.site:2"}
    assert through(env, "https://a.org/x.jpg") == "http://tls.site:1"
    assert through(env, "http://a.org/x.jpg") == "http://plain.site:2"
    assert through({"HTTPS_PROXY": SITE}, "http://a.org/x.jpg") is None


def test_lower_case_wins_and_an_empty_value_is_unset() -> None:
    env = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}
    assert through(env, "https://a.org/") == "http://lower:1"
    assert through({"https_proxy": " ", "HTTPS_PROXY": "http://upper:2"}, "https://a.org/") == (
        "http://upper:2"
    )
    assert through({"HTTPS_PROXY": "", "HTTP_PROXY": ""}, "https://a.org/") is None


def test_a_proxy_without_a_scheme_is_http() -> None:
    assert through({"HTTPS_PROXY": "proxy.site:3128"}, "https://a.org/") == SITE


def test_all_proxy_is_not_read() -> None:
    assert through({"ALL_PROXY": SITE, "all_proxy": SITE}, "https://a.org/") is None


@pytest.mark.parametrize("value", ["socks5://proxy.site:1080", "http://:3128", "http://h:99999"])
def test_an_unusable_environment_proxy_names_its_variable(value: str) -> None:
    with pytest.raises(ValueError, match="environment HTTPS_PROXY"):
        choose_proxies(None, {"HTTPS_PROXY": value})


def test_an_unusable_environment_proxy_is_a_config_error_at_rank_start() -> None:
    with pytest.raises(ConfigError, match="socks5:// proxies are not supported"):
        FetchSettings.from_config(DownloaderParameters(), {"https_proxy": "socks5://p:1080"})


def test_a_run_refuses_an_unusable_proxy_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "urls.csv").write_text("uuid,identifier\nu1,http://127.0.1.9:9/x.jpg\n")
    config = tmp_path / "config.yaml"
    config.write_text("path_to_input: urls.csv\npath_to_output: out\n")
    monkeypatch.setenv("http_proxy", "socks5h://127.0.0.1:1080")
    with pytest.raises(ConfigError, match="environment http_proxy: socks5h://"):
        run(config, RunOptions(ranks=1))
    assert not (tmp_path / "out").exists()


# --- the config key ---------------------------------------------------------------------------


def test_the_config_key_overrides_both_variables() -> None:
    env = {"HTTPS_PROXY": "http://env:1", "HTTP_PROXY": "http://env:2"}
    assert through(env, "https://a.org/", "http://key.site:8080") == "http://key.site:8080"
    assert through(env, "http://a.org/", "http://key.site:8080") == "http://key.site:8080"


def test_no_proxy_still_applies_under_the_config_key() -> None:
    env = {"NO_PROXY": "mirror.site"}
    assert through(env, "https://mirror.site/x.jpg", SITE) is None
    assert through(env, "https://a.org/x.jpg", SITE) == SITE


def test_false_means_direct_even_when_the_environment_names_a_proxy() -> None:
    env = {"HTTPS_PROXY": SITE, "HTTP_PROXY": SITE}
    assert choose_proxies(False, env) == DIRECT
    assert through(env, "https://a.org/", False) is None


def test_the_key_in_a_config_file(tmp_path: Path) -> None:
    def params(proxy: object) -> DownloaderParameters:
        data = {"path_to_input": "u.csv", "path_to_output": "out"}
        data["downloader_parameters"] = {"proxy": proxy}  # type: ignore[assignment]
        return parse_config(data, tmp_path).downloader_parameters

    assert params("proxy.site:3128").proxy == SITE
    assert params(False).proxy is False
    assert params(None).proxy is None
    assert DownloaderParameters().proxy is None
    for bad, why in [(True, "true is not a proxy"), ("socks5://p:1080", "socks5://")]:
        with pytest.raises(ConfigError, match=f"downloader_parameters.proxy: .*{why}"):
            params(bad)


def test_settings_from_config_read_the_given_environment() -> None:
    params = DownloaderParameters(proxy=None)
    settings = FetchSettings.from_config(params, {"HTTP_PROXY": SITE, "NO_PROXY": "a.org"})
    assert settings.proxies.proxy_for("http://b.org/") == SITE
    assert settings.proxies.proxy_for("http://a.org/") is None
    keyed = FetchSettings.from_config(DownloaderParameters(proxy=False), {"HTTP_PROXY": SITE})
    assert keyed.proxies == DIRECT
    assert FetchSettings().proxies == DIRECT  # only from_config reads an environment


def test_without_credentials_drops_user_and_password_and_keeps_the_rest() -> None:
    assert without_credentials("http://ann:s3cret@proxy.site:3128") == "http://proxy.site:3128"
    assert without_credentials("http://ann@proxy.site:3128/") == "http://proxy.site:3128/"
    assert without_credentials("http://a:p@[2001:db8::1]:8080") == "http://[2001:db8::1]:8080"
    assert without_credentials("http://proxy.site:3128") == "http://proxy.site:3128"


def test_a_password_is_never_shown() -> None:
    secret = "http://ann:s3cret@proxy.site:3128"
    assert redacted(secret) == "http://ann:***@proxy.site:3128"
    choice = choose_proxies(secret, {})
    assert choice.proxy_for("http://a.org/") == secret  # kept for the network adapter
    assert "s3cret" not in repr(choice)
    assert "s3cret" not in repr(FetchSettings(proxies=choice))
    with pytest.raises(ValueError) as refused:
        choose_proxies(None, {"HTTPS_PROXY": "http://ann:s3cret@proxy.site:0"})
    assert "s3cret" not in str(refused.value)


# --- NO_PROXY, matched against the server key -------------------------------------------------


def bypassed(no_proxy: str, url: str) -> bool:
    env = {"HTTP_PROXY": SITE, "HTTPS_PROXY": SITE, "NO_PROXY": no_proxy}
    return through(env, url) is None


@pytest.mark.parametrize("entry", ["a.org", ".a.org", "*.a.org", "A.ORG", "a.org."])
def test_a_name_exempts_itself_and_the_names_below_it(entry: str) -> None:
    assert bypassed(entry, "https://a.org/x.jpg")
    assert bypassed(entry, "https://img.a.org/x.jpg")
    assert not bypassed(entry, "https://xa.org/x.jpg")  # a suffix of a label is not a match
    assert not bypassed(entry, "https://a.org.evil.com/x.jpg")


def test_names_are_folded_like_server_keys() -> None:
    assert bypassed("Bücher.de", "https://xn--bcher-kva.de/x.jpg")
    assert bypassed("xn--bcher-kva.de", "https://BÜCHER.de./x.jpg")
    assert bypassed("127.0.0.1", "http://2130706433/x.jpg")  # the URL's 127.0.0.1
    assert bypassed("127.1", "http://127.0.0.1:8080/x.jpg")


def test_a_port_restricts_an_entry_to_that_port() -> None:
    assert bypassed("a.org:8080", "http://a.org:8080/x.jpg")
    assert not bypassed("a.org:8080", "http://a.org/x.jpg")
    assert bypassed("a.org:443", "https://a.org/x.jpg")  # the scheme's port
    assert not bypassed("a.org:443", "http://a.org/x.jpg")
    assert bypassed("[::1]:8080", "http://[::1]:8080/x.jpg")


def test_addresses_and_blocks_match_ip_literals_only() -> None:
    assert bypassed("10.0.0.0/8", "http://10.1.2.3/x.jpg")
    assert not bypassed("10.0.0.0/8", "http://11.1.2.3/x.jpg")
    assert bypassed("192.168.1.7", "http://192.168.1.7:81/x.jpg")
    assert bypassed("::1", "http://[::1]/x.jpg")
    assert bypassed("fd00::/8", "https://[fd00::5]/x.jpg")
    # A name is never resolved here: a block exempts no name, whatever it stands for.
    assert not bypassed("127.0.0.0/8", "http://localhost/x.jpg")
    # and a name rule never matches an address by its digits
    assert not bypassed("0.0.1", "http://127.0.0.1/x.jpg")


def test_a_star_exempts_everything() -> None:
    assert bypassed("*", "https://anything.org/x.jpg")
    assert bypassed("a.org, *", "http://10.0.0.1/x.jpg")


def test_entries_are_separated_by_commas_or_spaces_and_bad_ones_ignored() -> None:
    assert len(parse_no_proxy(" a.org ,b.org c.org,,")) == 3
    assert parse_no_proxy("a.org:http, exa mple, [::1, host:0, ,") == (
        parse_no_proxy("exa") + parse_no_proxy("mple")
    )
    assert bypassed("junk:port, a.org", "https://a.org/")


def test_a_url_that_is_not_http_goes_direct() -> None:
    assert through({"HTTP_PROXY": SITE, "NO_PROXY": "a.org"}, "ftp://b.org/x") is None
    assert through({"HTTP_PROXY": SITE, "NO_PROXY": "a.org"}, "http://exa mple/") is None


# --- the network adapter: how the request is sent --------------------------------------------


def test_a_direct_request_is_unchanged() -> None:
    how = proxied_request("https://a.org/", None, {"User-Agent": "distdl"})
    assert (dict(how.headers), how.proxy, how.proxy_headers) == (
        {"User-Agent": "distdl"},
        None,
        None,
    )


def test_credentials_go_to_the_proxy_where_it_reads_them() -> None:
    proxy = "http://ann:s%40cret@proxy.site:3128"
    expected = "Basic " + base64.b64encode(b"ann:s@cret").decode()
    plain = proxied_request("http://a.org/x.jpg", proxy, {"User-Agent": "distdl"})
    assert str(plain.proxy) == SITE  # aiohttp must not see them in the URL
    assert plain.headers == {"User-Agent": "distdl", PROXY_AUTHORIZATION: expected}
    assert plain.proxy_headers is None
    # Through a CONNECT tunnel only the CONNECT carries them: the target never sees them.
    tunnelled = proxied_request("https://a.org/x.jpg", proxy, {"User-Agent": "distdl"})
    assert str(tunnelled.proxy) == SITE
    assert tunnelled.headers == {"User-Agent": "distdl"}
    assert tunnelled.proxy_headers == {PROXY_AUTHORIZATION: expected}
    bare = proxied_request("https://a.org/x.jpg", SITE, {})
    assert (str(bare.proxy), bare.proxy_headers) == (SITE, None)


# --- the address check through a proxy --------------------------------------------------------


class CountingResolver(AbstractResolver):
    """Answers every name with 10.0.0.9 and counts the look-ups."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        answer: Any = {"hostname": host, "host": "10.0.0.9", "port": port, "family": family}
        return [answer, {**answer, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


async def test_through_a_proxy_a_name_stands_for_no_address_and_is_not_resolved() -> None:
    resolver = CountingResolver()
    proxies = choose_proxies(SITE, {"NO_PROXY": "mirror.site"})
    lookup = ResolverLookup(resolver, proxies)
    assert await lookup.addresses("https://images.example/x.jpg") == ()
    assert resolver.asked == []
    # Literals are still themselves (so a redirect to one is checked), in any notation.
    assert await lookup.addresses("http://10.0.0.5/x.jpg") == ("10.0.0.5",)
    assert await lookup.addresses("http://0x7f.1/x.jpg") == ("127.0.0.1",)
    assert await lookup.addresses("http://[fd00::1]:81/x.jpg") == ("fd00::1",)
    # A host reached directly (NO_PROXY) is resolved as without a proxy.
    assert await lookup.addresses("https://mirror.site/x.jpg") == ("10.0.0.9",)
    assert resolver.asked == ["mirror.site"]
    assert await ResolverLookup(resolver).addresses("https://images.example/") == ("10.0.0.9",)


def test_the_test_session_runs_without_proxy_variables() -> None:
    # tests/conftest.py clears them, so a developer's proxy cannot change any test (and an
    # in-process run gives its own variables, DOWNLOADER_PROXY among them, back).
    assert not [name for name in os.environ if name.lower().endswith("_proxy")]
