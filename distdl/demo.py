"""`distdl demo`: a whole run against a simulated fleet on loopback, in a fresh folder.

The fleet's hosts have rate limits distdl is not told about, some flaky answers, a few
broken images and opt-outs: what a real GBIF-like crawl looks like, in a minute.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

from distdl.api import RunOptions, chosen_ranks, run
from distdl.config import load_config
from distdl.core.text import plural
from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import REALISTIC, make_zipf_fleet, write_url_list, zipf_rows

DEMO_LIMITS = (4.0, 40.0)  # hidden req/s of the smallest and the biggest simulated host
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "example.yaml"


def demo_config(images: int, hosts: int, template: Path | None) -> dict[str, object]:
    """configs/example.yaml (when this is a source checkout) aimed at the demo's files."""
    source = template or (SHIPPED_CONFIG if SHIPPED_CONFIG.exists() else None)
    config: dict[str, object] = yaml.safe_load(source.read_text()) if source else {}
    params = dict(config.get("downloader_parameters") or {})  # type: ignore[call-overload]
    # Small partitions, so a demo of a few hundred URLs still spreads over every rank.
    params["batch_size"] = max(10, images // (hosts * 2))
    params.setdefault("contact", None)
    params["contact"] = params["contact"] or "distdl-demo@localhost"
    config.update(path_to_input="urls.csv", path_to_output="output", downloader_parameters=params)
    return config


def demo_hosts(hosts: int) -> list[HostSpec]:
    template = replace(REALISTIC, latency=0.02, latency_jitter=0.01, retry_after=1.0)
    return make_zipf_fleet(hosts, seed=7, limits=DEMO_LIMITS, template=template)


def run_demo(
    *, hosts: int, images: int, ranks: int | None, folder: Path | None, config: Path | None = None
) -> str:
    """``ranks`` None: as ``distdl run`` picks them (one process on a 2-core laptop)."""
    root = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="distdl-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    specs = demo_hosts(hosts)
    with FleetThread(specs, seed=7) as fleet:
        rows = zipf_rows(fleet.host_names, images, exponent=0.8)
        total = write_url_list(
            fleet,
            root / "urls.csv",
            rows,
            formats=("jpeg", "jpeg", "jpeg", "png", "webp", "gif"),
            sizes=((1024, 768), (2048, 1536), (640, 480), (480, 640)),
            bad_rows=max(1, images // 100),
            seed=7,
        )
        config_path = root / "config.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(images, hosts, config), sort_keys=False))
        ranks = chosen_ranks(load_config(config_path), ranks)
        started = time.monotonic()
        outcome = run(config_path, RunOptions(ranks=ranks))
        elapsed = time.monotonic() - started
        requests = fleet.requests
    throttled = sum(1 for r in requests if r.status == 429)
    bound = max(rows[s.name] / (s.rate_limit or 1) for s in specs)
    # Launched ranks: rank 0 printed the run's summary itself (the outcome's is empty).
    return "\n".join(
        line
        for line in [
            f"demo folder: {root}",
            f"{plural(total, 'URL')} on {plural(hosts, 'simulated host')} with hidden limits "
            f"{DEMO_LIMITS[0]:g}–{DEMO_LIMITS[1]:g} req/s, {plural(ranks, 'rank')}",
            outcome.summary,
            f"server side: {len(requests)} requests, {throttled} answered 429 "
            f"({100 * throttled / max(len(requests), 1):.2f}%); "
            f"wall time {elapsed:.1f} s vs lower bound {bound:.1f} s "
            f"(slowest host's URLs ÷ its hidden limit; the images are up to "
            f"2048×1536, so on a laptop their decoding, not the servers, may set the pace)",
            f"config: {config_path}",
        ]
        if line
    )
