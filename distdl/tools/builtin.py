"""The original tool's four tools, registered under its names.

* ``size_based`` — removes rows whose original longer side is below ``threshold_size``.
* ``duplication_based`` — keeps one row per ``hashsum_original`` (the first by server,
  partition, uuid); each removed row names the uuid it duplicated (``duplicate_of``).
* ``image_verification`` — decodes every stored image and checks ``hashsum_resized`` and
  ``resized_size``; corrupt rows are removed with the reason.
* ``resize`` — stored images with a longer side above ``new_resize_size`` are downscaled
  to it and re-encoded in their own format (JPEG at ``jpeg_quality``); the others keep
  their bytes. An undecodable stored image is removed with the reason.

The first three write selections (kept uuids), ``resize`` writes new images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from distdl.image.hashes import md5_hex
from distdl.tools.bases import (
    FilterRunnerTool,
    MPIRunnerTool,
    PartitionResult,
    PythonFilterToolBase,
)
from distdl.tools.registry import FilterRegister, RunnerRegister
from distdl.tools.stored_images import StoredImageError, downscaled, open_stored

if TYPE_CHECKING:
    from distdl.config import Config

_KEYS = ["uuid", "server_name", "partition_id"]


@FilterRegister("size_based")
class SizeBasedFiltering(PythonFilterToolBase):
    columns = ("original_size",)

    def select(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        threshold = self.params.threshold_size
        longer = pl.col("original_size").list.max()
        return rows.filter(longer < threshold).select(
            *_KEYS,
            pl.format(
                "original longer side {} < threshold_size {}", longer, pl.lit(threshold)
            ).alias("reason"),
        )


@RunnerRegister("size_based")
class SizeBasedFilterRunnerTool(FilterRunnerTool):
    @classmethod
    def version_parameters(cls, config: Config) -> dict[str, Any]:
        return {"threshold_size": config.tools_parameters.threshold_size}


@FilterRegister("duplication_based")
class DuplicatesBasedFiltering(PythonFilterToolBase):
    columns = ("hashsum_original",)

    def select(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        hashed = rows.filter(pl.col("hashsum_original").is_not_null())
        first = (
            hashed.sort(["hashsum_original", "server_name", "partition_id", "uuid"])
            .group_by("hashsum_original", maintain_order=True)
            .agg(pl.col("uuid").first().alias("duplicate_of"))
        )
        return (
            hashed.join(first, on="hashsum_original")
            .filter(pl.col("uuid") != pl.col("duplicate_of"))
            .select(*_KEYS, pl.lit("duplicate").alias("reason"), "duplicate_of")
        )


@RunnerRegister("duplication_based")
class DuplicationFilterRunnerTool(FilterRunnerTool):
    @classmethod
    def version_parameters(cls, config: Config) -> dict[str, Any]:
        return {}


@RunnerRegister("image_verification")
class ImageVerificationRunnerTool(MPIRunnerTool):
    columns = ("uuid", "image", "hashsum_resized", "resized_size")

    @classmethod
    def version_parameters(cls, config: Config) -> dict[str, Any]:
        return {}

    def apply_filter(
        self, rows: pa.Table, filtering_df: pl.DataFrame, server_name: str, partition_id: int
    ) -> PartitionResult:
        reasons = {}
        for row in rows.select(list(self.columns)).to_pylist():
            problem = verification_problem(
                row["image"], row["hashsum_resized"], row["resized_size"]
            )
            if problem is not None:
                reasons[row["uuid"]] = problem
        return PartitionResult.from_reasons(rows.select(["uuid"]), reasons)


def verification_problem(
    image: bytes | None, hashsum: str | None, size: list[int] | None
) -> str | None:
    """Why a stored image is corrupt, or None when it is whole."""
    if image is None or not size or len(size) != 2:
        return "no stored image or no resized_size"
    actual = md5_hex(image)
    if actual != hashsum:
        return f"checksum mismatch: stored bytes hash to {actual}, hashsum_resized is {hashsum}"
    try:
        decoded = open_stored(image, size)
    except StoredImageError as exc:
        return str(exc)
    if [decoded.height, decoded.width] != list(size):
        return f"decodes to {decoded.height}x{decoded.width}, resized_size is {size[0]}x{size[1]}"
    return None


@RunnerRegister("resize")
class ResizeRunnerTool(MPIRunnerTool):
    output_kind = "images"

    @classmethod
    def version_parameters(cls, config: Config) -> dict[str, Any]:
        return {
            "new_resize_size": config.tools_parameters.new_resize_size,
            "jpeg_quality": config.downloader_parameters.jpeg_quality,
        }

    def apply_filter(
        self, rows: pa.Table, filtering_df: pl.DataFrame, server_name: str, partition_id: int
    ) -> PartitionResult:
        longer_side = self.params.new_resize_size
        quality = self.config.downloader_parameters.jpeg_quality
        reasons: dict[str, str] = {}
        images, sizes, hashes = [], [], []
        columns = rows.select(["uuid", "image", "resized_size", "hashsum_resized"]).to_pydict()
        for uuid, image, size, hashsum in zip(*columns.values(), strict=True):
            try:
                if image is None:
                    raise StoredImageError("no stored image")
                smaller = downscaled(image, size, longer_side, quality)
            except StoredImageError as exc:
                reasons[uuid] = str(exc)
                continue
            if smaller is None:  # already fits: the stored bytes stay as they are
                images.append(image)
                sizes.append(size)
                hashes.append(hashsum)
            else:
                images.append(smaller[0])
                sizes.append(list(smaller[1]))
                hashes.append(md5_hex(smaller[0]))
        result = PartitionResult.from_reasons(rows, reasons)
        kept = _replace(result.kept, "image", pa.array(images, pa.binary()))
        kept = _replace(kept, "resized_size", pa.array(sizes, pa.list_(pa.int64())))
        kept = _replace(kept, "hashsum_resized", pa.array(hashes, pa.string()))
        return PartitionResult(kept, result.removed)


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), column)
