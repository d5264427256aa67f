"""The vectorised URL classification agrees with the reference, classify_url."""

from __future__ import annotations

import random
import string

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from distdl.core import codes
from distdl.core.urls import classify_url, server_key
from distdl.plan.classify import classify_identifiers, fast_server_names

# Weighted towards what the fast path accepts, so both of its outcomes are exercised.
SCHEMES = (
    ["http"] * 3
    + ["https"] * 3
    + ["HTTP", "Https", "hTtPs", "ftp", "file", "javascript", "data", ""]
)
SEPARATORS = ["://"] * 6 + [":/", ":", "//", ":///"]
USERINFO = [""] * 6 + ["user@", "u:p@", "@", "a@b@"]
HOSTS = [
    "example.org",
    "Example.ORG",
    "example.org.",
    "example.org..",
    "...",
    ".",
    "a",
    "img-1.cdn_2.example.org",
    "-dash.org",
    "127.0.0.1",
    "[::1]",
    "[2001:DB8::1]",
    "[::1",
    "::1]",
    "[fe80::1%25eth0]",
    "bücher.example",
    "例え.jp",
    "xn--bcher-kva.example",
    "%2e%2e",
    "..%2F..%2Fetc",
    "a%2Fb",
    "a b",
    "",
    "x" * 300,
    # One server, many spellings: IDN, fullwidth, numeric IPv4, IPv6.
    "faß.de",
    "FASS.de",
    "ß.de",
    "ẞ.de",
    "ǅ.com",
    "XN--BCHER-KVA.DE",
    "xn--bcher-kva.de.",
    "bücher..de",
    "ａ.org",
    "ＥＸＡＭＰＬＥ．ｏｒｇ",
    "a。org",
    "１２７.０.０.１",
    "a\u200bb.org",
    "a\u00a0b.org",
    "a：80",
    "a／b",
    "2130706433",
    "0x7f.1",
    "0X7F.0.0.1",
    "0177.0.0.1",
    "127.1",
    "127.0.0.1.",
    "127.00.0.1",
    "256.0.0.1",
    "1.2.3.4.5",
    "08.1",
    "0x",
    "example.123",
    "example.0x1g",
    "[0:0:0:0:0:0:0:1]",
    "[2001:db8::FFFF]",
    "[::ffff:127.0.0.1]",
]
# Characters that IDNA maps, folds, rejects or deletes, mixed with plain ones.
IDN_ALPHABET = "aZ09-._üÜßẞ例えａＡ１２．。ǅİ\u200b\u00a0：／"
PORTS = ["", ":", ":0", ":00", ":80", ":443", ":0080", ":8080", ":65535", ":65536", ":99999"]
PORTS += [":123456", ":abc", ":-1", ":８０", ": 80"]
PATHS = ["", "/", "/a.jpg", "/..", "/../../etc/passwd", "/%2e%2e/x", "?q=1", "#frag", "/p?q#f"]
PATHS += ["/with space", "/tab\there", "/ünï", "/\x7f", "\\evil", "/a\nb", "/[x]@y"]
PADDING = [""] * 8 + [" ", "  ", "\t", "\u00a0"]


@st.composite
def ipv4_hosts(draw: st.DrawFn) -> str:
    """IPv4 in 1 to 5 parts, each decimal, octal or hex; sometimes out of range."""
    numbers = draw(st.lists(st.integers(0, 300) | st.integers(0, 2**32), min_size=1, max_size=5))
    forms = st.sampled_from(["{:d}", "0{:o}", "0x{:x}", "0X{:X}", "{:02d}"])
    host = ".".join(draw(forms).format(n) for n in numbers)
    return host + draw(st.sampled_from(["", "", ".", ".."]))


HOST_STRATEGY = (
    st.sampled_from(HOSTS)
    | st.from_regex(r"[A-Za-z0-9.\-]{1,20}", fullmatch=True)
    | ipv4_hosts()
    | st.text(alphabet=IDN_ALPHABET, min_size=1, max_size=12)
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    parts = [
        draw(st.sampled_from(PADDING)),
        draw(st.sampled_from(SCHEMES)),
        draw(st.sampled_from(SEPARATORS)),
        draw(st.sampled_from(USERINFO)),
        draw(HOST_STRATEGY),
        draw(st.sampled_from(PORTS)),
        draw(st.sampled_from(PATHS) | st.text(max_size=12).map(lambda t: "/" + t)),
        draw(st.sampled_from(PADDING)),
    ]
    return "".join(parts)


def _reference(url: str | None) -> str | None:
    return classify_url(url).server_name


HOST_CHARACTERS = string.ascii_letters + string.digits + ".-"


def _seeded_text(rng: random.Random, max_size: int) -> str:
    """Any text: ASCII, controls, Latin-1, fullwidth forms, CJK, emoji (no surrogates)."""
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0xFF), (0xFF01, 0xFF5E), (0x4E00, 0x4E80)]
    ranges.append((0x1F600, 0x1F64F))
    size = rng.randint(0, max_size)
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(size))


def _seeded_ipv4_host(rng: random.Random) -> str:
    forms = ["{:d}", "0{:o}", "0x{:x}", "0X{:X}", "{:02d}"]
    parts = rng.randint(1, 5)
    numbers = [rng.randint(0, 300) if rng.random() < 0.7 else rng.randint(0, 2**32)]
    numbers += [rng.randint(0, 300) for _ in range(parts - 1)]
    host = ".".join(rng.choice(forms).format(n) for n in numbers)
    return host + rng.choice(["", "", ".", ".."])


def _seeded_url(rng: random.Random) -> str:
    """The same parts as the ``urls`` strategy, drawn by a seeded generator: thousands of
    them cost less than a hundred hypothesis examples, so one batch can be large."""
    host = rng.choice(
        [
            lambda: rng.choice(HOSTS),
            lambda: "".join(rng.choices(HOST_CHARACTERS, k=rng.randint(1, 20))),
            lambda: _seeded_ipv4_host(rng),
            lambda: "".join(rng.choices(IDN_ALPHABET, k=rng.randint(1, 12))),
        ]
    )()
    path = rng.choice(PATHS) if rng.random() < 0.5 else "/" + _seeded_text(rng, 12)
    parts = [rng.choice(PADDING), rng.choice(SCHEMES), rng.choice(SEPARATORS)]
    parts += [rng.choice(USERINFO), host, rng.choice(PORTS), path, rng.choice(PADDING)]
    return "".join(parts)


def _seeded_batch(seed: int, size: int) -> list[str]:
    rng = random.Random(seed)
    return [_seeded_url(rng) if rng.random() < 0.8 else _seeded_text(rng, 30) for _ in range(size)]


def _assert_classified_as_the_reference(batch: list[str]) -> None:
    series = pl.Series(batch, dtype=pl.String)
    fast = fast_server_names(series).to_list()
    verdicts = classify_identifiers(series)
    names = verdicts.server_name.to_list()
    for url, fast_name, name in zip(batch, fast, names, strict=True):
        expected = _reference(url)
        # The fast path may decline a URL, but never decides it differently.
        assert fast_name is None or fast_name == expected, url
        assert name == expected, url
    codes_by_row = zip(verdicts.rejected_rows, verdicts.error_code, strict=True)
    rejected = dict(codes_by_row)
    for row, url in enumerate(batch):
        verdict = classify_url(url)
        assert rejected.get(row) == (None if verdict.ok else verdict.error_code), url


@pytest.mark.parametrize("seed", [1, 2])
def test_a_large_seeded_batch_is_classified_as_the_reference_classifies_it(seed: int) -> None:
    batch = _seeded_batch(seed, 8000)
    assert len({_reference(url) for url in batch}) > 150  # many servers, not one repeated
    _assert_classified_as_the_reference(batch)


@pytest.mark.parametrize("seed", [3, 4])
def test_every_server_name_of_a_large_seeded_batch_keys_to_itself(seed: int) -> None:
    names = {classify_url(url).server_name for url in _seeded_batch(seed, 8000)} - {None}
    assert len(names) > 150
    for name in names:
        assert server_key(name) == name


# Hypothesis looks where the seeded batches above do not (shrinking, mutations of what it
# found); the batches give the breadth, at a small part of the cost of as many examples.
@settings(max_examples=150, deadline=None)
@given(batch=st.lists(urls() | st.text(max_size=30), min_size=1, max_size=20))
@example(batch=["HTTP://Example.ORG.:0080/a", "https://a.b:443", "http://a.b:443/"])
@example(batch=["http://Bücher.de./a", "http://xn--bcher-kva.de:80/b", "http://ａ.org/c"])
@example(batch=["http://2130706433/a", "http://0x7f.1:80/b", "http://127.0.0.1./c"])
def test_vectorised_classification_matches_the_reference(batch: list[str]) -> None:
    _assert_classified_as_the_reference(batch)


@settings(max_examples=150, deadline=None)
@given(url=urls())
def test_a_server_name_read_back_from_a_table_keys_to_itself(url: str) -> None:
    # Profiles tables store server names and are read back through server_key.
    name = classify_url(url).server_name
    if name is not None:
        assert server_key(name) == name


@pytest.mark.parametrize(
    ("url", "server_name"),
    [
        ("http://Example.ORG/a.jpg", "example.org"),
        ("HTTPS://example.org.:443/a", "example.org"),
        ("http://example.org:443/a", "example.org"),
        ("https://example.org:0080/a", "example.org"),
        ("https://example.org:0081/a", "example.org:81"),
        ("http://example.org:8080", "example.org:8080"),
        ("http://example.org?x=/y", "example.org"),
        ("http://example.org#@evil.com", "example.org"),
    ],
)
def test_the_fast_path_decides_simple_urls(url: str, server_name: str) -> None:
    assert fast_server_names(pl.Series([url])).to_list() == [server_name]


@pytest.mark.parametrize(
    "url",
    ["http://u@a.org/", "http://[::1]/", " http://a.org/", "http://a.org:0/", "http://bü.de/ü"],
)
def test_odd_urls_are_left_to_the_reference(url: str) -> None:
    assert fast_server_names(pl.Series([url])).to_list() == [None]


def test_idn_and_numeric_hosts_cost_one_reference_call_per_distinct_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def counting(identifier: object) -> object:
        calls.append(str(identifier))
        return classify_url(identifier)

    monkeypatch.setattr("distdl.plan.classify.classify_url", counting)
    urls = ["http://Bücher.de/a", "http://2130706433/b", "http://example.org/c"] * 1000
    names = fast_server_names(pl.Series(urls)).to_list()
    assert names == ["xn--bcher-kva.de", "127.0.0.1", "example.org"] * 1000
    assert sorted(calls) == ["http://2130706433", "http://Bücher.de"]


def test_padded_urls_are_stripped_and_rejections_listed_sparsely() -> None:
    series = pl.Series([" http://a.org/x ", "ftp://a.org/x", None, "http://b.org/"])
    verdicts = classify_identifiers(series)
    assert verdicts.url.to_list() == ["http://a.org/x", "ftp://a.org/x", None, "http://b.org/"]
    assert verdicts.server_name.to_list() == ["a.org", None, None, "b.org"]
    assert verdicts.rejected_rows.to_list() == [1, 2]
    assert verdicts.error_code.to_list() == [codes.UNSUPPORTED_SCHEME, codes.INVALID_URL]
    assert verdicts.error_msg.to_list() == ["unsupported scheme 'ftp'", "empty identifier"]


def test_an_empty_chunk_classifies_to_nothing() -> None:
    verdicts = classify_identifiers(pl.Series([], dtype=pl.String))
    assert len(verdicts.server_name) == 0
    assert len(verdicts.rejected_rows) == 0
