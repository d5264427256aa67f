"""``distdl doctor``: check that this machine can run distdl well, and say how to fix it.

Each :class:`Check` is a finding with a fix. Required checks block a run (exit code 1);
the others are warnings about speed or politeness. mpi4py is imported in a child process,
so a broken MPI install cannot crash the doctor and MPI is never initialised here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_PYTHON = ((3, 10), (3, 13))
MIN_VERSIONS = {"aiohttp": "3.9", "polars": "1.0", "pyarrow": "14", "pydantic": "2.5"}
PILLOW_FIX = "pip uninstall -y pillow && pip install --no-cache-dir --force-reinstall pillow-simd"
# The headers pillow-simd is built against; the same list is in the README and .ci/run.
BUILD_HEADERS = "libjpeg-dev zlib1g-dev libtiff-dev libwebp-dev liblcms2-dev libopenjp2-7-dev"
CODEC_FIX = (
    f"apt-get install {BUILD_HEADERS}, then rebuild: "
    "pip install --no-cache-dir --force-reinstall --no-deps pillow-simd"
)
# PIL.features name -> (shown name, required). JPEG and PNG are most of GBIF. Without Little
# CMS every LAB image (scientific TIFFs) fails to convert to RGB, silently a share of a
# corpus: required too. The rest only turn their rarer formats into error rows: warnings
# (JPEG 2000 is used by some museums and archives).
CODECS = {
    "jpg": ("jpeg", True),
    "zlib": ("png/zlib", True),
    "littlecms2": ("littlecms2", True),
    "webp": ("webp", False),
    "libtiff": ("libtiff", False),
    "jpg_2000": ("jpeg 2000", False),
}
_MPI_PROBE = "from mpi4py import MPI; print(MPI.Get_library_version())"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    required: bool = True


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python(version: tuple[int, ...] | None = None) -> Check:
    version = tuple(version or sys.version_info[:3])
    (low, high), shown = SUPPORTED_PYTHON, ".".join(map(str, version))
    ok = low <= version[:2] <= high
    fix = None if ok else f"use Python {low[0]}.{low[1]}–{high[0]}.{high[1]}"
    return Check("python", ok, shown, fix)


def check_mpi4py() -> Check:
    fix = "pip install mpi4py mpich"
    try:
        mpi4py = importlib.import_module("mpi4py")
    except ImportError as exc:
        return Check("mpi4py", False, f"not importable: {exc}", fix)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _MPI_PROBE], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return Check("mpi4py", False, "importing mpi4py.MPI hung for 60 s", fix)
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).strip().splitlines() or ["(no output)"]
        return Check("mpi4py", False, f"mpi4py.MPI fails to load: {lines[-1]}", fix)
    first_line = (probe.stdout.strip().splitlines() or ["unknown MPI library"])[0]
    library = " ".join(first_line.split())
    return Check("mpi4py", True, f"mpi4py {mpi4py.__version__}, {library}")


def find_launcher() -> Path | None:
    """``mpiexec`` next to the interpreter first (the ``mpich`` wheel puts it in the venv)."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    for name in ("mpiexec", "mpirun"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def check_launcher() -> Check:
    launcher = find_launcher()
    under_slurm = "SLURM_JOB_ID" in os.environ
    slurm_note = "; under Slurm launch ranks with `srun --mpi=pmi2`" if under_slurm else ""
    if launcher is not None:
        return Check("MPI launcher", True, f"{launcher}{slurm_note}")
    if under_slurm and shutil.which("srun"):
        return Check("MPI launcher", True, f"no mpiexec, srun found{slurm_note}")
    return Check("MPI launcher", False, "no mpiexec or mpirun found", "pip install mpich")


def check_pillow_simd() -> Check:
    import PIL

    simd = _distribution_version("pillow-simd")
    plain = _distribution_version("pillow")
    version = PIL.__version__
    if plain is not None:
        detail = f"plain Pillow {plain} installed (PIL {version}): it shadows pillow-simd"
        return Check("pillow-simd", False, detail, PILLOW_FIX)
    if simd is None or "post" not in version:
        return Check("pillow-simd", False, f"PIL {version} is not pillow-simd", PILLOW_FIX)
    return Check("pillow-simd", True, f"PIL {version}")


def check_codecs() -> list[Check]:
    from PIL import features

    checks = []
    for feature, (shown, required) in CODECS.items():
        ok = bool(features.check(feature))
        detail = "available" if ok else "missing: such images become error rows"
        checks.append(Check(f"codec {shown}", ok, detail, None if ok else CODEC_FIX, required))
    return checks


def _version_tuple(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def check_library(name: str, minimum: str) -> Check:
    fix = f"pip install '{name}>={minimum}'"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return Check(name, False, f"not importable: {exc}", fix)
    version = str(getattr(module, "__version__", None) or _distribution_version(name) or "?")
    ok = _version_tuple(version) >= _version_tuple(minimum)
    detail = version if ok else f"{version} is older than {minimum}"
    return Check(name, ok, detail, None if ok else fix)


def check_uvloop() -> Check:
    try:
        importlib.import_module("uvloop")
    except ImportError:
        detail = "not installed (optional: a faster event loop)"
        return Check("uvloop", False, detail, "pip install uvloop", required=False)
    return Check("uvloop", True, "available", required=False)


def check_cpus() -> Check:
    from distdl.runtime.launch import usable_cores  # what the default --ranks counts

    return Check("CPUs", True, f"{usable_cores()} usable of {os.cpu_count() or 1}", required=False)


def check_contact(contact: str | None) -> Check:
    if contact:
        return Check("contact", True, contact, required=False)
    return Check(
        "contact",
        False,
        "no contact in the User-Agent: server operators cannot reach you before blocking you",
        "set downloader_parameters.contact to an e-mail address or URL",
        required=False,
    )


def run_checks(contact: str | None = None) -> list[Check]:
    checks = [check_python(), check_mpi4py(), check_launcher(), check_pillow_simd()]
    checks += check_codecs()
    checks += [check_library(name, minimum) for name, minimum in MIN_VERSIONS.items()]
    checks += [check_uvloop(), check_cpus(), check_contact(contact)]
    return checks


def status(check: Check) -> str:
    if check.ok:
        return "ok"
    return "FAIL" if check.required else "warn"


def render(checks: list[Check]) -> str:
    """A plain-text table: status, name, detail, and the fix under each problem."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for check in checks:
        lines.append(f"{status(check):<4}  {check.name:<{width}}  {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
    return "\n".join(lines) + "\n"


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.required and not c.ok for c in checks) else 0
