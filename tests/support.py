"""Helpers shared by the integration and MPI tests: fleets, configs, the exactly-once check."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from distdl import schema
from distdl.config import load_config
from distdl.layout import ERRORS_FILE, SUCCESSES_FILE, Layout


def write_config(folder: Path, input_name: str = "urls.csv", **params: object) -> Path:
    data = {
        "path_to_input": input_name,
        "path_to_output": "out",
        "downloader_parameters": {"batch_size": 20, "default_rate_limit": 10, **params},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def layout_of(config_path: Path) -> Layout:
    return Layout.from_config(load_config(config_path))


def output_rows(layout: Layout, file_name: str, columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(layout.images.glob(f"server_name=*/partition_id=*/{file_name}")):
        table = pq.read_table(path, columns=columns)
        rows.extend(table.to_pylist())
    return rows


def assert_exactly_once(input_path: Path, layout: Layout) -> tuple[int, int]:
    """Every input uuid is in exactly one success or error row; returns (successes, errors)."""
    expected = pl.read_csv(input_path, infer_schema_length=0)["uuid"].fill_null("").to_list()
    successes = [r["uuid"] for r in output_rows(layout, SUCCESSES_FILE, ["uuid"])]
    errors = [r["uuid"] for r in output_rows(layout, ERRORS_FILE, ["uuid"])]
    seen = Counter(successes) + Counter(errors)
    duplicated = {u: n for u, n in seen.items() if n > 1}
    assert not duplicated, f"rows written twice: {list(duplicated.items())[:5]}"
    missing = set(expected) - set(seen)
    assert not missing, f"{len(missing)} input rows never written, e.g. {sorted(missing)[:5]}"
    extra = set(seen) - set(expected)
    assert not extra, f"rows that were not in the input: {sorted(extra)[:5]}"
    for path in layout.images.glob("server_name=*/partition_id=*/*.parquet"):
        name_schema = schema.SUCCESSES if path.name == SUCCESSES_FILE else schema.ERRORS
        found = pq.read_schema(path).remove_metadata()
        # Successes may carry more columns after distdl's own (license_id, kept columns).
        own = pa.schema([found.field(i) for i in range(min(len(found), len(name_schema)))])
        assert own.equals(name_schema), path
    return len(successes), len(errors)


def visible_temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name and p.is_file()]
