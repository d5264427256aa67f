"""The four built-in tools on a real download, against hand counts (see tools_support)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tools_support import (
    DUPLICATES,
    SMALL,
    SUCCESSES,
    THRESHOLD,
    Download,
    apply,
    download_rows,
    removed_rows,
    set_tools_parameters,
    version_rows,
)

pytestmark = pytest.mark.timeout(120)


def _download_files(download: Download) -> dict[str, str]:
    images = download.output / "downloaded_images"
    return {
        str(p.relative_to(images)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(images.rglob("*.parquet"))
    }


def test_size_based_removes_exactly_the_small_originals(download: Download) -> None:
    before = _download_files(download)
    outcome = apply(download, "size_based")
    assert outcome.totals["removed"] == SMALL and outcome.totals["kept"] == SUCCESSES - SMALL
    removed = removed_rows(download, "size_based")
    sizes = download_rows(download, ["uuid", "original_size"])
    small = set(sizes.filter(pl.col("original_size").list.max() < THRESHOLD)["uuid"])
    assert set(removed["uuid"]) == small and len(small) == SMALL
    assert all("threshold_size" in reason for reason in removed["reason"])
    kept = version_rows(download, "size_based", ["uuid", "image"])
    assert kept.height == SUCCESSES - SMALL and not set(kept["uuid"]) & small
    assert _download_files(download) == before  # the download is never rewritten
    # a filter writes selections, not copies of the images
    selection = next((download.output / "tools" / "size_based").rglob("selection.parquet"))
    assert pq.read_schema(selection).names == ["uuid"]
    assert not list((download.output / "tools" / "size_based").rglob("successes.parquet"))


def test_duplication_based_keeps_one_row_per_original(download: Download) -> None:
    outcome = apply(download, "duplication_based")
    assert outcome.totals["removed"] == DUPLICATES
    hashes = download_rows(download, ["uuid", "hashsum_original"])
    kept = version_rows(download, "duplication_based", ["uuid", "hashsum_original"])
    assert kept.height == SUCCESSES - DUPLICATES == hashes["hashsum_original"].n_unique()
    assert kept["hashsum_original"].n_unique() == kept.height
    removed = removed_rows(download, "duplication_based")
    by_uuid = dict(zip(hashes["uuid"], hashes["hashsum_original"], strict=True))
    for row in removed.iter_rows(named=True):
        assert row["duplicate_of"] in set(kept["uuid"])
        assert by_uuid[row["duplicate_of"]] == by_uuid[row["uuid"]]


def test_a_version_reads_another_through_its_selection(download: Download) -> None:
    apply(download, "duplication_based")
    outcome = apply(
        download, "size_based", input_version="duplication_based", tool_name_override="clean"
    )
    hashes = download_rows(download, ["uuid", "hashsum_original", "original_size"])
    distinct = hashes.unique("hashsum_original")
    expected = distinct.filter(pl.col("original_size").list.max() >= THRESHOLD).height
    assert outcome.name == "clean" and outcome.totals["kept"] == expected
    rows = version_rows(download, "clean", ["uuid", "image", "hashsum_resized"])
    assert rows.height == expected
    for image, hashsum in zip(rows["image"], rows["hashsum_resized"], strict=True):
        assert hashlib.md5(image).hexdigest() == hashsum  # the download's own bytes


def _damage(download: Download) -> dict[str, str]:
    """Corrupt two stored images in place: one byte flipped (hash kept), one JPEG cut short
    (hash updated, so only decoding finds it). Returns uuid -> expected reason prefix."""
    path = next(
        download.output.glob("downloaded_images/server_name=*/partition_id=*/successes.parquet")
    )
    table = pq.read_table(path)
    rows = table.to_pylist()
    jpegs = [i for i, r in enumerate(rows) if r["image"][:2] == b"\xff\xd8"]
    assert len(jpegs) >= 2, "the fixture's first partition needs two JPEGs"
    flipped, cut = rows[jpegs[0]], rows[jpegs[1]]
    flipped["image"] = (
        flipped["image"][:100] + bytes([flipped["image"][100] ^ 0xFF]) + flipped["image"][101:]
    )
    cut["image"] = cut["image"][: len(cut["image"]) // 2]
    cut["hashsum_resized"] = hashlib.md5(cut["image"]).hexdigest()
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)
    return {flipped["uuid"]: "checksum mismatch", cut["uuid"]: "undecodable jpeg"}


def test_image_verification_lists_the_corrupt_rows_with_the_reason(download: Download) -> None:
    expected = _damage(download)
    outcome = apply(download, "image_verification")
    assert outcome.totals["removed"] == 2 and outcome.totals["kept"] == SUCCESSES - 2
    removed = removed_rows(download, "image_verification")
    reasons = dict(zip(removed["uuid"], removed["reason"], strict=True))
    assert set(reasons) == set(expected)
    for uuid, prefix in expected.items():
        assert reasons[uuid].startswith(prefix), reasons[uuid]


def test_resize_writes_new_images_at_the_new_size(download: Download) -> None:
    set_tools_parameters(download, new_resize_size=128)
    outcome = apply(download, "resize")
    assert outcome.totals == {**outcome.totals, "kept": SUCCESSES, "removed": 0}
    before = download_rows(download, ["uuid", "original_size", "resized_size"])
    after = version_rows(
        download, "resize", ["uuid", "original_size", "resized_size", "image", "hashsum_resized"]
    )
    assert after.height == SUCCESSES
    joined = after.join(before, on="uuid", suffix="_before")
    for row in joined.iter_rows(named=True):
        height, width = row["resized_size"]
        old_h, old_w = row["resized_size_before"]
        assert max(height, width) == min(128, max(old_h, old_w))
        assert row["original_size"] == row["original_size_before"]
        image = Image.open(io.BytesIO(row["image"]))
        assert (image.height, image.width) == (height, width)
        assert hashlib.md5(row["image"]).hexdigest() == row["hashsum_resized"]
    files = list((download.output / "tools" / "resize").rglob("successes.parquet"))
    assert files and all(pq.read_schema(f).names == pq.read_schema(files[0]).names for f in files)


def test_resize_removes_an_undecodable_stored_image(download: Download) -> None:
    expected = _damage(download)
    set_tools_parameters(download, new_resize_size=64)
    outcome = apply(download, "resize")
    removed = removed_rows(download, "resize")
    cut = next(u for u, why in expected.items() if why.startswith("undecodable"))
    assert cut in set(removed["uuid"]) and outcome.totals["removed"] == removed.height


def test_tools_folder_is_taken_from_the_config(download: Download, tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(download.config.read_text())
    data["output_structure"] = {"tools_folder": "derived/versions"}
    download.config.write_text(yaml.safe_dump(data))
    outcome = apply(download, "size_based")
    assert outcome.folder == download.output / "derived" / "versions" / "size_based"
    assert (outcome.folder / "verified").is_file()
