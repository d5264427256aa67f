"""Exports read back with their own readers: tarfile for WebDataset, pyarrow for the Hugging
Face layout (the `datasets` library itself: tests/tools/test_tools_slow.py)."""

from __future__ import annotations

import ast
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tools_support import DUPLICATES, SUCCESSES, Download, apply, version_rows

from distdl.errors import ToolError
from distdl.tools.exports import export_version
from distdl.tools.exports.huggingface import IMAGE_TYPE, hf_table
from distdl.tools.exports.webdataset import sample_files

pytestmark = pytest.mark.timeout(120)


def test_webdataset_shards_hold_every_kept_row(download: Download, tmp_path: Path) -> None:
    apply(download, "duplication_based")
    target = tmp_path / "wds"
    message = export_version(download.config, "duplication_based", target, "webdataset", 5)
    kept = SUCCESSES - DUPLICATES
    assert f"{kept} rows" in message
    index = json.loads((target / "index.json").read_text())
    assert index["samples"] == kept and len(index["shards"]) == -(-kept // 5)
    expected = version_rows(download, "duplication_based", ["uuid", "image", "title"])
    images = dict(zip(expected["uuid"], expected["image"], strict=True))
    seen: dict[str, dict[str, bytes]] = {}
    for shard in index["shards"]:
        with tarfile.open(target / shard["name"]) as tar:
            members = tar.getmembers()
            assert shard["samples"] * 2 == len(members)
            for member in members:
                key, _, extension = member.name.partition(".")
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                seen.setdefault(key, {})[extension] = data
    assert set(seen) == set(images)
    for key, files in seen.items():
        assert set(files) == {"jpg", "json"} and files["jpg"] == images[key]
        metadata = json.loads(files["json"])
        assert metadata["uuid"] == key and "image" not in metadata
        assert {"server_name", "partition_id", "hashsum_original", "title"} <= set(metadata)


def test_huggingface_layout_has_an_image_feature(download: Download, tmp_path: Path) -> None:
    target = tmp_path / "hf"
    export_version(download.config, "download", target, "huggingface", 10)
    files = sorted((target / "data").glob("*.parquet"))
    assert [f.name for f in files] == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    table = pa.concat_tables(pq.read_table(f) for f in files)
    assert table.num_rows == SUCCESSES
    assert table.schema.field("image").type == IMAGE_TYPE
    features = json.loads(pq.read_schema(files[0]).metadata[b"huggingface"])
    assert features["info"]["features"]["image"] == {"_type": "Image"}
    for image in table.column("image").to_pylist()[:5]:
        assert image["path"].endswith(".jpg")
        Image.open(io.BytesIO(image["bytes"])).load()
    assert 'load_dataset("parquet", data_dir=' in (target / "README.md").read_text()


def test_an_export_never_overwrites(download: Download, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ToolError, match="exists already"):
        export_version(download.config, "download", tmp_path / "taken", "webdataset", 5)


def _raw_row() -> dict[str, object]:
    pixels = bytes(range(6)) * 4  # 2 x 4 RGB
    return {"uuid": "u1", "image": pixels, "resized_size": [2, 4], "title": "t"}


def test_a_raw_buffer_becomes_an_npy_array() -> None:
    files = sample_files(_raw_row())
    npy = files["npy"]
    assert npy.startswith(b"\x93NUMPY\x01\x00")
    header_length = int.from_bytes(npy[8:10], "little")
    header = ast.literal_eval(npy[10 : 10 + header_length].decode("latin1"))
    assert header == {"descr": "|u1", "fortran_order": False, "shape": (2, 4, 3)}
    assert (10 + header_length) % 64 == 0 and npy[10 + header_length :] == bytes(range(6)) * 4


def test_a_raw_buffer_is_exported_to_huggingface_as_png() -> None:
    row = _raw_row()
    table = hf_table(pa.Table.from_pylist([row]))
    image = table.column("image").to_pylist()[0]
    assert image["path"] == "u1.png"
    decoded = Image.open(io.BytesIO(image["bytes"]))
    assert decoded.size == (4, 2) and decoded.tobytes() == row["image"]
