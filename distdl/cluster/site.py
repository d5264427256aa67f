"""What differs between clusters, from the config's ``slurm:`` section or the environment.

A key the config leaves unset comes from the submitting shell: ``account``, ``partition``
and ``time`` through sbatch's own ``SBATCH_ACCOUNT``, ``SBATCH_PARTITION`` and
``SBATCH_TIMELIMIT`` (sbatch reads them itself, so distdl passes nothing), ``modules`` from
``DISTDL_MODULES`` (space-separated), the virtualenv from ``VIRTUAL_ENV`` (the one active),
the srun MPI plugin from ``DISTDL_SRUN_MPI`` (``pmi2`` when none: what the pip ``mpich``
wheel and MPICH/Intel MPI builds take; ``pmix`` for Open MPI and PMIx builds). Without a
virtualenv the job runs the Python that runs ``distdl submit``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from distdl.config import SlurmSettings

MODULES_ENV = "DISTDL_MODULES"
MPI_ENV = "DISTDL_SRUN_MPI"
PYTHON_ENV = "DISTDL_PYTHON"
DEFAULT_MPI = "pmi2"


@dataclass(frozen=True)
class Site:
    account: str | None
    partition: str | None
    time: str | None
    modules: tuple[str, ...]
    virtualenv: Path | None
    python: str  # the Python that runs distdl in the job
    mpi: str
    sbatch_options: tuple[str, ...]
    pre_script: Path | None
    post_script: Path | None


def resolve_site(
    settings: SlurmSettings, env: Mapping[str, str] = os.environ, python: str = sys.executable
) -> Site:
    modules = settings.modules
    if modules is None:
        modules = env.get(MODULES_ENV, "").split()
    virtualenv = settings.virtualenv
    if virtualenv is None and env.get("VIRTUAL_ENV"):
        virtualenv = Path(env["VIRTUAL_ENV"])
    return Site(
        account=settings.account,
        partition=settings.partition,
        time=settings.time,
        modules=tuple(modules),
        virtualenv=virtualenv,
        python="python" if virtualenv is not None else python,
        mpi=settings.mpi or env.get(MPI_ENV) or DEFAULT_MPI,
        sbatch_options=tuple(settings.sbatch_options),
        pre_script=settings.pre_script,
        post_script=settings.post_script,
    )
