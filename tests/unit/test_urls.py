from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distdl.core import codes
from distdl.core.urls import classify_url, safe_dir_name
from distdl.layout import REJECTED_SERVER_DIR, partition_subpath


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("http://A.Example.org/x.jpg", "a.example.org"),
        ("https://a.org:443/x", "a.org"),
        ("http://a.org:80/x", "a.org"),
        ("https://a.org:8443/x", "a.org:8443"),
        ("http://a.org./x", "a.org"),
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("http://user:pw@a.org/x", "a.org"),
    ],
)
def test_server_name_is_the_lowercased_host_and_non_default_port(url: str, server: str) -> None:
    assert classify_url(url).server_name == server


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


@given(st.text(max_size=30), st.text(max_size=30))
def test_safe_dir_name_is_injective(a: str, b: str) -> None:
    if a != b:
        assert safe_dir_name(a) != safe_dir_name(b)
