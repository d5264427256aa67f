"""GBIF downloads as users have them, planned end to end: real files plus hand-made rows."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gbif_archives import (
    INAT_MULTIMEDIA,
    OCCURRENCE_ONLY_ZIP,
    extension_xml,
    inat_core,
    inat_rows,
    tsv,
    write_archive,
)

from distdl.config import parse_config
from distdl.errors import InputError
from distdl.inputs.tally import read_filtered
from distdl.layout import Layout
from distdl.plan import planner
from distdl.plan.planner import PlanSummary, plan_input

# Every distinct licence string of the real file, with the id a person reads in it.
INAT_LICENCES = {
    "http://creativecommons.org/licenses/by-nc/4.0/": "CC-BY-NC-4.0",
    "http://creativecommons.org/licenses/by/4.0/": "CC-BY-4.0",
    "http://creativecommons.org/publicdomain/zero/1.0/": "CC0-1.0",
    "http://creativecommons.org/licenses/by-nc-sa/4.0/": "CC-BY-NC-SA-4.0",
    "http://creativecommons.org/licenses/by-nc-nd/4.0/": "CC-BY-NC-ND-4.0",
    "http://creativecommons.org/licenses/by-sa/4.0/": "CC-BY-SA-4.0",
}
INAT_ROWS = 4776
INAT_OCCURRENCES = 3675


def _plan(tmp_path: Path, input_path: Path, **settings: object) -> tuple[PlanSummary, Layout]:
    config = parse_config(
        {"path_to_input": str(input_path), "path_to_output": str(tmp_path / "out"), **settings},
        tmp_path,
    )
    layout = Layout.from_config(config)
    return plan_input(config, layout), layout


def _planned(layout: Layout) -> pl.DataFrame:
    files = sorted(layout.urls.glob("server_name=*/partition_id=*/urls.parquet"))
    return pl.concat([pl.from_arrow(pq.read_table(f)) for f in files], how="diagonal")  # type: ignore[misc]


def _rejected(layout: Layout) -> pa.Table:
    return pq.read_table(layout.rejected_dir / "errors.parquet")


def _by_reason(layout: Layout) -> dict[str, int]:
    filtered = read_filtered(layout.urls)
    assert filtered is not None
    return filtered["by_reason"]  # type: ignore[return-value]


def test_the_real_multimedia_txt_plans_every_image_with_its_licence_and_rights_holder(
    tmp_path: Path,
) -> None:
    header, rows = inat_rows()
    summary, layout = _plan(tmp_path, INAT_MULTIMEDIA)

    assert (summary.planned_rows, summary.rejected_rows, summary.filtered_rows) == (INAT_ROWS, 0, 0)
    planned = _planned(layout)
    by_identifier = {row[header.index("identifier")]: row for row in rows}
    for row in planned.iter_rows(named=True):
        source = by_identifier[row["identifier"]]
        assert row["source_id"] == source[header.index("gbifID")]
        assert row["source"] == source[header.index("rightsHolder")]
        assert row["license_id"] == INAT_LICENCES[source[header.index("license")]]
        assert row["is_license_full"] is True  # no title, yet licence and attribution known
        assert row["publisher"] == "iNaturalist" and row["type"] == "StillImage"
    assert planned["uuid"].n_unique() == INAT_ROWS
    assert set(planned["license"].unique()) == set(INAT_LICENCES)


def test_uuids_are_the_same_across_runs_archives_and_snapshot_timestamps(tmp_path: Path) -> None:
    header, rows = inat_rows()
    _, first = _plan(tmp_path / "a", INAT_MULTIMEDIA)
    _, again = _plan(tmp_path / "b", INAT_MULTIMEDIA)
    # Next month's snapshot: columns in another order, iNaturalist's ?<timestamp> changed.
    order = list(range(len(header)))
    random.Random(1).shuffle(order)
    identifier = header.index("identifier")
    moved = [[(r[i] + "0" if i == identifier else r[i]) for i in order] for r in rows]
    (tmp_path / "c").mkdir()
    archive = write_archive(
        tmp_path / "c" / "gbif.zip", ([header[i] for i in order], moved), inat_core(rows)
    )
    assert "?" in rows[0][identifier]
    _, snapshot = _plan(tmp_path / "c", archive)

    def uuids(layout: Layout) -> dict[tuple[str, str], str]:
        planned = _planned(layout)
        keys = planned["identifier"].str.replace(r"\?.*$", "")
        return dict(zip(zip(planned["source_id"], keys, strict=True), planned["uuid"], strict=True))

    assert uuids(first) == uuids(again) == uuids(snapshot)
    assert len(uuids(first)) == INAT_ROWS


def _hand_made_rows(
    header: list[str], rows: list[list[str]]
) -> tuple[list[list[str]], dict[str, str]]:
    """Rows the real file lacks; returns them and the licence id expected per identifier."""
    col = {name: i for i, name in enumerate(header)}

    def row(**values: str) -> list[str]:
        made = ["" for _ in header]
        made[col["gbifID"]] = "9000000001"
        made[col["type"]] = "StillImage"
        made[col["format"]] = "image/jpeg"
        made[col["rightsHolder"]] = "A Museum"
        made[col["license"]] = "CC BY 4.0"
        for name, value in values.items():
            made[col[name]] = value
        return made

    made = [
        row(type="Sound", format="audio/mpeg", identifier="https://sounds.example.org/1.mp3"),
        row(type="Sound", format="audio/wav", identifier="https://sounds.example.org/2.wav"),
        row(type="MovingImage", format="video/mp4", identifier="https://films.example.org/1.mp4"),
        row(format="text/html", identifier="https://museum.example.org/page/7"),
        row(references="https://museum.example.org/specimen/1"),  # references only
        row(references="https://museum.example.org/specimen/2"),  # references only
        row(),  # no identifier, no references: an error row
        row(identifier="ftp://ftp.example.org/img/1.jpg"),  # not fetchable: an error row
    ]
    licences = {
        "CC BY-SA 4.0": "CC-BY-SA-4.0",
        "cc-by": "CC-BY",
        "CC0": "CC0-1.0",
        "All rights reserved": "LicenseRef-All-Rights-Reserved",
        "Creative Commons Attribution-NonCommercial 4.0 International": "CC-BY-NC-4.0",
        "https://creativecommons.org/licenses/by-nc-nd/3.0/legalcode": "CC-BY-NC-ND-3.0",
        "Public Domain": "LicenseRef-Public-Domain",
    }
    expected: dict[str, str] = {}
    for n, (text, licence_id) in enumerate(licences.items()):
        url = f"https://museum.example.org/img/{n}.jpg"
        made.append(row(license=text, identifier=url))
        expected[url] = licence_id
    made.append(row(license="", identifier="https://museum.example.org/img/nolicence.jpg"))
    made.append(
        row(license="CC0", rightsHolder="", identifier="https://museum.example.org/img/pd.jpg")
    )
    made.append(
        row(
            license="CC BY 4.0",
            rightsHolder="",
            identifier="https://museum.example.org/img/anon.jpg",
        )
    )
    return made, expected


def test_hand_made_rows_are_planned_rejected_or_filtered_exactly_as_counted_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: the repeats below sit in other chunks than their first occurrence.
    monkeypatch.setattr("distdl.inputs.text_table.CSV_BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr("distdl.plan.reader.CHUNK_ROWS", 700)  # chunk_tables reads it
    passes: list[bool] = []
    needs_a_pass = planner._repeats_need_a_pass

    def spy(*args: object) -> bool:
        passes.append(needs_a_pass(*args))  # type: ignore[arg-type]
        return passes[-1]

    monkeypatch.setattr(planner, "_repeats_need_a_pass", spy)
    header, rows = inat_rows()
    made, licences = _hand_made_rows(header, rows)
    repeats = [rows[0], rows[10], list(rows[4000])]
    all_rows = rows[:2000] + made + rows[2000:] + repeats
    archive = write_archive(tmp_path / "gbif.zip", (header, all_rows), inat_core(rows))

    summary, layout = _plan(tmp_path, archive)

    assert passes == [True, False]  # repeats across chunks: planned once more, knowing them
    assert _by_reason(layout) == {"references_only": 2, "type": 3, "format": 1, "duplicate": 3}
    assert summary.filtered_rows == 9
    rejected = _rejected(layout)
    assert sorted(rejected.column("identifier").to_pylist(), key=str) == [
        None,
        "ftp://ftp.example.org/img/1.jpg",
    ]
    assert summary.planned_rows == INAT_ROWS + len(licences) + 3
    assert summary.total_rows + summary.filtered_rows == len(all_rows)
    planned = {r["identifier"]: r for r in _planned(layout).iter_rows(named=True)}
    for url, licence_id in licences.items():
        assert planned[url]["license_id"] == licence_id
        assert planned[url]["is_license_full"] is True
    base = "https://museum.example.org/img/"
    assert planned[base + "nolicence.jpg"]["license_id"] is None
    assert planned[base + "nolicence.jpg"]["is_license_full"] is False
    assert planned[base + "pd.jpg"]["is_license_full"] is True  # CC0 asks no attribution
    assert planned[base + "anon.jpg"]["is_license_full"] is False  # CC BY with no holder


def _old_archive(tmp_path: Path, multimedia_rows: list[list[str]]) -> Path:
    """The real 2013 archive (core keyed by occurrenceID) with a multimedia extension added."""
    header = ["coreid", "type", "format", "identifier", "license", "rightsHolder"]
    path = tmp_path / "old.zip"
    with zipfile.ZipFile(OCCURRENCE_ONLY_ZIP) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "meta.xml":
                extension = extension_xml(header, 0, key_has_term=False).replace(
                    'ignoreHeaderLines="1"', 'ignoreHeaderLines="0"'
                )
                data = data.replace(b"</archive>", extension.encode() + b"</archive>")
            new.writestr(info, data)
        new.writestr("multimedia.txt", "\n".join("\t".join(r) for r in multimedia_rows) + "\n")
    return path


def _old_core() -> dict[str, list[str]]:
    with zipfile.ZipFile(OCCURRENCE_ONLY_ZIP) as old:
        lines = old.read("occurrence.txt").decode("utf-8").splitlines()
    return {line.split("\t")[0]: line.split("\t") for line in lines if line}


def test_an_old_archive_keyed_by_occurrence_id_gets_its_occurrence_fields_joined(
    tmp_path: Path,
) -> None:
    core = _old_core()
    ids = list(core)[:5]
    image = ["StillImage", "image/jpeg"]
    rows = [
        [i, *image, f"https://museum.example.org/{i}/{n}.jpg", "CC0", "SMF"]
        for i in ids
        for n in (1, 2)
    ]
    rows.append(["no-such-occurrence", *image, "https://museum.example.org/x.jpg", "CC0", "SMF"])
    archive = _old_archive(tmp_path, rows)
    fields = ["scientificName", "basisOfRecord", "occurrenceID", "kingdom"]

    summary, layout = _plan(tmp_path / "a", archive, input_occurrence_fields=fields)

    assert summary.planned_rows == len(rows)
    planned = _planned(layout)
    assert planned.height == len(rows)
    for row in planned.iter_rows(named=True):
        occurrence = core.get(row["source_id"])
        if occurrence is None:
            assert row["scientificName"] is None and row["occurrenceID"] is None
            continue
        assert row["scientificName"] == occurrence[6]
        assert row["basisOfRecord"] == occurrence[5]
        assert row["kingdom"] == occurrence[9]
        assert row["occurrenceID"] == row["source_id"]

    summary, layout = _plan(
        tmp_path / "b", archive, input_filters={"basis_of_record": ["HUMAN_OBSERVATION"]}
    )
    assert summary.planned_rows == 0
    assert _by_reason(layout) == {"basis_of_record": len(rows)}
    assert "basisOfRecord" not in _planned_columns(layout)


def _planned_columns(layout: Layout) -> list[str]:
    files = list(layout.urls.glob("server_name=*/partition_id=*/urls.parquet"))
    return [name for f in files for name in pq.read_schema(f).names]


def test_an_archive_without_multimedia_is_an_input_error_saying_so(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"no multimedia extension.*occurrence\.txt \(Occurrence\)"
    ):
        _plan(tmp_path, OCCURRENCE_ONLY_ZIP)
    assert not (tmp_path / "out" / "servers_batched").exists()


def test_a_zip_read_as_tsv_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    config = parse_config(
        {"path_to_input": str(OCCURRENCE_ONLY_ZIP), "path_to_output": str(tmp_path / "out")},
        tmp_path,
    )
    with pytest.raises(InputError, match="a zip archive, not tsv"):
        plan_input(config, Layout.from_config(config), "tsv")


def test_a_column_given_twice_is_an_error_naming_it(tmp_path: Path) -> None:
    header, rows = inat_rows()
    renamed = ["source" if name == "rightsHolder" else name for name in header]
    renamed[header.index("description")] = "source"
    path = tmp_path / "multimedia.txt"
    path.write_text(tsv(renamed, rows[:5]))
    with pytest.raises(InputError, match="given more than once: source"):
        _plan(tmp_path, path)


def test_occurrence_fields_need_an_archive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="need a Darwin Core Archive"):
        _plan(tmp_path, INAT_MULTIMEDIA, input_occurrence_fields=["scientificName"])


def test_previous_output_skips_the_images_it_already_stored(tmp_path: Path) -> None:
    _, before = _plan(tmp_path / "a", INAT_MULTIMEDIA)
    stored = _planned(before)["uuid"].sample(100, seed=1)
    previous = tmp_path / "previous" / "downloaded_images" / "server_name=x" / "partition_id=0"
    previous.mkdir(parents=True)
    pq.write_table(pa.table({"uuid": stored.to_list()}), previous / "successes.parquet")

    summary, layout = _plan(
        tmp_path / "b", INAT_MULTIMEDIA, previous_output=str(tmp_path / "previous")
    )

    assert summary.planned_rows == INAT_ROWS - 100
    assert _by_reason(layout) == {"previous_output": 100}
    assert not set(stored.to_list()) & set(_planned(layout)["uuid"].to_list())


def test_sampling_keeps_a_reproducible_choice(tmp_path: Path) -> None:
    one_each = {"label": "source_id", "max_per_label": 1}
    summary, first = _plan(tmp_path / "a", INAT_MULTIMEDIA, input_sampling=one_each)
    assert summary.planned_rows == INAT_OCCURRENCES  # one photo per occurrence
    assert _by_reason(first) == {"sampling": INAT_ROWS - INAT_OCCURRENCES}
    assert _planned(first)["source_id"].n_unique() == INAT_OCCURRENCES
    _, again = _plan(tmp_path / "b", INAT_MULTIMEDIA, input_sampling=one_each)
    assert set(_planned(first)["uuid"]) == set(_planned(again)["uuid"])

    summary, seeded = _plan(
        tmp_path / "c", INAT_MULTIMEDIA, input_sampling={"rows": 500, "seed": 7}
    )
    assert summary.planned_rows == 500
    _, other = _plan(tmp_path / "d", INAT_MULTIMEDIA, input_sampling={"rows": 500, "seed": 8})
    assert set(_planned(seeded)["uuid"]) != set(_planned(other)["uuid"])


def test_balanced_sampling_spreads_rows_over_labels(tmp_path: Path) -> None:
    sampling = {"label": "license", "rows": 60, "balanced": True}
    summary, layout = _plan(tmp_path, INAT_MULTIMEDIA, input_sampling=sampling)
    counts = _planned(layout)["license"].value_counts()
    per_licence = dict(zip(counts["license"], counts["count"], strict=True))
    # 6 licences, two with fewer than 10 rows (by-nc-nd 5, by-sa 2): they give all they have,
    # the other four share the rest evenly.
    assert summary.planned_rows == 60
    assert per_licence["http://creativecommons.org/licenses/by-nc-nd/4.0/"] == 5
    assert per_licence["http://creativecommons.org/licenses/by-sa/4.0/"] == 2
    assert sorted(per_licence.values())[2:] == [13, 13, 13, 14]


def test_provenance_files_and_the_dataset_card_are_written(tmp_path: Path) -> None:
    header, rows = inat_rows()
    extra = {
        "citations.txt": b"Please cite: GBIF.org (1 July 2021) GBIF Occurrence Download "
        b"https://doi.org/10.15468/dl.abc123\n",
        "rights.txt": b"Dataset iNaturalist research-grade observations: CC BY-NC 4.0\n",
        "dataset/50c9509d.xml": b"<eml/>",
        "__MACOSX/._rights.txt": b"junk",
    }
    archive = write_archive(tmp_path / "gbif.zip", (header, rows[:50]), inat_core(rows), extra)

    _plan(tmp_path, archive)

    out = tmp_path / "out"
    for name in ("citations.txt", "rights.txt", "dataset/50c9509d.xml"):
        assert (out / "provenance" / name).read_bytes() == extra[name]
    assert not (out / "provenance" / "__MACOSX").exists()
    card = (out / "DATASET.md").read_text()
    assert "[10.15468/dl.abc123](https://doi.org/10.15468/dl.abc123)" in card
    assert "| planned for download | 50 |" in card
    filtered = json.loads((out / "servers_batched" / "filtered.json").read_text())
    assert filtered["rows_read"] == 50 and "StillImage" in filtered["filters"]["types"]


def test_a_sampling_label_that_is_no_planned_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"input_sampling\.label: 'rightsHolder' is not a column"):
        _plan(tmp_path, INAT_MULTIMEDIA, input_sampling={"label": "rightsHolder", "rows": 5})


def test_status_shows_the_rows_set_aside_by_reason(tmp_path: Path) -> None:
    from distdl.status import collect_status, render_status

    one_each = {"label": "source_id", "max_per_label": 1}
    config = parse_config(
        {
            "path_to_input": str(INAT_MULTIMEDIA),
            "path_to_output": str(tmp_path / "out"),
            "input_sampling": one_each,
        },
        tmp_path,
    )
    layout = Layout.from_config(config)
    plan_input(config, layout)

    status = collect_status(config, layout)

    dropped = INAT_ROWS - INAT_OCCURRENCES
    assert status["rows"]["filtered"] == {"total": dropped, "by_reason": {"sampling": dropped}}
    assert f"{dropped} input rows set aside while planning: sampling {dropped}" in render_status(
        status
    )
