from __future__ import annotations

import os
from pathlib import Path

import pytest

from distdl.errors import StateError
from distdl.io import atomic
from distdl.io.atomic import (
    atomic_write_bytes,
    atomic_write_text,
    is_temp_name,
    remove_stale_temps,
    safe_rmtree,
    temp_path_for,
)


def test_temp_path_is_hidden_sibling_never_matching_parquet_globs(tmp_path: Path) -> None:
    final = tmp_path / "successes.parquet"
    temp = temp_path_for(final)
    assert temp.parent == tmp_path
    assert temp.name.startswith(".successes.parquet.tmp-")
    assert not temp.match("*.parquet")
    assert is_temp_name(temp.name)
    assert temp != temp_path_for(final)


@pytest.mark.parametrize("name", ["successes.parquet", ".hidden", "x.tmp-12-abc", ".x.tmp-1-zz"])
def test_ordinary_names_are_not_temp_names(name: str) -> None:
    assert not is_temp_name(name)


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_failure_mid_write_keeps_old_file_and_no_visible_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def crash(fd: int) -> None:
        raise OSError(5, "disk on fire")

    monkeypatch.setattr(atomic.os, "fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(target, "new content that never lands")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_failure_at_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError("no")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_remove_stale_temps_removes_only_our_temps_recursively(tmp_path: Path) -> None:
    partition = tmp_path / "server_name=a" / "partition_id=0"
    partition.mkdir(parents=True)
    keep = [partition / "successes.parquet", partition / "completed", tmp_path / ".keep"]
    for path in keep:
        path.write_bytes(b"x")
    stale = [temp_path_for(partition / "errors.parquet"), temp_path_for(tmp_path / "ckpt.yaml")]
    for path in stale:
        path.write_bytes(b"partial")
    assert remove_stale_temps(tmp_path) == 2
    assert all(p.exists() for p in keep)
    assert not any(p.exists() for p in stale)
    assert remove_stale_temps(tmp_path / "missing") == 0


def test_remove_stale_temps_does_not_enter_symlinked_folders(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    foreign_temp = temp_path_for(outside / "file")
    foreign_temp.write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temps(root) == 0
    assert foreign_temp.exists()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "out"
    (root / "images" / "server_name=a").mkdir(parents=True)
    (root / "images" / "server_name=a" / "file").write_text("x")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data").write_text("keep me")
    return root, outside


def test_safe_rmtree_deletes_inside_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert safe_rmtree(root / "images", root) is True
    assert not (root / "images").exists()
    assert root.is_dir()
    assert safe_rmtree(root / "images", root) is False


def test_safe_rmtree_deletes_a_single_file(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    file = root / "images" / "server_name=a" / "file"
    assert safe_rmtree(file, root) is True
    assert not file.exists()


@pytest.mark.parametrize("relative", ["", ".", "images/..", "..", "../precious", "images/../.."])
def test_safe_rmtree_refuses_root_and_dot_dot(tree: tuple[Path, Path], relative: str) -> None:
    root, outside = tree
    with pytest.raises(StateError, match="refusing to delete"):
        safe_rmtree(root / relative, root)
    assert (outside / "data").exists()
    assert (root / "images" / "server_name=a" / "file").exists()


def test_safe_rmtree_refuses_symlink_out_of_root(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    link = root / "images" / "escape"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(StateError):
        safe_rmtree(link, root)
    with pytest.raises(StateError):
        safe_rmtree(link / "data", root)
    assert (outside / "data").read_text() == "keep me"


def test_safe_rmtree_removes_inner_symlinks_without_following(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "images" / "server_name=a" / "escape").symlink_to(outside, target_is_directory=True)
    safe_rmtree(root / "images", root)
    assert not (root / "images").exists()
    assert (outside / "data").read_text() == "keep me"


def test_safe_rmtree_accepts_root_given_through_a_symlink(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    alias = root.parent / "alias"
    alias.symlink_to(root, target_is_directory=True)
    safe_rmtree(root / "images", alias)
    assert not (root / "images").exists()
    with pytest.raises(StateError):
        safe_rmtree(alias, root)
    assert os.path.isdir(root)


def test_fsync_tree_flushes_every_file_and_folder_but_not_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.io.atomic import fsync_tree

    (tmp_path / "s=a" / "p=0").mkdir(parents=True)
    (tmp_path / "s=a" / "p=0" / "urls.parquet").write_bytes(b"x")
    (tmp_path / "servers.parquet").write_bytes(b"y")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"not ours")
    (tmp_path / "link").symlink_to(outside)
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    assert fsync_tree(tmp_path) == 5
    expected = {
        str(tmp_path),
        str(tmp_path / "s=a"),
        str(tmp_path / "s=a" / "p=0"),
        str(tmp_path / "s=a" / "p=0" / "urls.parquet"),
        str(tmp_path / "servers.parquet"),
    }
    assert set(synced) == expected


def test_fsync_tree_reports_a_file_that_cannot_be_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distdl.io.atomic import fsync_tree

    (tmp_path / "urls.parquet").write_bytes(b"x")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output error"):
        fsync_tree(tmp_path)
