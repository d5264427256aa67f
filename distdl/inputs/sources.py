"""Open any supported input as a table of named string columns, telling its kind by content.

Kinds: a Darwin Core Archive (a zip, or a folder with ``meta.xml``), parquet, and delimited
text (tab-separated when the header holds more tabs than commas), optionally gzip, bz2 or
zstd compressed. Extensions are not trusted: a zip named ``.txt`` is still an archive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from distdl.errors import InputError
from distdl.inputs.archive import DwcArchive
from distdl.inputs.columns import normalised_names
from distdl.inputs.meta import MULTIMEDIA_ROW_TYPES, DataFile
from distdl.inputs.text_table import TextLayout, first_line_fields, stream_columns
from distdl.plan.reader import CHUNK_ROWS

Kind = Literal["dwca", "csv", "tsv", "parquet"]
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd"}
_OVERRIDE_HINT = "pass --input-format csv, tsv or parquet"


@dataclass
class TableSource:
    """Named string columns of one input table, streamable as often as needed."""

    where: str
    kind: Kind
    names: tuple[str, ...]
    reader: Callable[[list[str]], Iterator[pa.Table]]
    archive: DwcArchive | None = None
    key: str | None = None  # the column holding the core id (archives)
    constants: dict[str, str] = field(default_factory=dict)  # meta.xml defaults

    def read(self, wanted: list[str]) -> Iterator[pa.Table]:
        """Tables of the ``wanted`` columns, in that order; constants filled in."""
        stored = [name for name in wanted if name not in self.constants]
        for table in self.reader(stored):
            columns = [
                table.column(name)
                if name in stored
                else pa.repeat(pa.scalar(self.constants.get(name), pa.string()), table.num_rows)
                for name in wanted
            ]
            yield pa.Table.from_arrays(columns, names=wanted)


def open_source(path: Path, override: str | None = None) -> TableSource:
    """The image rows of ``path``: an archive's multimedia extension, or the file itself."""
    path = Path(path)
    kind = detect_kind(path, override)
    if kind == "dwca":
        archive = DwcArchive(path)
        multimedia = archive.meta.multimedia()
        if multimedia is None:
            raise InputError(_no_multimedia(path, archive))
        return archive_table(archive, multimedia)
    if kind == "parquet":
        return _parquet_table(path)
    return _text_table(path, kind)


def detect_kind(path: Path, override: str | None = None) -> Kind:
    if path.is_dir():
        if (path / "meta.xml").is_file():
            return "dwca"
        raise InputError(f"{path}: a folder, but not a Darwin Core Archive (no meta.xml)")
    if not path.is_file():
        raise InputError(f"{path}: input file not found (or not a regular file)")
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic.startswith(b"PK\x03\x04"):
        if override not in (None, "dwca"):
            raise InputError(f"{path}: a zip archive, not {override}: drop --input-format")
        return "dwca"
    if override is not None:
        if override not in ("csv", "tsv", "parquet"):
            raise InputError(f"unknown input format {override!r}: {_OVERRIDE_HINT}")
        return override  # type: ignore[return-value]
    if magic == b"PAR1":
        return "parquet"
    header = _header_text(path)
    if "\x00" in header:
        raise InputError(f"{path}: cannot tell the input format from its content; {_OVERRIDE_HINT}")
    return "tsv" if header.count("\t") > header.count(",") else "csv"


def _compression(path: Path) -> str | None:
    with path.open("rb") as stream:
        magic = stream.read(4)
    return next((name for sig, name in _COMPRESSED.items() if magic.startswith(sig)), None)


def _opener(path: Path) -> Callable[[], pa.NativeFile]:
    compression = _compression(path)
    return lambda: pa.input_stream(str(path), compression=compression)


def _header_text(path: Path) -> str:
    fields = first_line_fields(_opener(path), "\n", "", "utf-8")
    return fields[0] if fields else ""


def _text_table(path: Path, kind: Kind) -> TableSource:
    delimiter = "\t" if kind == "tsv" else ","
    quote = "" if kind == "tsv" else '"'  # GBIF's TSV is unquoted: a title may hold a lone "
    opener = _opener(path)
    names = normalised_names(first_line_fields(opener, delimiter, quote, "utf-8"), str(path))
    layout = TextLayout(delimiter, quote, 1, "utf-8", names)
    return TableSource(
        str(path), kind, names, lambda wanted: stream_columns(opener, layout, wanted, str(path))
    )


def _parquet_table(path: Path) -> TableSource:
    try:
        stored = list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: cannot read the input as parquet: {exc}") from None
    names = normalised_names(stored, str(path))
    original = dict(zip(names, stored, strict=True))

    def read(wanted: list[str]) -> Iterator[pa.Table]:
        try:
            parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1024 * 1024)
            columns = [original[name] for name in wanted]
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
                arrays = [batch.column(i).cast(pa.string()) for i in range(len(wanted))]
                yield pa.Table.from_arrays(arrays, names=wanted)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: cannot read the input: {exc}") from None

    return TableSource(str(path), "parquet", names, read)


def archive_table(archive: DwcArchive, data: DataFile) -> TableSource:
    """One core or extension file of an archive, streamed from inside it."""
    where = f"{archive.path}:{data.location}"
    if data.line_end not in ("\n", "\r\n"):
        raise InputError(f"{where}: linesTerminatedBy {data.line_end!r} is not supported")

    def opener() -> pa.NativeFile:
        return pa.PythonFile(archive.open(data.location), mode="r")

    width = len(first_line_fields(opener, data.delimiter, data.quote, data.encoding))
    if max(data.columns, default=-1) >= width:
        raise InputError(
            f"{where}: meta.xml declares column {max(data.columns)}, the file has {width}"
        )
    names = normalised_names([data.columns.get(i, f"_col{i}") for i in range(width)], where)
    layout = TextLayout(data.delimiter, data.quote, data.header_lines, data.encoding, names)
    return TableSource(
        where,
        "dwca",
        names + tuple(name for name in data.defaults if name not in names),
        lambda wanted: stream_columns(opener, layout, wanted, where),
        archive=archive,
        key=data.key_name,
        constants=dict(data.defaults),
    )


def _no_multimedia(path: Path, archive: DwcArchive) -> str:
    files = [archive.meta.core, *archive.meta.extensions]
    found = ", ".join(f"{f.location} ({f.row_type.rsplit('/', 1)[-1]})" for f in files)
    return (
        f"{path}: this Darwin Core Archive has no multimedia extension "
        f"({MULTIMEDIA_ROW_TYPES[0]}), so it lists no images; it holds: {found}. Ask GBIF "
        "for a download that includes multimedia (a DwC-A with the Multimedia extension), "
        "or give its multimedia.txt"
    )
