from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from distdl.core.host_key import HOST_KEY_VERSION
from distdl.errors import InputError, StateError
from distdl.io.checkpoint import (
    SAMPLE_BYTES,
    STAGES,
    Checkpoint,
    fingerprint_changes,
    format_size,
    input_fingerprint,
)


@pytest.fixture
def checkpoint_path(tmp_path: Path) -> Path:
    return tmp_path / "out" / "inner_checkpoint.yaml"


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "urls.csv"
    path.write_bytes(b"uuid,identifier\n" + b"x" * (3 * SAMPLE_BYTES))
    return path


def test_missing_file_means_nothing_done(checkpoint_path: Path) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    assert not checkpoint.started
    assert not any(checkpoint.is_complete(stage) for stage in STAGES)
    assert not checkpoint_path.exists()


def test_mark_complete_is_saved_at_once_and_readable(checkpoint_path: Path) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.mark_complete("batched", partitions=12, input=Path("/data/in.csv"))
    reloaded = Checkpoint.load(checkpoint_path)
    assert reloaded.started
    assert reloaded.is_complete("batched") and not reloaded.is_complete("profiled")
    assert reloaded.details("batched")["partitions"] == 12
    assert reloaded.details("batched")["input"] == "/data/in.csv"
    text = checkpoint_path.read_text()
    data = yaml.safe_load(text)
    assert data["batched"] is True and data["profiled"] is False and data["downloaded"] is False
    assert "completed_at" in data["details"]["batched"]
    assert text.startswith("# distdl stage checkpoint")


def test_stages_complete_in_order(checkpoint_path: Path) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    with pytest.raises(ValueError, match="before batched, profiled"):
        checkpoint.mark_complete("downloaded")
    checkpoint.mark_complete("batched")
    with pytest.raises(ValueError, match="before profiled"):
        checkpoint.mark_complete("downloaded")
    checkpoint.mark_complete("profiled")
    checkpoint.mark_complete("downloaded", successes=10)
    assert all(Checkpoint.load(checkpoint_path).is_complete(stage) for stage in STAGES)
    with pytest.raises(ValueError, match="unknown stage"):
        checkpoint.is_complete("shipped")


def test_invalidate_from_clears_that_stage_and_later(checkpoint_path: Path) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.record_fingerprint({"size": 1, "batch_size": 5})
    for stage in STAGES:
        checkpoint.mark_complete(stage)
    checkpoint.invalidate_from("profiled")
    reloaded = Checkpoint.load(checkpoint_path)
    assert [reloaded.is_complete(s) for s in STAGES] == [True, False, False]
    assert reloaded.details("profiled") == {}
    assert reloaded.fingerprint == {"size": 1, "batch_size": 5}
    reloaded.invalidate_from("batched")
    again = Checkpoint.load(checkpoint_path)
    assert not again.started
    assert again.fingerprint is None


def test_original_tool_checkpoint_loads_and_keeps_foreign_keys(checkpoint_path: Path) -> None:
    checkpoint_path.parent.mkdir(parents=True)
    checkpoint_path.write_text(
        "batched: true\nprofiled: false\nschedule_creation_scheduled: true\n"
    )
    checkpoint = Checkpoint.load(checkpoint_path)
    assert checkpoint.is_complete("batched") and not checkpoint.is_complete("profiled")
    checkpoint.mark_complete("profiled")
    data = yaml.safe_load(checkpoint_path.read_text())
    assert data["schedule_creation_scheduled"] is True
    assert data["profiled"] is True


@pytest.mark.parametrize("content", ["batched: [unclosed", "- just\n- a list\n"])
def test_corrupt_checkpoint_is_a_state_error(checkpoint_path: Path, content: str) -> None:
    checkpoint_path.parent.mkdir(parents=True)
    checkpoint_path.write_text(content)
    with pytest.raises(StateError, match=str(checkpoint_path)):
        Checkpoint.load(checkpoint_path)


def test_fingerprint_fields(input_file: Path) -> None:
    fp = input_fingerprint(input_file, batch_size=100, input_format="csv", extra={"k": 1})
    stat = input_file.stat()
    assert fp["path"] == str(input_file.resolve())
    assert fp["size"] == stat.st_size and fp["mtime_ns"] == stat.st_mtime_ns
    assert len(fp["sample_sha256"]) == 64
    assert fp["batch_size"] == 100 and fp["input_format"] == "csv" and fp["extra"] == {"k": 1}


def test_fingerprint_survives_yaml_and_touch_and_copy(
    checkpoint_path: Path, input_file: Path, tmp_path: Path
) -> None:
    fp = input_fingerprint(input_file, batch_size=100, input_format=None)
    Checkpoint.load(checkpoint_path).record_fingerprint(fp)
    stored = Checkpoint.load(checkpoint_path)
    assert stored.fingerprint == fp
    os.utime(input_file, ns=(1, 1))
    copy = tmp_path / "copy.csv"
    copy.write_bytes(input_file.read_bytes())
    stored.check_fingerprint(input_fingerprint(input_file, batch_size=100, input_format=None))
    stored.check_fingerprint(input_fingerprint(copy, batch_size=100, input_format=None))


def test_fresh_checkpoint_accepts_any_fingerprint(checkpoint_path: Path, input_file: Path) -> None:
    fp = input_fingerprint(input_file, batch_size=1, input_format=None)
    Checkpoint.load(checkpoint_path).check_fingerprint(fp)


def test_a_plan_named_by_an_older_server_key_rule_is_refused(
    checkpoint_path: Path, input_file: Path
) -> None:
    fp = input_fingerprint(input_file, batch_size=1, input_format=None)
    assert fp["host_key_version"] == HOST_KEY_VERSION
    for old_rule, described in ((1, "rule 1"), (None, "an older rule")):
        old = {k: v for k, v in fp.items() if k != "host_key_version"}
        if old_rule is not None:
            old["host_key_version"] = old_rule
        checkpoint = Checkpoint.load(checkpoint_path)
        checkpoint.record_fingerprint(old)
        message = refusal(checkpoint, fp)
        assert f"server names changed: the plan named its servers by {described}" in message
        assert "input file" not in message


def test_a_complete_plan_without_a_fingerprint_is_refused(
    checkpoint_path: Path, input_file: Path
) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.mark_complete("batched")
    fp = input_fingerprint(input_file, batch_size=1, input_format=None)
    assert "recorded no fingerprint" in refusal(Checkpoint.load(checkpoint_path), fp)


def refusal(checkpoint: Checkpoint, fp: dict[str, object]) -> str:
    with pytest.raises(StateError) as caught:
        checkpoint.check_fingerprint(fp, config="run.yaml")
    message = str(caught.value)
    assert "distdl reset run.yaml --stage batched" in message
    return message


def test_changed_batch_size_is_refused_by_name(checkpoint_path: Path, input_file: Path) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.record_fingerprint(
        input_fingerprint(input_file, batch_size=10000, input_format=None)
    )
    message = refusal(checkpoint, input_fingerprint(input_file, batch_size=500, input_format=None))
    assert "batch_size changed from 10000 to 500" in message
    assert "input file" not in message


def test_changed_format_and_extra_are_named(checkpoint_path: Path, input_file: Path) -> None:
    old = input_fingerprint(input_file, batch_size=1, input_format=None, extra={"a": 1, "b": 2})
    new = input_fingerprint(input_file, batch_size=1, input_format="parquet", extra={"a": 3})
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.record_fingerprint(old)
    message = refusal(checkpoint, new)
    assert "input_format changed from (unset) to 'parquet'" in message
    assert "a changed from 1 to 3" in message
    assert "b changed from 2 to (unset)" in message


def test_appended_input_is_refused_with_sizes(checkpoint_path: Path, input_file: Path) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.record_fingerprint(input_fingerprint(input_file, batch_size=1, input_format=None))
    with open(input_file, "ab") as handle:
        handle.write(b"y" * 2_000_000)
    message = refusal(checkpoint, input_fingerprint(input_file, batch_size=1, input_format=None))
    assert "input file changed (size 3.1 MB → 5.1 MB)" in message


def test_same_size_rewrite_of_sampled_bytes_is_refused(
    checkpoint_path: Path, input_file: Path
) -> None:
    checkpoint = Checkpoint.load(checkpoint_path)
    checkpoint.record_fingerprint(input_fingerprint(input_file, batch_size=1, input_format=None))
    data = bytearray(input_file.read_bytes())
    data[-10] = ord("z")  # inside the last MiB
    input_file.write_bytes(bytes(data))
    message = refusal(checkpoint, input_fingerprint(input_file, batch_size=1, input_format=None))
    assert "same size" in message


def test_tiny_size_change_shows_exact_bytes() -> None:
    old = {"size": 1_234_567_890, "sample_sha256": "a"}
    new = {"size": 1_234_567_891, "sample_sha256": "b"}
    changes = fingerprint_changes(old, new)
    assert changes == ["input file changed (size 1,234,567,890 bytes → 1,234,567,891 bytes)"]


def test_folder_input_is_fingerprinted_over_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"a" * 10)
    (folder / ".hidden").write_bytes(b"ignored")
    first = input_fingerprint(folder, batch_size=1, input_format="parquet")
    assert first["size"] == 10
    (folder / ".hidden").write_bytes(b"still ignored")
    assert input_fingerprint(folder, batch_size=1, input_format="parquet") == first
    (folder / "part-1.parquet").write_bytes(b"b")
    changed = input_fingerprint(folder, batch_size=1, input_format="parquet")
    assert fingerprint_changes(first, changed) == ["input file changed (size 10 B → 11 B)"]


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (999, "999 B"), (1_200_000_000, "1.2 GB"), (1_300_000_000_000, "1.3 TB")],
)
def test_format_size(size: int, shown: str) -> None:
    assert format_size(size) == shown


def test_missing_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the input"):
        input_fingerprint(tmp_path / "absent.csv", batch_size=1, input_format=None)


def test_extra_tuples_compare_equal_after_a_yaml_round_trip(
    checkpoint_path: Path, input_file: Path
) -> None:
    extra = {"columns": ("uuid", "identifier"), "where": Path("/x")}
    Checkpoint.load(checkpoint_path).record_fingerprint(
        input_fingerprint(input_file, batch_size=1, input_format=None, extra=extra)
    )
    stored = Checkpoint.load(checkpoint_path)
    stored.check_fingerprint(
        input_fingerprint(input_file, batch_size=1, input_format=None, extra=extra)
    )


def test_the_plan_is_flushed_to_disk_before_batched_is_marked_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl import stages
    from distdl.config import parse_config
    from distdl.layout import Layout

    (tmp_path / "urls.csv").write_text(
        "uuid,identifier,source_id\nu1,http://a.org/1.jpg,1\nu2,http://b.org/2.jpg,2\n"
    )
    config = parse_config({"path_to_input": "urls.csv", "path_to_output": "out"}, tmp_path)
    layout = Layout.from_config(config)
    events: list[str] = []
    real_fsync_tree = stages.fsync_tree

    def flushed(folder: Path) -> int:
        count = real_fsync_tree(folder)
        events.append(f"fsync {Path(folder).name} ({count})")
        return count

    real_mark = Checkpoint.mark_complete

    def marked(self: Checkpoint, stage: str, **details: object) -> None:
        events.append(f"mark {stage}")
        real_mark(self, stage, **details)

    monkeypatch.setattr(stages, "fsync_tree", flushed)
    monkeypatch.setattr(Checkpoint, "mark_complete", marked)
    checkpoint = Checkpoint.load(layout.checkpoint_file)
    stages.ensure_batched(config, layout, checkpoint, None)
    assert events[-1] == "mark batched"
    assert events[-2].startswith(f"fsync {layout.urls.name} (")
    assert int(events[-2].split("(")[1].rstrip(")")) >= 7  # folder, servers, 2 x (dir, dir, file)


def test_marking_a_stage_done_flushes_the_file_and_its_folder(
    checkpoint_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.io import atomic

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    Checkpoint.load(checkpoint_path).mark_complete("batched")
    assert len(synced) == 2
    assert ".inner_checkpoint.yaml.tmp-" in synced[0]  # the content, before the rename
    assert synced[1] == str(checkpoint_path.parent)  # the rename itself
