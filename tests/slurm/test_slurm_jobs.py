"""The test bench's clearing of orphaned MPICH segments touches only what nobody uses."""

from __future__ import annotations

import os
from pathlib import Path

from slurm_jobs import mapped_shm_files, orphaned_mpich_segments


def _segment(folder: Path, name: str, age: float, now: float) -> Path:
    path = folder / name
    path.write_bytes(b"\0" * 16)
    os.utime(path, (now - age, now - age))
    return path


def test_only_old_unmapped_mpich_segments_are_orphans(tmp_path: Path) -> None:
    now = 1_000_000.0
    stale = _segment(tmp_path, "mpich_shm_14f46f28_0", age=3600, now=now)
    stale_vci = _segment(tmp_path, "mpich_vci_14f46f28_0", age=3600, now=now)
    in_use = _segment(tmp_path, "mpich_shm_bfe32d5e_0", age=3600, now=now)
    just_made = _segment(tmp_path, "mpich_shm_497cbda1_0", age=5, now=now)
    _segment(tmp_path, "psm2_shm.1", age=3600, now=now)

    orphans = orphaned_mpich_segments(tmp_path, mapped={in_use}, now=now)

    assert orphans == sorted([stale, stale_vci])
    assert in_use not in orphans and just_made not in orphans


def test_mapped_files_are_read_from_proc_maps(tmp_path: Path) -> None:
    process = tmp_path / "123"
    process.mkdir()
    (process / "maps").write_text(
        "7f68c78df000-7f68c7be7000 rw-s 00000000 00:1b 9914    /dev/shm/mpich_shm_bfe32d5e_0\n"
        "7f68c7be7000-7f68c8000000 rw-s 00000000 00:1b 13234   /dev/shm/ucx_shm_a (deleted)\n"
        "7f68d5c2b000-7f68d5c34000 r-xp 00000000 08:01 42      /usr/lib/libc.so.6\n"
        "7ffd1000-7ffd2000 rw-p 00000000 00:00 0\n"
    )
    assert mapped_shm_files(tmp_path) == {
        Path("/dev/shm/mpich_shm_bfe32d5e_0"),
        Path("/dev/shm/ucx_shm_a"),
    }
