"""Byte sizes as people write them in a config."""

from __future__ import annotations

import pytest

from distdl.core.byte_size import format_byte_size, parse_byte_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1073741824, 1073741824),
        ("1GiB", 1024**3),
        ("1 gib", 1024**3),
        ("512MiB", 512 * 1024**2),
        ("1.5G", 3 * 1024**3 // 2),
        ("2GB", 2 * 1000**3),
        ("64kB", 64_000),
        ("64K", 65_536),
        ("1000", 1000),
        ("1000 B", 1000),
        (" 3 TiB ", 3 * 1024**4),
    ],
)
def test_sizes_parse(text: int | str, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "1 parsec", "-1GiB", "1e9", "one"])
def test_what_is_not_a_size_is_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match="1GiB"):
        parse_byte_size(text)


def test_a_boolean_is_not_a_size() -> None:
    with pytest.raises(ValueError):
        parse_byte_size(True)


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512 B"), (1536, "1.5 KiB"), (1024**3, "1 GiB"), (889_875_575, "849 MiB")],
)
def test_sizes_format_in_binary_units(size: int, text: str) -> None:
    assert format_byte_size(size) == text
