"""Provenance for a dataset card: the archive's own files, copied, and a generated DATASET.md.

From a Darwin Core Archive, ``citations.txt``, ``rights.txt``, ``metadata.xml`` and
``dataset/*.xml`` are copied into ``{path_to_output}/provenance/``; ``DATASET.md`` (source,
download DOI when the archive names one, row counts, filtered rows by reason, licence
counts, filters applied) is written next to it. Every file is written atomically.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from distdl.inputs.archive import DwcArchive
from distdl.inputs.tally import REASONS, Tally
from distdl.io.atomic import atomic_write_bytes, atomic_write_text

PROVENANCE_FOLDER = "provenance"
CARD_FILE = "DATASET.md"
_COPIED = ("citations.txt", "rights.txt", "metadata.xml", "eml.xml")
_DOI = re.compile(rb"10\.\d{4,9}/[^\s\"<>]+")
_GBIF_DOWNLOAD_DOI = b"10.15468/dl."


def copy_archive_files(archive: DwcArchive, folder: Path) -> list[str]:
    """Copy the archive's provenance files; the member names copied."""
    names = [n for n in archive.names() if n in _COPIED or _is_dataset_metadata(n)]
    for name in names:
        atomic_write_bytes(folder / name, archive.read_bytes(name))
    return names


def _is_dataset_metadata(name: str) -> bool:
    return name.startswith("dataset/") and name.endswith(".xml")


def download_doi(archive: DwcArchive) -> str | None:
    """The GBIF download DOI the archive names (any DOI when none is GBIF's)."""
    found: list[bytes] = []
    for name in ("metadata.xml", "eml.xml", "citations.txt"):
        if archive.has(name):
            found += _DOI.findall(archive.read_bytes(name))
    if not found:
        return None
    gbif = [doi for doi in found if doi.startswith(_GBIF_DOWNLOAD_DOI)]
    return (gbif or found)[0].decode("ascii", errors="replace").rstrip(".,;)")


@dataclass(frozen=True)
class CardFacts:
    """What the plan knows about the dataset, for DATASET.md."""

    source: str
    description: str
    counts: dict[str, int]  # row counts by name, in display order
    tally: Tally
    licences: Counter[str]
    filters: dict[str, object]


def dataset_card(facts: CardFacts, doi: str | None, copied: list[str]) -> str:
    lines = [f"# Dataset: {Path(facts.source).name}", ""]
    lines += [f"- Source: `{facts.source}` ({facts.description})"]
    if doi:
        lines += [f"- Download DOI: [{doi}](https://doi.org/{doi}) (cite it when using images)"]
    lines += ["", "## Rows", "", "| rows | count |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in facts.counts.items()]
    lines += ["", "## Rows set aside while planning", ""]
    if facts.tally.filtered:
        lines += ["| reason | rows | meaning |", "|---|---:|---|"]
        lines += [
            f"| {reason} | {facts.tally.counts[reason]} | {meaning} |"
            for reason, meaning in REASONS.items()
            if facts.tally.counts[reason]
        ]
    else:
        lines += ["None."]
    lines += [
        "",
        "## Licences (rows planned or rejected)",
        "",
        "| license_id | rows |",
        "|---|---:|",
    ]
    lines += [f"| {licence} | {n} |" for licence, n in facts.licences.most_common()]
    lines += ["", "## Filters applied", ""]
    lines += [f"- {key}: {value}" for key, value in facts.filters.items()] or ["None."]
    if copied:
        lines += ["", "## Files from the archive", ""]
        lines += [f"- [{name}]({PROVENANCE_FOLDER}/{name})" for name in copied]
    return "\n".join(lines) + "\n"


def write_provenance(root: Path, archive: DwcArchive | None, facts: CardFacts) -> None:
    """Copy the archive's files (if any), then write DATASET.md."""
    copied: list[str] = []
    doi = None
    if archive is not None:
        copied = copy_archive_files(archive, root / PROVENANCE_FOLDER)
        doi = download_doi(archive)
    atomic_write_text(root / CARD_FILE, dataset_card(facts, doi, copied))
