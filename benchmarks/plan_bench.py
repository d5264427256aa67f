"""Benchmark of stage "batched": rows/s, elapsed time and peak RSS of the planning process.

    python benchmarks/plan_bench.py --rows 10000000 [--format csv|tsv|parquet] [--keep]
    python benchmarks/plan_bench.py --input /tmp/existing.csv --format csv
    python benchmarks/plan_bench.py --gbif --rows 1000000

Generates a synthetic GBIF-like input under a temporary folder in /tmp (see gen_input.py),
plans it in a child process, prints the figures and one JSON line, then deletes the input
and output unless ``--keep``.

``--gbif`` turns the generated rows into a GBIF download (multimedia.txt columns, one
occurrence per gbifID) and plans the same rows three ways: as a Darwin Core Archive zip,
as parquet (same columns), and as the archive again with ``input_occurrence_fields`` (the
join's cost is that run minus the first).

Peak RSS is the planning child's own, from ``os.wait4``. Generation runs in a child too:
Linux carries a process's RSS high-water mark across fork and exec into its children's
``ru_maxrss``, so this parent must stay small (it never imports polars).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "gen_input.py"


GBIF_COLUMNS = (
    "gbifID",
    "type",
    "format",
    "identifier",
    "references",
    "title",
    "description",
    "source",
    "audience",
    "created",
    "creator",
    "contributor",
    "publisher",
    "license",
    "rightsHolder",
)
OCCURRENCE_FIELDS = ["scientificName", "basisOfRecord", "datasetKey"]
_TERMS = "http://purl.org/dc/terms/"


def _plan_in_this_process(
    input_path: Path, output: Path, fmt: str, batch_size: int, settings: dict[str, object]
) -> None:
    from distdl.config import parse_config
    from distdl.layout import Layout
    from distdl.plan.planner import plan_input

    config = parse_config(
        {
            "path_to_input": str(input_path),
            "path_to_output": str(output),
            "downloader_parameters": {"batch_size": batch_size},
            **settings,
        },
        output,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    fmt_override = None if fmt == "auto" else fmt
    summary = plan_input(config, Layout.from_config(config), fmt_override)  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"elapsed_s": elapsed, "cpu_s": cpu, **summary.__dict__}))


def _run(command: list[str]) -> tuple[str, float]:
    """Run ``command``; its stdout and its own peak RSS in MB."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command, output)
    return output, usage.ru_maxrss / 1024


def _make_gbif(csv_path: Path, folder: Path) -> None:
    """gen_input's rows as a GBIF download: dwca.zip and multimedia.parquet (same rows)."""
    import zipfile

    import polars as pl

    rows = pl.read_csv(csv_path, infer_schema_length=0)
    filled = {
        "gbifID": pl.col("source_id"),
        "type": pl.lit("StillImage"),
        "format": pl.lit("image/jpeg"),
        "publisher": pl.lit("Museum"),
        "rightsHolder": pl.col("source"),
        "creator": pl.col("source"),
    }
    multimedia = rows.select(
        [
            filled.get(
                name, pl.col(name) if name in rows.columns else pl.lit(None, pl.String)
            ).alias(name)
            for name in GBIF_COLUMNS
        ]
    )
    multimedia.write_parquet(folder / "multimedia.parquet")
    occurrences = multimedia.select(pl.col("gbifID").unique(maintain_order=True)).with_columns(
        scientificName=pl.lit("Lycorma delicatula"),
        basisOfRecord=pl.lit("HUMAN_OBSERVATION"),
        datasetKey=pl.lit("50c9509d-22c7-4a22-a47d-8c48425ef4a7"),
    )
    multimedia.write_csv(folder / "multimedia.txt", separator="\t", quote_style="never")
    occurrences.write_csv(folder / "occurrence.txt", separator="\t", quote_style="never")
    meta = _meta_xml(list(occurrences.columns))
    with zipfile.ZipFile(folder / "dwca.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.xml", meta)
        for name in ("multimedia.txt", "occurrence.txt"):
            archive.write(folder / name, name)
            (folder / name).unlink()


def _meta_xml(core_columns: list[str]) -> str:
    def fields(names: list[str]) -> str:
        return "".join(f'<field index="{i}" term="{_TERMS}{n}"/>' for i, n in enumerate(names))

    layout = (
        'fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1"'
    )
    return (
        '<archive xmlns="http://rs.tdwg.org/dwc/text/">'
        f'<core {layout} rowType="http://rs.tdwg.org/dwc/terms/Occurrence"><files>'
        f'<location>occurrence.txt</location></files><id index="0"/>{fields(core_columns)}</core>'
        f'<extension {layout} rowType="http://rs.gbif.org/terms/1.0/Multimedia"><files>'
        '<location>multimedia.txt</location></files><coreid index="0"/>'
        f"{fields(list(GBIF_COLUMNS))}</extension></archive>"
    )


def _run_child(
    input_path: Path,
    output: Path,
    fmt: str,
    batch_size: int,
    settings: dict[str, object] | None = None,
) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", str(input_path), str(output), fmt]
    command += ["--batch-size", str(batch_size), "--settings", json.dumps(settings or {})]
    stdout, peak_rss_mb = _run(command)
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak_rss_mb
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark of input planning")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["csv", "tsv", "parquet"], default="csv")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--input", type=Path, help="plan this file instead of generating one")
    parser.add_argument("--gbif", action="store_true", help="DwC-A vs parquet, and the join")
    parser.add_argument("--repeat", type=int, default=3, help="--gbif: best of N runs each")
    parser.add_argument("--child", nargs=3, metavar=("INPUT", "OUTPUT", "FORMAT"))
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--make-gbif", nargs=2, metavar=("CSV", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        input_path, output, fmt = args.child
        settings = json.loads(args.settings)
        _plan_in_this_process(Path(input_path), Path(output), fmt, args.batch_size, settings)
        return
    if args.make_gbif:
        _make_gbif(Path(args.make_gbif[0]), Path(args.make_gbif[1]))
        return
    folder = Path(tempfile.mkdtemp(prefix="distdl-plan-bench-", dir="/tmp"))
    try:
        _bench(folder, args)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept {folder}")


def _bench_gbif(folder: Path, args: argparse.Namespace) -> None:
    csv_path = folder / "input.csv"
    command = [sys.executable, str(GENERATOR), str(csv_path), "--rows", str(args.rows)]
    _run([*command, "--hosts", str(args.hosts), "--format", "csv"])
    _run([sys.executable, __file__, "--make-gbif", str(csv_path), str(folder)])
    csv_path.unlink()
    runs = {
        "dwca": (folder / "dwca.zip", {}),
        "parquet": (folder / "multimedia.parquet", {}),
        "dwca_join": (folder / "dwca.zip", {"input_occurrence_fields": OCCURRENCE_FIELDS}),
    }
    results: dict[str, dict[str, object]] = {}
    # Interleaved repeats, best of each: the machine is shared, and noise only adds time.
    for _ in range(args.repeat):
        for name, (path, settings) in runs.items():
            out = folder / f"out-{name}"
            result = _run_child(path, out, "auto", args.batch_size, settings)
            shutil.rmtree(out, ignore_errors=True)
            if name not in results or _seconds(result) < _seconds(results[name]):
                results[name] = result
    for name, result in results.items():
        elapsed = _seconds(result)
        print(
            f"{name:>9}: {elapsed:6.1f} s (best of {args.repeat}), "
            f"{float(result['cpu_s']):6.1f} s CPU, {args.rows / elapsed:,.0f} rows/s, "  # type: ignore[arg-type]
            f"peak RSS {float(result['peak_rss_mb']):,.0f} MB"  # type: ignore[arg-type]
        )
    seconds = {name: _seconds(result) for name, result in results.items()}
    cpu = {name: float(result["cpu_s"]) for name, result in results.items()}  # type: ignore[arg-type]
    ratio, cpu_ratio = seconds["dwca"] / seconds["parquet"], cpu["dwca"] / cpu["parquet"]
    join, cpu_join = seconds["dwca_join"] - seconds["dwca"], cpu["dwca_join"] - cpu["dwca"]
    # CPU seconds (all threads) move far less than wall time when others load the machine.
    print(f"DwC-A / parquet: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU")
    print(f"occurrence join: +{join:.1f} s wall, +{cpu_join:.1f} s CPU")
    record = {
        "bench": "plan_gbif",
        "rows": args.rows,
        "repeat": args.repeat,
        "zip_mb": round((folder / "dwca.zip").stat().st_size / 1e6, 1),
        **{f"{name}_s": round(value, 2) for name, value in seconds.items()},
        **{f"{name}_cpu_s": round(value, 2) for name, value in cpu.items()},
        "dwca_over_parquet": round(ratio, 3),
        "dwca_over_parquet_cpu": round(cpu_ratio, 3),
        "join_s": round(join, 2),
        "join_cpu_s": round(cpu_join, 2),
        **{f"{n}_peak_rss_mb": round(float(r["peak_rss_mb"]), 1) for n, r in results.items()},  # type: ignore[arg-type]
    }
    print(json.dumps(record))


def _seconds(result: dict[str, object]) -> float:
    return float(result["elapsed_s"])  # type: ignore[arg-type]


def _bench(folder: Path, args: argparse.Namespace) -> None:
    if args.gbif:
        _bench_gbif(folder, args)
        return
    suffix = {"csv": ".csv", "tsv": ".tsv", "parquet": ".parquet"}[args.format]
    input_path = args.input or folder / f"input{suffix}"
    if args.input is None:
        started = time.perf_counter()
        command = [sys.executable, str(GENERATOR), str(input_path), "--rows", str(args.rows)]
        _run([*command, "--hosts", str(args.hosts), "--format", args.format])
        generated = time.perf_counter() - started
        print(f"generated {args.rows:,} rows ({args.format}) in {generated:.1f} s")
    size_mb = input_path.stat().st_size / 1e6
    result = _run_child(input_path, folder / "out", args.format, args.batch_size)
    elapsed = float(result["elapsed_s"])  # type: ignore[arg-type]
    rows = int(result["total_rows"])  # type: ignore[call-overload]
    rows_per_s = rows / elapsed if elapsed else 0.0
    print(f"planned {rows:,} rows ({size_mb:,.0f} MB) in {elapsed:.1f} s: {rows_per_s:,.0f} rows/s")
    print(f"peak RSS of the planning process: {result['peak_rss_mb']:,.0f} MB")
    print(
        f"servers {result['servers']}, partitions {result['partitions']}, "
        f"rejected {result['rejected_rows']}"
    )
    record = {
        "bench": "plan",
        "rows": rows,
        "format": args.format,
        "input_mb": round(size_mb, 1),
        "elapsed_s": round(elapsed, 2),
        "rows_per_s": round(rows_per_s),
        "peak_rss_mb": round(float(result["peak_rss_mb"]), 1),  # type: ignore[arg-type]
        "servers": result["servers"],
        "partitions": result["partitions"],
        "rejected_rows": result["rejected_rows"],
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
