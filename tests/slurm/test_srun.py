"""A real Slurm launch: `srun --mpi=pmi2` ranks (.ci/run starts Slurm with slurm-up.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_jobs import clear_orphaned_mpich_segments, slurm_is_up
from support import assert_exactly_once, layout_of, write_config

from distdl.testing.fleet import HostSpec
from distdl.testing.fleet_thread import FleetThread
from distdl.testing.fleet_workload import write_url_list

# CI sets DISTDL_REQUIRE_SLURM=1 after starting a cluster, so there a missing Slurm fails.
HAVE_SLURM = slurm_is_up()
pytestmark = [
    pytest.mark.slow,  # real Slurm jobs: CI runs them with the slow suite
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not HAVE_SLURM and os.environ.get("DISTDL_REQUIRE_SLURM") != "1",
        reason="no running Slurm here (CI starts one with shared/tools/slurm-up.sh)",
    ),
]


def _sbatch(tmp_path: Path, body: str, ntasks: int) -> tuple[int, str]:
    script = tmp_path / "job.sbatch"
    output = tmp_path / "job.out"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --ntasks={ntasks}\n#SBATCH --time=00:05:00\n#SBATCH --output={output}\n"
        f"cd {tmp_path}\n{body}\n"
    )
    clear_orphaned_mpich_segments()
    result = subprocess.run(
        ["sbatch", "--wait", str(script)], capture_output=True, text=True, timeout=280
    )
    return result.returncode, (output.read_text() if output.exists() else result.stderr)


def test_srun_pmi2_ranks_share_one_world_and_finish_exactly_once(tmp_path: Path) -> None:
    hosts = [HostSpec(name, rate_limit=30) for name in ("a", "b", "c")]
    with FleetThread(hosts, seed=6) as fleet:
        write_url_list(fleet, tmp_path / "urls.csv", {"a": 30, "b": 20, "c": 10}, bad_rows=2)
        config = write_config(tmp_path, batch_size=10)
        code, output = _sbatch(
            tmp_path, f"srun --mpi=pmi2 {sys.executable} -m distdl run {config}", ntasks=3
        )
    assert code == 0, output
    assert "dataset: 6/6 partitions done" in output
    layout = layout_of(config)
    assert_exactly_once(tmp_path / "urls.csv", layout)
    assert sorted(p.name for p in layout.logs.glob("rank-*.log")) == [
        "rank-0.log",
        "rank-1.log",
        "rank-2.log",
    ]


def test_srun_without_pmi_is_refused_instead_of_running_size_one_worlds(tmp_path: Path) -> None:
    (tmp_path / "urls.csv").write_text("uuid,identifier,source_id\nu1,http://127.0.0.1:9/x,1\n")
    config = write_config(tmp_path)
    code, output = _sbatch(
        tmp_path, f"srun --mpi=none {sys.executable} -m distdl run {config}", ntasks=2
    )
    assert code != 0
    assert "--mpi=pmi2" in output
