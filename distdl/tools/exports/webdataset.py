"""WebDataset shards: ``shard-000000.tar`` … and ``index.json``.

Each row is a sample keyed by its uuid: ``<uuid>.jpg`` or ``<uuid>.png`` (the stored bytes as
they are) or ``<uuid>.npy`` (a ``raw`` pixel buffer as a ``(height, width, 3)`` uint8 array),
and ``<uuid>.json`` with every other column, ``server_name`` and ``partition_id`` included.
``index.json`` lists the shards with their sample counts and first and last keys.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from distdl.tools.exports import batches
from distdl.tools.exports.npy import npy_bytes
from distdl.tools.stored_images import stored_format
from distdl.tools.versions import DatasetVersion

EXTENSIONS = {"jpeg": "jpg", "png": "png", "raw": "npy"}


class _ShardWriter:
    def __init__(self, folder: Path, shard_size: int) -> None:
        self.folder = folder
        self.shard_size = shard_size
        self.shards: list[dict[str, Any]] = []
        self._tar: tarfile.TarFile | None = None

    def add(self, key: str, files: dict[str, bytes]) -> None:
        if self._tar is None or self.shards[-1]["samples"] >= self.shard_size:
            self._open_next()
        assert self._tar is not None
        for extension, data in files.items():
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size = len(data)
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        shard = self.shards[-1]
        shard["samples"] += 1
        shard["first_key"] = shard["first_key"] or key
        shard["last_key"] = key

    def _open_next(self) -> None:
        self.close()
        name = f"shard-{len(self.shards):06d}.tar"
        self._tar = tarfile.open(  # noqa: SIM115  (closed by close(), one shard at a time)
            self.folder / name, "w", format=tarfile.USTAR_FORMAT
        )
        self.shards.append({"name": name, "samples": 0, "first_key": None, "last_key": None})

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None


def write_webdataset(source: DatasetVersion, folder: Path, shard_size: int) -> int:
    writer = _ShardWriter(folder, shard_size)
    total = 0
    try:
        for batch in batches(source):
            for row in batch.to_pylist():
                writer.add(row["uuid"], sample_files(row))
                total += 1
    finally:
        writer.close()
    index = {
        "version": source.name,
        "samples": total,
        "shard_size": shard_size,
        "shards": writer.shards,
    }
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


def sample_files(row: dict[str, Any]) -> dict[str, bytes]:
    image: bytes = row.pop("image")
    fmt = stored_format(image)
    if fmt == "raw":
        height, width = row["resized_size"]
        image = npy_bytes(image, height, width)
    metadata = json.dumps(row, sort_keys=True, default=str).encode()
    return {EXTENSIONS[fmt]: image, "json": metadata}
