"""The environment variables the original distributed-downloader exported for its job
scripts, so users' own scripts keep working: ``distdl env CONFIG`` prints them, every rank
of a run has them, and a submitted job exports them before its pre/post scripts and srun.

Names as the original set them (``main.py``/``tools/main.py``):

* ``CONFIG_PATH`` (the config file), ``PATH_TO_INPUT``, ``PATH_TO_OUTPUT``;
* ``OUTPUT_<KEY>`` for every ``output_structure`` key (the full path), plus
  ``OUTPUT_PATH_TO_OUTPUT_FOLDER`` (the output folder: the original's key for it);
  with a tool, ``OUTPUT_TOOLS_LOGS_FOLDER`` (its version folder's ``logs``);
* ``DOWNLOADER_<KEY>`` for every ``downloader_parameters`` key, ``TOOLS_<KEY>`` for every
  ``tools_parameters`` key, their values as the original wrote them (Python's ``str``:
  ``True``; a whole number without ``.0``; unset is empty; a mapping is JSON);
* ``ACCOUNT``: ``slurm.account``, when set.

``DOWNLOADER_PROXY`` (distdl's own key) is the proxy URL without its user and password:
those stay in the config file, out of job scripts and ``distdl env``'s output.

The original's ``DISTRIBUTED_DOWNLOADER_PATH`` (its source folder, for its scripts) has no
counterpart and is not set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path

from distdl.config import Config
from distdl.core.proxies import without_credentials


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def original_environment(
    config: Config, config_path: str | os.PathLike[str], tool: str | None = None
) -> dict[str, str]:
    """The variables, in a stable order."""
    root = Path(config.path_to_output)
    env = {
        "CONFIG_PATH": str(Path(config_path).resolve()),
        "PATH_TO_INPUT": str(config.path_to_input),
        "PATH_TO_OUTPUT": str(root),
        "OUTPUT_PATH_TO_OUTPUT_FOLDER": str(root),
    }
    for key, relative in config.output_structure.model_dump().items():
        env[f"OUTPUT_{key.upper()}"] = str(root / relative)
    if tool is not None:
        tools = root / config.output_structure.tools_folder / tool
        env["OUTPUT_TOOLS_LOGS_FOLDER"] = str(tools / "logs")
    for prefix, section in (
        ("DOWNLOADER_", config.downloader_parameters),
        ("TOOLS_", config.tools_parameters),
    ):
        for key, value in section.model_dump(mode="json").items():
            env[f"{prefix}{key.upper()}"] = _text(value)
    if env.get("DOWNLOADER_PROXY"):
        env["DOWNLOADER_PROXY"] = without_credentials(env["DOWNLOADER_PROXY"])
    if config.slurm.account:
        env["ACCOUNT"] = config.slurm.account
    return env


@contextlib.contextmanager
def exported(env: Mapping[str, str]) -> Iterator[None]:
    """These variables in ``os.environ`` for the block (the ranks it launches inherit
    them); the caller's environment as it was afterwards (a notebook calling
    ``download_images`` twice, with two configs, must not see the first one's)."""
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def export_lines(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines, shell-quoted."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
