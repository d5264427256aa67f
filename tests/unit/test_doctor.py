from __future__ import annotations

import sys
from pathlib import Path

import pytest

from distdl import doctor
from distdl.doctor import Check, exit_code, render, run_checks


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


@pytest.mark.timeout(180)
def test_every_required_check_passes_on_this_machine() -> None:
    checks = run_checks(contact="ops@example.org")
    failing = [c for c in checks if c.required and not c.ok]
    assert failing == []
    assert exit_code(checks) == 0
    found = by_name(checks)
    required = ("python", "mpi4py", "MPI launcher", "pillow-simd", "codec jpeg", "pyarrow")
    for name in (*required, "codec littlecms2"):
        assert found[name].ok
    assert "MPICH" in found["mpi4py"].detail or "MPI" in found["mpi4py"].detail
    assert found["contact"].ok and found["contact"].detail == "ops@example.org"


def test_missing_contact_is_only_a_warning() -> None:
    check = doctor.check_contact(None)
    assert not check.ok and not check.required
    assert check.fix is not None and "downloader_parameters.contact" in check.fix
    assert exit_code([check]) == 0


def test_missing_mpi4py_fails_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    check = doctor.check_mpi4py()
    assert not check.ok and check.required
    assert check.fix == "pip install mpi4py mpich"
    assert exit_code([check]) == 1


def test_missing_library_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)
    check = doctor.check_library("polars", "1.0")
    assert not check.ok and check.required and "not importable" in check.detail


def test_old_library_fails() -> None:
    check = doctor.check_library("pyarrow", "999.0")
    assert not check.ok and "older than 999.0" in check.detail


def test_plain_pillow_next_to_pillow_simd_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"pillow-simd": "12.1.1.post0", "pillow": "12.0.0"}
    monkeypatch.setattr(doctor, "_distribution_version", versions.get)
    check = doctor.check_pillow_simd()
    assert not check.ok and check.required
    assert check.fix == (
        "pip uninstall -y pillow && pip install --no-cache-dir --force-reinstall pillow-simd"
    )


def test_pillow_without_simd_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_distribution_version", {}.get)
    check = doctor.check_pillow_simd()
    assert not check.ok and "not pillow-simd" in check.detail


def test_missing_codecs_point_to_header_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    monkeypatch.setattr(features, "check", lambda name: name not in {"webp", "jpg"})
    found = by_name(doctor.check_codecs())
    assert not found["codec jpeg"].ok and found["codec jpeg"].required
    assert not found["codec webp"].ok and not found["codec webp"].required
    assert found["codec png/zlib"].ok
    fix = found["codec webp"].fix or ""
    assert "libjpeg-dev zlib1g-dev libtiff-dev libwebp-dev" in fix and "--no-cache-dir" in fix


@pytest.mark.parametrize(
    ("version", "ok"),
    [((3, 9, 18), False), ((3, 10, 0), True), ((3, 13, 1), True), ((3, 14, 0), False)],
)
def test_python_versions(version: tuple[int, int, int], ok: bool) -> None:
    assert doctor.check_python(version).ok is ok


def test_launcher_next_to_interpreter_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = tmp_path / "mpiexec"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert doctor.find_launcher() == launcher


def test_no_launcher_fails_and_slurm_is_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    check = doctor.check_launcher()
    assert not check.ok and check.fix == "pip install mpich"
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    check = doctor.check_launcher()
    assert check.ok and "srun --mpi=pmi2" in check.detail


def test_render_and_exit_code() -> None:
    checks = [
        Check("python", True, "3.11.7", None, True),
        Check("uvloop", False, "not installed", "pip install uvloop", False),
        Check("mpi4py", False, "not importable", "pip install mpi4py mpich", True),
    ]
    text = render(checks)
    lines = text.splitlines()
    assert lines[0].split() == ["ok", "python", "3.11.7"]
    assert lines[1].startswith("warn") and lines[3].startswith("FAIL")
    assert "fix: pip install mpi4py mpich" in lines[4]
    assert exit_code(checks) == 1
    assert exit_code(checks[:2]) == 0


def test_little_cms_is_required_and_jpeg_2000_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    monkeypatch.setattr(features, "check", lambda name: name not in {"littlecms2", "jpg_2000"})
    checks = doctor.check_codecs()
    found = by_name(checks)
    lcms, jpeg2000 = found["codec littlecms2"], found["codec jpeg 2000"]
    assert not lcms.ok and lcms.required and exit_code(checks) == 1
    assert not jpeg2000.ok and not jpeg2000.required
    assert "liblcms2-dev" in (lcms.fix or "") and "libopenjp2-7-dev" in (lcms.fix or "")
    assert "--no-cache-dir" in (lcms.fix or "")
    assert "FAIL  codec littlecms2" in render(checks)
