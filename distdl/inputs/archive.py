"""A Darwin Core Archive, zipped or unpacked, whose members are streamed, never extracted.

``zipfile.ZipFile.open`` decompresses a member as it is read, so a 300 GB download is read
in place with memory bounded by the reader's blocks.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from distdl.errors import InputError
from distdl.inputs.meta import ArchiveMeta, parse_meta

META_FILE = "meta.xml"
_DEBRIS = ("__MACOSX/", ".DS_Store")  # what a Mac's "Compress" adds to a zip


class DwcArchive:
    """Members of a DwC-A by their path inside it (``dataset/<key>.xml``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path) if self.path.is_file() else None
        if not self.has(META_FILE):
            raise InputError(f"{self.path}: not a Darwin Core Archive (no {META_FILE} inside)")
        self.meta: ArchiveMeta = parse_meta(self.read_bytes(META_FILE), f"{self.path}:{META_FILE}")

    def names(self) -> list[str]:
        if self._zip is not None:
            listed = [i.filename for i in self._zip.infolist() if not i.is_dir()]
        else:
            listed = [
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            ]
        return sorted(n for n in listed if not any(d in n for d in _DEBRIS))

    def has(self, name: str) -> bool:
        if self._zip is not None:
            return name in self._zip.NameToInfo
        return (self.path / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        """A binary stream of one member, decompressed as it is read."""
        try:
            if self._zip is not None:
                return self._zip.open(name)
            return (self.path / PurePosixPath(name)).open("rb")
        except (KeyError, OSError) as exc:
            raise InputError(f"{self.path}: cannot open {name!r} in the archive: {exc}") from None

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read()

    def size(self, name: str) -> int:
        if self._zip is not None:
            return self._zip.getinfo(name).file_size
        return (self.path / name).stat().st_size

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def is_zip(path: Path) -> bool:
    return path.is_file() and zipfile.is_zipfile(path)
