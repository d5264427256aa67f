"""The DISTDL_FAULT hook: parsing, when a fault fires, and that it is inert when unset."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from distdl.testing import faults


def test_entries_parse_with_counts_repeats_and_actions() -> None:
    parsed = faults.parse("parquet.write@3=ENOSPC, marker.write@1+=EIO,parquet.close@2+=kill")
    assert [(f.point, f.at, f.repeat, f.action) for f in parsed] == [
        ("parquet.write", 3, False, "ENOSPC"),
        ("marker.write", 1, True, "EIO"),
        ("parquet.close", 2, True, "kill"),
    ]
    assert faults.parse("") == []


@pytest.mark.parametrize(
    "text", ["nowhere=EIO", "parquet.write", "parquet.write@0=EIO", "marker.write=EWHAT"]
)
def test_bad_entries_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="DISTDL_FAULT"):
        faults.parse(text)


def test_a_fault_fires_at_its_hit_once_or_from_then_on(monkeypatch: pytest.MonkeyPatch) -> None:
    armed: dict[str, list[faults.Fault]] = {}
    for fault in faults.parse("parquet.write@2=EDQUOT,marker.write@2+=EIO"):
        armed.setdefault(fault.point, []).append(fault)
    monkeypatch.setattr(faults, "_ARMED", armed)
    monkeypatch.setattr(faults, "_hits", faults.Counter())
    fired = []
    for _ in range(4):
        for point in ("parquet.write", "marker.write", "parquet.close"):
            try:
                faults.hit(point, "/x/y")
            except OSError as exc:
                fired.append((point, exc.errno, exc.filename))
    assert fired == [
        ("parquet.write", errno.EDQUOT, "/x/y"),
        ("marker.write", errno.EIO, "/x/y"),
        ("marker.write", errno.EIO, "/x/y"),
        ("marker.write", errno.EIO, "/x/y"),
    ]


def test_unset_means_inert() -> None:
    code = (
        "from distdl.testing import faults\n"
        "assert faults._ARMED == {}\n"
        "for p in faults.POINTS: faults.hit(p)\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
