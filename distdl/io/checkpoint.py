"""The stage checkpoint (``inner_checkpoint.yaml``) and the fingerprint of the planned input.

Stages run in order: ``batched`` (input split into server partitions), ``profiled``
(per-server rate limits), ``downloaded``. A stage is recorded complete only after it has
finished, never when it is started or submitted. The file keeps the original tool's
top-level ``batched: true/false`` keys, plus a ``details`` section (times, counts) and the
``input_fingerprint`` the plan was made from, so resuming against a changed input or
changed planning parameters is refused with a message naming what changed. The fingerprint
also records the rule that named the servers (``host_key_version``): partitions are folders
named by server, so a plan made under another rule, or before the rule was recorded, is
refused rather than mixed with servers named the new way.

Every change is written at once, atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from distdl.core.host_key import HOST_KEY_VERSION
from distdl.errors import InputError, StateError
from distdl.io.atomic import atomic_write_text

STAGES = ("batched", "profiled", "downloaded")
SAMPLE_BYTES = 1024 * 1024
_HEADER = (
    "# distdl stage checkpoint. A stage is true only once it has finished.\n"
    "# Use `distdl reset CONFIG --stage STAGE` rather than editing this file.\n"
)
# check_fingerprint compares size, sampled content and these parameters. Path and mtime are
# informative only, so a plan survives copying or moving the very same input file.
_PARAMETER_KEYS = ("batch_size", "input_format")
_HOST_KEY = "host_key_version"
_NO_FINGERPRINT = (
    "the plan was made by an older version, which recorded no fingerprint "
    "(its server names may differ from this version's)"
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(value: object) -> object:
    """YAML-safe copy of a detail value (paths, numpy scalars, … become strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return _plain_dict(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def _plain_dict(mapping: Mapping[Any, object]) -> dict[str, Any]:
    return {str(key): _plain(value) for key, value in mapping.items()}


def _stage_index(stage: str) -> int:
    try:
        return STAGES.index(stage)
    except ValueError:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}") from None


def _input_files(input_path: Path) -> Iterator[Path]:
    if input_path.is_dir():
        for path in sorted(input_path.rglob("*")):
            relative = path.relative_to(input_path)
            if path.is_file() and not any(p.startswith(".") for p in relative.parts):
                yield path
    else:
        yield input_path


def _sample_file(digest: Any, path: Path, size: int) -> None:
    """Hash the first and last MiB: fast on 10 GB files, yet catches appends and rewrites."""
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))


def input_fingerprint(
    input_path: Path,
    *,
    batch_size: int,
    input_format: str | None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """What the plan depends on: the input (size, mtime, sampled SHA-256) and parameters.

    A folder input (e.g. a folder of parquet files) is fingerprinted over its non-hidden
    files in sorted order: total size, newest mtime, and every file's name, size and samples.
    """
    input_path = Path(input_path).resolve()
    digest = hashlib.sha256()
    total_size = 0
    newest_mtime = 0
    try:
        for path in _input_files(input_path):
            stat = path.stat()
            total_size += stat.st_size
            newest_mtime = max(newest_mtime, stat.st_mtime_ns)
            if path != input_path:
                digest.update(path.relative_to(input_path).as_posix().encode() + b"\0")
            digest.update(f"{stat.st_size}\0".encode())
            _sample_file(digest, path, stat.st_size)
    except OSError as exc:
        raise InputError(f"cannot read the input {input_path}: {exc.strerror or exc}") from None
    return {
        "path": str(input_path),
        "size": total_size,
        "mtime_ns": newest_mtime,
        "sample_sha256": digest.hexdigest(),
        "batch_size": batch_size,
        "input_format": input_format,
        _HOST_KEY: HOST_KEY_VERSION,
        "extra": _plain_dict(extra or {}),  # as YAML will store it, so comparisons hold
    }


def format_size(size: int) -> str:
    """Decimal units, as file managers show them: 1234567890 -> '1.2 GB'."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _describe_input_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    old_size, new_size = old.get("size"), new.get("size")
    if old_size != new_size:
        before, after = format_size(int(old_size or 0)), format_size(int(new_size or 0))
        if before == after:
            before, after = f"{old_size:,} bytes", f"{new_size:,} bytes"
        return f"input file changed (size {before} → {after})"
    if old.get("sample_sha256") != new.get("sample_sha256"):
        return f"input file changed (same size {format_size(int(new_size or 0))}, new content)"
    return None


def _describe(value: object) -> str:
    if value is None:
        return "(unset)"
    return repr(value) if isinstance(value, str) else str(value)


def _describe_host_key_change(old: object, new: object) -> str | None:
    if old == new:
        return None
    used = "an older rule" if old is None else f"rule {old}"
    return (
        f"server names changed: the plan named its servers by {used}, this version by "
        f"rule {new} (the host the HTTP client connects to)"
    )


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per difference that invalidates a plan; empty when the plan still holds."""
    changes: list[str] = []
    input_change = _describe_input_change(old, new)
    if input_change:
        changes.append(input_change)
    host_key_change = _describe_host_key_change(old.get(_HOST_KEY), new.get(_HOST_KEY))
    if host_key_change:
        changes.append(host_key_change)
    for key in _PARAMETER_KEYS:
        if old.get(key) != new.get(key):
            changes.append(
                f"{key} changed from {_describe(old.get(key))} to {_describe(new.get(key))}"
            )
    old_extra, new_extra = old.get("extra") or {}, new.get("extra") or {}
    for key in sorted(set(old_extra) | set(new_extra)):
        if old_extra.get(key) != new_extra.get(key):
            before, after = _describe(old_extra.get(key)), _describe(new_extra.get(key))
            changes.append(f"{key} changed from {before} to {after}")
    return changes


class Checkpoint:
    """Which stages of a run are finished, and the fingerprint of the plan's input."""

    def __init__(self, path: Path, data: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        data = dict(data or {})
        self._done = {stage: bool(data.pop(stage, False)) for stage in STAGES}
        details = data.pop("details", None) or {}
        self._details: dict[str, dict[str, Any]] = {
            stage: dict(details[stage]) for stage in STAGES if isinstance(details.get(stage), dict)
        }
        self.fingerprint: dict[str, Any] | None = data.pop("input_fingerprint", None)
        self._other = data  # keys written by other tools are kept as they are

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read the checkpoint; a missing file means nothing is done yet."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise StateError(f"{path}: the checkpoint is not valid YAML ({exc})") from None
        if data is not None and not isinstance(data, dict):
            raise StateError(f"{path}: the checkpoint must be a YAML mapping of stage: true/false")
        return cls(path, data)

    def is_complete(self, stage: str) -> bool:
        _stage_index(stage)
        return self._done[stage]

    def details(self, stage: str) -> dict[str, Any]:
        _stage_index(stage)
        return dict(self._details.get(stage, {}))

    @property
    def started(self) -> bool:
        return any(self._done.values()) or self.fingerprint is not None

    def mark_complete(self, stage: str, **details: object) -> None:
        """Record that ``stage`` has finished (call it only then); saved at once.

        Every earlier stage must already be complete: stages run in order.
        """
        index = _stage_index(stage)
        missing = [s for s in STAGES[:index] if not self._done[s]]
        if missing:
            raise ValueError(f"cannot mark {stage!r} complete before {', '.join(missing)}")
        self._done[stage] = True
        self._details[stage] = {"completed_at": _now(), **_plain_dict(details)}
        self.save()

    def invalidate_from(self, stage: str) -> None:
        """Mark ``stage`` and every later stage not done; saved at once.

        Invalidating ``batched`` also forgets the input fingerprint: the next plan records
        its own.
        """
        index = _stage_index(stage)
        for later in STAGES[index:]:
            self._done[later] = False
            self._details.pop(later, None)
        if index == 0:
            self.fingerprint = None
        self.save()

    def check_fingerprint(self, fingerprint: Mapping[str, Any], *, config: str = "CONFIG") -> None:
        """Raise StateError naming what changed when ``fingerprint`` differs from the stored one.

        Nothing stored passes, unless the plan is complete: a complete plan without a
        fingerprint was made by an older version, whose server names may differ.
        ``config`` is shown in the suggested reset command.
        """
        if self.fingerprint is None and not self._done["batched"]:
            return
        if self.fingerprint is None:
            changes = [_NO_FINGERPRINT]
        else:
            changes = fingerprint_changes(self.fingerprint, fingerprint)
        if changes:
            listed = "\n".join(f"  - {change}" for change in changes)
            raise StateError(
                f"{self.path.parent} was planned differently:\n{listed}\n"
                "Resuming would mix two plans. To plan again from scratch, run:\n"
                f"  distdl reset {config} --stage batched"
            )

    def record_fingerprint(self, fingerprint: Mapping[str, Any]) -> None:
        self.fingerprint = _plain_dict(fingerprint)
        self.save()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self._done)
        data.update(self._other)
        if self._details:
            data["details"] = {s: self._details[s] for s in STAGES if s in self._details}
        if self.fingerprint is not None:
            data["input_fingerprint"] = self.fingerprint
        return data

    def save(self) -> None:
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)
        atomic_write_text(self.path, _HEADER + body)
