"""The other shipped presets: iNaturalist's open-data photos.csv, and a generic CSV."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from distdl.config import parse_config
from distdl.inputs.ids import image_uuid
from distdl.layout import Layout
from distdl.plan.planner import plan_input

PHOTOS_HEADER = "\t".join(
    [
        "photo_uuid",
        "photo_id",
        "observation_uuid",
        "observer_id",
        "extension",
        "license",
        "width",
        "height",
        "position",
    ]
)
PHOTOS = [
    "0d2f1c8e-0000-4000-8000-000000000001\t140038152\tobs-1\t42\tjpeg\tCC-BY-NC\t2048\t1536\t0",
    "0d2f1c8e-0000-4000-8000-000000000002\t140038167\tobs-1\t42\tjpg\tCC0\t1024\t768\t1",
    "0d2f1c8e-0000-4000-8000-000000000003\t139976206\tobs-2\t7\tpng\tCC-BY-SA\t640\t480\t0",
]


def _plan(tmp_path: Path, path: Path, **settings: object) -> pl.DataFrame:
    config = parse_config(
        {"path_to_input": str(path), "path_to_output": str(tmp_path / "out"), **settings},
        tmp_path,
    )
    layout = Layout.from_config(config)
    plan_input(config, layout)
    files = sorted(layout.urls.glob("server_name=*/partition_id=*/urls.parquet"))
    frame = pl.concat([pl.from_arrow(pq.read_table(f)) for f in files])
    assert isinstance(frame, pl.DataFrame)
    return frame.sort("uuid")


def test_inaturalist_photos_csv_is_recognised_and_its_urls_built(tmp_path: Path) -> None:
    path = tmp_path / "photos.csv"
    path.write_text("\n".join([PHOTOS_HEADER, *PHOTOS]) + "\n")

    planned = _plan(tmp_path, path)

    base = "https://inaturalist-open-data.s3.amazonaws.com/photos"
    assert planned["identifier"].to_list() == [
        f"{base}/140038152/large.jpeg",
        f"{base}/140038167/large.jpg",
        f"{base}/139976206/large.png",
    ]
    assert planned["uuid"].to_list() == [line.split("\t")[0] for line in PHOTOS]
    assert planned["source_id"].to_list() == ["obs-1", "obs-1", "obs-2"]
    assert planned["license_id"].to_list() == ["CC-BY-NC", "CC0-1.0", "CC-BY-SA"]
    assert planned["width"].to_list() == ["2048", "1024", "640"]


def test_a_generic_csv_without_uuids_gets_stable_ones_and_its_mapping_from_config(
    tmp_path: Path,
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "url,record,rights,photographer\n"
        "https://a.org/1.jpg,r1,CC BY 4.0,Ann\n"
        "https://a.org/2.jpg,r2,CC BY 4.0,\n"
    )
    columns = {
        "identifier": "url",
        "source_id": "record",
        "license": "rights",
        "source": "photographer",
        "keep": ["photographer"],
    }

    planned = _plan(tmp_path, path, input_columns=columns)

    assert planned.sort("source_id")["uuid"].to_list() == [
        image_uuid("r1", "https://a.org/1.jpg"),
        image_uuid("r2", "https://a.org/2.jpg"),
    ]
    by_id = {row["source_id"]: row for row in planned.iter_rows(named=True)}
    assert by_id["r1"]["is_license_full"] is True and by_id["r2"]["is_license_full"] is False
    assert by_id["r1"]["photographer"] == "Ann"
