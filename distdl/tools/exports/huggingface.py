"""A Hugging Face ``datasets`` folder: ``data/train-NNNNN-of-MMMMM.parquet`` + README.md.

``datasets.load_dataset("parquet", data_dir=FOLDER)`` loads it as one ``train`` split whose
``image`` column is an ``Image`` feature: the column is the feature's own storage type,
``struct<bytes: binary, path: string>``, and the files' schema metadata says so
(``huggingface`` → ``info.features.image._type = "Image"``, the key ``datasets`` writes and
reads itself); the other columns are plain values. ``raw`` pixel buffers, which no image
library decodes, are stored as PNG (lossless) with ``path`` ``<uuid>.png``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from distdl.tools.exports import batches
from distdl.tools.stored_images import stored_format
from distdl.tools.versions import DatasetVersion

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
FEATURES = {"info": {"features": {"image": {"_type": "Image"}}}}
LOAD_LINE = 'datasets.load_dataset("parquet", data_dir="{folder}")'


def write_huggingface(source: DatasetVersion, folder: Path, shard_size: int) -> int:
    data = folder / "data"
    data.mkdir()
    parts: list[Path] = []
    writer: pq.ParquetWriter | None = None
    rows_in_part = 0
    total = 0
    try:
        for batch in batches(source):
            table = hf_table(batch)
            start = 0
            while start < table.num_rows:
                if writer is None or rows_in_part >= shard_size:
                    if writer is not None:
                        writer.close()
                    parts.append(data / f".part-{len(parts):05d}.parquet")
                    writer = pq.ParquetWriter(parts[-1], table.schema, compression="zstd")
                    rows_in_part = 0
                piece = table.slice(start, shard_size - rows_in_part)
                writer.write_table(piece)
                rows_in_part += piece.num_rows
                start += piece.num_rows
                total += piece.num_rows
    finally:
        if writer is not None:
            writer.close()
    for index, part in enumerate(parts):  # the count is known only now
        part.rename(data / f"train-{index:05d}-of-{len(parts):05d}.parquet")
    (folder / "README.md").write_text(_readme(source.name, total))
    return total


def hf_table(batch: pa.Table) -> pa.Table:
    """The batch with ``image`` as the Image feature's struct and the feature metadata."""
    images, paths = [], []
    for uuid, image, size in zip(
        batch.column("uuid").to_pylist(),
        batch.column("image").to_pylist(),
        batch.column("resized_size").to_pylist(),
        strict=True,
    ):
        fmt = stored_format(image)
        if fmt == "raw":
            image = _png_of_raw(image, size)
            fmt = "png"
        images.append(image)
        paths.append(f"{uuid}.{'jpg' if fmt == 'jpeg' else fmt}")
    column = pa.StructArray.from_arrays(
        [pa.array(images, pa.binary()), pa.array(paths, pa.string())], fields=list(IMAGE_TYPE)
    )
    table = batch.set_column(
        batch.schema.get_field_index("image"), pa.field("image", IMAGE_TYPE), column
    )
    return table.replace_schema_metadata({"huggingface": json.dumps(FEATURES)})


def _png_of_raw(pixels: bytes, size: list[int]) -> bytes:
    height, width = size
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _readme(version: str, rows: int) -> str:
    return (
        f"# distdl export of version `{version}` ({rows} rows)\n\n"
        "```python\nimport datasets\n"
        f"dataset = {LOAD_LINE.format(folder='<this folder>')}\n```\n\n"
        "`image` is an `Image` feature; every other column is the successes table's, plus "
        "`server_name` and `partition_id`.\n"
    )
