"""Stream the wanted columns of a delimited text (a file or an archive member) as Arrow tables.

Columns are named positionally by the caller (from the header or from ``meta.xml``), so a
header spelled with term URIs, or no header at all, reads the same way. Values stay strings
(identifiers may look numeric) and empty values are nulls. Chunks hold about
:data:`CHUNK_ROWS` rows whatever the file's size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv

from distdl.errors import InputError
from distdl.plan.reader import CSV_BLOCK_BYTES, chunk_tables, text_columns

HEADER_PROBE_BYTES = 1024 * 1024

Opener = Callable[[], IO[bytes] | pa.NativeFile]


@dataclass(frozen=True)
class TextLayout:
    delimiter: str
    quote: str  # "" = fields are never enclosed (GBIF's tab-separated files)
    header_lines: int
    encoding: str
    names: tuple[str, ...]  # every column, in file order


def first_line_fields(opener: Opener, delimiter: str, quote: str, encoding: str) -> list[str]:
    """The fields of the first line (the header, or a first row to count columns by)."""
    with opener() as stream:
        probe = stream.read(HEADER_PROBE_BYTES)
    text = probe.decode(encoding, errors="replace").removeprefix("\ufeff")
    line = text.splitlines()[0] if text else ""
    if not quote:
        return line.split(delimiter)
    return next(csv.reader(io.StringIO(line), delimiter=delimiter, quotechar=quote), [])


def stream_columns(
    opener: Opener, layout: TextLayout, wanted: list[str], where: str
) -> Iterator[pa.Table]:
    """Tables of the ``wanted`` columns (in that order), about CHUNK_ROWS rows each.

    Quoted text is parsed fast first; if a quoted value spans lines, it is re-read in
    multi-line mode (Arrow detects, never mis-parses, such a value), skipping the rows
    already given.
    """
    yielded = 0
    try:
        try:
            for table in _parse(opener, layout, wanted, multiline=False):
                yielded += table.num_rows
                yield table
        except pa.ArrowInvalid:
            if not layout.quote:
                raise
            for table in _parse(opener, layout, wanted, multiline=True):
                skip = min(yielded, table.num_rows)
                yielded -= skip
                if skip < table.num_rows:
                    yield table.slice(skip)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{where}: cannot read the input: {exc}") from None


def _parse(
    opener: Opener, layout: TextLayout, wanted: list[str], multiline: bool
) -> Iterator[pa.Table]:
    reader = pacsv.open_csv(
        opener(),
        read_options=pacsv.ReadOptions(
            block_size=CSV_BLOCK_BYTES,
            column_names=list(layout.names),
            skip_rows=layout.header_lines,
            encoding=_arrow_encoding(layout.encoding),
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.delimiter,
            quote_char=layout.quote or False,
            newlines_in_values=multiline,
        ),
        convert_options=text_columns(wanted),
    )
    for table in chunk_tables(reader):
        yield table.select(wanted)


def _arrow_encoding(encoding: str) -> str:
    return "utf8" if encoding.lower().replace("-", "") == "utf8" else encoding
