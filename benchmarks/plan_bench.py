"""Benchmark of stage "batched": rows/s, elapsed time and peak RSS of the planning process.

    python benchmarks/plan_bench.py --rows 10000000 [--format csv|tsv|parquet] [--keep]
    python benchmarks/plan_bench.py --input /tmp/existing.csv --format csv

Generates a synthetic GBIF-like input under a temporary folder in /tmp (see gen_input.py),
plans it in a child process, prints the figures and one JSON line, then deletes the input
and output unless ``--keep``.

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


def _plan_in_this_process(input_path: Path, output: Path, fmt: str, batch_size: int) -> None:
    from distdl.config import parse_config
    from distdl.layout import Layout
    from distdl.plan.planner import plan_input

    config = parse_config(
        {
            "path_to_input": str(input_path),
            "path_to_output": str(output),
            "downloader_parameters": {"batch_size": batch_size},
        },
        output,
    )
    started = time.perf_counter()
    summary = plan_input(config, Layout.from_config(config), fmt)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    print(json.dumps({"elapsed_s": elapsed, **summary.__dict__}))


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


def _run_child(input_path: Path, output: Path, fmt: str, batch_size: int) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", str(input_path), str(output), fmt]
    command += ["--batch-size", str(batch_size)]
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
    parser.add_argument("--child", nargs=3, metavar=("INPUT", "OUTPUT", "FORMAT"))
    args = parser.parse_args()
    if args.child:
        input_path, output, fmt = args.child
        _plan_in_this_process(Path(input_path), Path(output), fmt, args.batch_size)
        return
    folder = Path(tempfile.mkdtemp(prefix="distdl-plan-bench-", dir="/tmp"))
    try:
        _bench(folder, args)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept {folder}")


def _bench(folder: Path, args: argparse.Namespace) -> None:
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
