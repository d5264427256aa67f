"""Stable uuids: uuid5 of the documented namespace, unchanged by cosmetic URL changes."""

from __future__ import annotations

import uuid

import polars as pl

from distdl.inputs.ids import IMAGE_NAMESPACE, identifier_keys, image_uuid, image_uuids

INAT = "inaturalist-open-data.s3.amazonaws.com"


def test_the_namespace_is_the_documented_one() -> None:
    assert uuid.uuid5(uuid.NAMESPACE_URL, "https://distdl.invalid/image") == IMAGE_NAMESPACE
    assert str(IMAGE_NAMESPACE) == "f8056d7d-667c-5f19-b370-0fd4ee26771b"


def test_image_uuid_is_uuid5_of_source_id_tab_key() -> None:
    for source_id, key in [("3321327453", "https://a.org/1.jpg"), ("", "x"), ("é", "ü")]:
        expected = uuid.uuid5(IMAGE_NAMESPACE, f"{source_id}\t{key}")
        assert image_uuid(source_id, key) == str(expected)
    assert image_uuid(None, "x") == image_uuid("", "x")
    assert image_uuid("1", "x") != image_uuid("2", "x") != image_uuid("1", "y")


def test_query_strings_are_dropped_only_on_the_presets_hosts() -> None:
    identifiers = pl.Series(
        [
            f"https://{INAT}/photos/1/original.jpeg?1625090991",
            f"HTTPS://{INAT.upper()}/photos/1/original.jpeg?1700000000",
            "https://museum.org/img?id=1",
            None,
        ]
    )
    keys = identifier_keys(identifiers, [INAT]).to_list()
    assert keys[0] == f"https://{INAT}/photos/1/original.jpeg"
    assert keys[1] == f"HTTPS://{INAT.upper()}/photos/1/original.jpeg"
    assert keys[2:] == ["https://museum.org/img?id=1", None]
    assert identifier_keys(identifiers, []).to_list() == identifiers.to_list()


def test_a_column_of_uuids_matches_one_by_one() -> None:
    uuids = image_uuids(pl.Series(["1", None]), pl.Series(["a", "b"])).to_list()
    assert uuids == [image_uuid("1", "a"), image_uuid(None, "b")]
