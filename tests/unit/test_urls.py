from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distdl.core import codes
from distdl.core.host_key import parse_ipv4
from distdl.core.urls import classify_url, safe_dir_name, server_key
from distdl.layout import REJECTED_SERVER_DIR, partition_subpath


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("http://A.Example.org/x.jpg", "a.example.org"),
        ("https://a.org:443/x", "a.org"),
        ("http://a.org:80/x", "a.org"),
        ("https://a.org:8443/x", "a.org:8443"),
        ("http://a.org:443/x", "a.org"),
        ("https://a.org:80/x", "a.org"),
        ("http://a.org./x", "a.org"),
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("http://user:pw@a.org/x", "a.org"),
    ],
)
def test_server_name_is_the_lowercased_host_and_a_non_standard_port(url: str, server: str) -> None:
    assert classify_url(url).server_name == server


@pytest.mark.parametrize(
    ("url", "server"),
    [
        # IDNA as yarl encodes it (UTS 46, non-transitional): ß stays a letter of its own.
        ("http://faß.de/x", "xn--fa-hia.de"),
        ("http://fass.de/x", "fass.de"),
        ("http://Bücher.de/x", "xn--bcher-kva.de"),
        ("http://BÜCHER.DE./x", "xn--bcher-kva.de"),
        ("http://XN--BCHER-KVA.de/x", "xn--bcher-kva.de"),
        ("http://例え.jp/x", "xn--r8jz45g.jp"),
        ("https://bücher.de:443/x", "xn--bcher-kva.de"),
        ("https://bücher.de:8443/x", "xn--bcher-kva.de:8443"),
        # Fullwidth letters, digits and the ideographic full stop fold as UTS 46 folds them.
        ("http://ａ.org/x", "a.org"),
        ("http://ＥＸＡＭＰＬＥ．ｏｒｇ/x", "example.org"),
        ("http://a\u3002org/x", "a.org"),
        ("http://１２７.０.０.１/x", "127.0.0.1"),
        # IPv4 in every notation a browser (and glibc's inet_aton) accepts.
        ("http://2130706433/x", "127.0.0.1"),
        ("http://0x7f000001/x", "127.0.0.1"),
        ("http://0X7F.1/x", "127.0.0.1"),
        ("http://0177.0.0.1/x", "127.0.0.1"),
        ("http://127.1/x", "127.0.0.1"),
        ("http://127.0.1/x", "127.0.0.1"),
        ("http://127.0.0.1./x", "127.0.0.1"),
        ("http://0x7f.0x0.0x1.05:8080/x", "127.0.1.5:8080"),
        ("http://0/x", "0.0.0.0"),
        # IPv6 compressed, lower-cased and bracketed.
        ("http://[2001:DB8:0:0:0:0:0:1]/x", "[2001:db8::1]"),
        ("http://[2001:db8::1]:80/x", "[2001:db8::1]"),
        ("http://[0:0:0:0:0:0:0:1]:8080/x", "[::1]:8080"),
    ],
)
def test_one_server_has_one_key_however_its_host_is_spelled(url: str, server: str) -> None:
    assert classify_url(url).server_name == server


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://256.0.0.1/x", "IPv4"),
        ("http://1.2.3.4.5/x", "IPv4"),
        ("http://08.0.0.1/x", "IPv4"),
        ("http://0x100000000/x", "ends in a number"),
        ("http://example.123/x", "IPv4"),
        ("http://4294967296/x", "IPv4"),
        ("http://bücher..de/x", "IDNA"),
        ("http://a\u200bb.org/x", "cannot contain"),  # would silently become ab.org
        ("http://a.org\\@b.org/x", "backslash"),
        ("http://a\u00a0b.org/x", "space"),  # IDNA 2003 maps a no-break space to a space
    ],
)
def test_a_host_the_client_cannot_connect_to_is_an_invalid_url(url: str, reason: str) -> None:
    verdict = classify_url(url)
    assert verdict.error_code == codes.INVALID_URL
    assert reason in verdict.error_msg


@given(st.integers(0, 2**32 - 1), st.data())
def test_every_ipv4_notation_keys_to_the_dotted_quad_inet_aton_reads(
    value: int, data: st.DataObject
) -> None:
    octets = list(ipaddress.IPv4Address(value).packed)
    n_parts = data.draw(st.integers(1, 4))
    numbers = [*octets[: n_parts - 1], int.from_bytes(bytes(octets[n_parts - 1 :]), "big")]
    forms = [data.draw(st.sampled_from(["{:d}", "0{:o}", "0x{:x}", "0X{:X}"])) for _ in numbers]
    host = ".".join(form.format(n) for form, n in zip(forms, numbers, strict=True))
    expected = str(ipaddress.IPv4Address(value))
    assert classify_url(f"http://{host}/x").server_name == expected
    # The resolver aiohttp uses reads the notation the same way (a pure parse, no lookup).
    assert socket.inet_aton(host) == ipaddress.IPv4Address(value).packed, host
    assert parse_ipv4(host) == expected


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (" Bücher.de ", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de.", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de:80", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de:443", "xn--bcher-kva.de"),
        ("Host:8080", "host:8080"),
        ("2130706433", "127.0.0.1"),
        ("[::1]:8080", "[::1]:8080"),
        ("ａ.org", "a.org"),
    ],
)
def test_a_name_written_in_a_table_gets_the_key_of_its_urls(name: str, key: str) -> None:
    assert server_key(name) == key
    assert classify_url(f"http://{name.strip()}/img.jpg").server_name == key


@pytest.mark.parametrize(
    "name", ["", "  ", "a.org/x", "u@a.org", "http://a.org", "256.1.1.1", "a b"]
)
def test_a_table_name_that_names_no_server_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a host name or host:port"):
        server_key(name)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", codes.INVALID_URL),
        ("   ", codes.INVALID_URL),
        (None, codes.INVALID_URL),
        ("not a url", codes.INVALID_URL),
        ("ftp://a.org/x", codes.UNSUPPORTED_SCHEME),
        ("file:///etc/passwd", codes.UNSUPPORTED_SCHEME),
        ("javascript:alert(1)", codes.UNSUPPORTED_SCHEME),
        ("data:image/png;base64,AAAA", codes.UNSUPPORTED_SCHEME),
        ("a.org/x.jpg", codes.UNSUPPORTED_SCHEME),
        ("http://", codes.INVALID_URL),
        ("http://a.org:99999/x", codes.INVALID_URL),
        ("http://a.org:0/x", codes.INVALID_URL),
        ("http://a.org:port/x", codes.INVALID_URL),
        ("http://[::1/x", codes.INVALID_URL),
        ("http://.../x", codes.INVALID_URL),
    ],
)
def test_bad_identifiers_get_a_code_and_a_message(url: object, code: int) -> None:
    verdict = classify_url(url)
    assert not verdict.ok
    assert verdict.error_code == code
    assert verdict.error_msg


@given(st.text(min_size=0, max_size=80))
def test_safe_dir_name_never_escapes_and_never_collides_with_the_reserved_folder(
    name: str,
) -> None:
    safe = safe_dir_name(name)
    assert "/" not in safe and "\x00" not in safe and safe not in (".", "..")
    assert not safe.startswith(".")
    assert safe != REJECTED_SERVER_DIR
    root = Path("/out/urls")
    target = (root / partition_subpath(name, 3)).resolve()
    assert root in target.parents


def test_the_empty_name_and_nul_get_different_folders() -> None:
    assert safe_dir_name("") != safe_dir_name("\x00")  # found by the property below


@given(st.text(max_size=30), st.text(max_size=30))
def test_safe_dir_name_is_injective(a: str, b: str) -> None:
    if a != b:
        assert safe_dir_name(a) != safe_dir_name(b)
