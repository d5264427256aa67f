"""``distdl reset``: invalidate a stage and what depends on it, all or nothing.

Every change a reset would make is planned and checked first — each path it deletes or
moves must resolve strictly inside the output folder, no target name may be taken — and
only then is anything touched. A refused reset therefore leaves the folder exactly as it
was. Then the checkpoint marks the stage not done *before* the first file moves, so a reset
cut short (a crash, an I/O error) can never leave a stage marked complete whose files are
gone; running the reset again finishes it.

Downloaded partitions are moved aside into ``<images_folder>.previous-<time>`` (inside the
output folder) unless ``delete_images``: a replan or re-download must not mix old rows with
new ones, and a user's images are never deleted without being asked. Planning rejects stay
in place unless the plan itself is reset.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from distdl.errors import StateError
from distdl.io.atomic import fsync_dir, safe_rmtree
from distdl.io.checkpoint import Checkpoint
from distdl.layout import Layout


@dataclass(frozen=True)
class ResetStep:
    done: str  # what the user is told once it ran
    run: Callable[[], object]


def reset_output(layout: Layout, stage: str, *, delete_images: bool) -> str:
    """Invalidate ``stage`` and every later one; one line per change made."""
    steps = plan_reset(layout, stage, delete_images=delete_images)  # may refuse: nothing moved
    Checkpoint.load(layout.checkpoint_file).invalidate_from(stage)
    for step in steps:
        step.run()
    return "\n".join(step.done for step in steps)


def plan_reset(layout: Layout, stage: str, *, delete_images: bool) -> list[ResetStep]:
    """The changes a reset of ``stage`` makes, each already checked; StateError if any is not
    allowed. Touches nothing."""
    steps: list[ResetStep] = []
    root = layout.root
    if stage == "batched" and os.path.lexists(layout.urls):
        _require_inside(layout.urls, root, "delete")
        steps.append(
            ResetStep(f"removed the plan {layout.urls}", lambda: safe_rmtree(layout.urls, root))
        )
    if stage in ("batched", "profiled") and os.path.lexists(layout.profiles_table):
        # Renaming moves the entry, even a symlink to a hand-made table, never its target.
        _require_inside(layout.profiles_table.parent, root, "move", allow_root=True)
        aside = _free_aside_name(layout.profiles_table)
        steps.append(
            ResetStep(
                f"moved the profiles table to {aside}",
                lambda: _rename(layout.profiles_table, aside),
            )
        )
    if os.path.lexists(layout.images):
        steps += _download_steps(layout, keep_rejected=stage != "batched", delete=delete_images)
    return steps


def _download_steps(layout: Layout, *, keep_rejected: bool, delete: bool) -> list[ResetStep]:
    images, root = layout.images, layout.root
    _require_inside(images, root, "delete" if delete else "move")
    if os.path.ismount(images):
        raise StateError(f"refusing to reset: {images} is a mount point; empty it yourself")
    rejects = images / layout.rejected_dir.parent.name  # the planning rejects' server folder
    kept = keep_rejected and os.path.lexists(rejects)
    if delete and not kept:
        return [ResetStep(f"deleted {images}", lambda: safe_rmtree(images, root))]
    if delete:
        doomed = [images / name for name in sorted(os.listdir(images)) if name != rejects.name]
        for path in doomed:
            _require_inside(path, root, "delete")

        def delete_partitions() -> None:
            for path in doomed:
                safe_rmtree(path, root)

        return [ResetStep(f"deleted the downloaded partitions in {images}", delete_partitions)]
    aside = _free_aside_name(images)
    steps = [
        ResetStep(
            f"moved downloaded partitions to {aside} (use --delete-images to delete)",
            lambda: _rename(images, aside),
        )
    ]
    if kept:
        steps.append(
            ResetStep("kept the planning rejects", lambda: _move_back(aside, images, rejects.name))
        )
    return steps


def _move_back(aside: Path, images: Path, name: str) -> None:
    """Put the planning rejects' server folder back from ``aside`` into a fresh ``images``."""
    images.mkdir()
    _rename(aside / name, images / name)


def _require_inside(path: Path, root: Path, verb: str, *, allow_root: bool = False) -> None:
    real_root = Path(root).resolve()
    target = Path(path).resolve()
    inside = real_root in target.parents or (allow_root and target == real_root)
    if not inside:
        raise StateError(
            f"refusing to reset: it would {verb} {path}, which resolves to {target}, not "
            f"inside the output folder {real_root}. Nothing was changed; move it back inside "
            "(or remove the link) first."
        )


def _free_aside_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    candidate = path.with_name(f"{path.name}.previous-{stamp}")
    serial = 1
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.name}.previous-{stamp}-{serial}")
        serial += 1
    return candidate


def _rename(source: Path, target: Path) -> None:
    os.rename(source, target)
    fsync_dir(target.parent)
