"""Input presets: how a known kind of input maps onto distdl's columns, as shipped YAML data.

A preset (``presets/<name>.yaml``) names, for each distdl column, the input columns to take
it from (the first one the input has), the columns carried into ``successes.parquet``, the
columns the filters look at, default filters, and the hosts whose identifiers carry a
query string that changes between snapshots. ``input_columns`` in the config overrides any
of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from distdl.errors import ConfigError

TARGET_COLUMNS = ("uuid", "identifier", "source_id", "license", "source", "title")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    recognised_by: tuple[str, ...]
    columns: dict[str, list[str]]  # distdl column -> candidate input columns
    keep: tuple[str, ...]
    filter_columns: dict[str, str]
    filters: dict[str, list[str]]
    query_free_hosts: tuple[str, ...]
    identifier_template: str | None = None


def preset_names() -> list[str]:
    folder = resources.files("distdl.inputs").joinpath("presets")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


@cache
def load_preset(name: str) -> Preset:
    if name not in preset_names():
        raise ConfigError(
            f"input_preset: unknown preset {name!r}; known: {', '.join(preset_names())}"
        )
    text = resources.files("distdl.inputs").joinpath(f"presets/{name}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    columns = {target: list(data["columns"].get(target) or []) for target in TARGET_COLUMNS}
    return Preset(
        name=name,
        description=data["description"],
        recognised_by=tuple(data.get("recognised_by") or ()),
        columns=columns,
        keep=tuple(data.get("keep") or ()),
        filter_columns=dict(data.get("filter_columns") or {}),
        filters={k: list(v) for k, v in (data.get("filters") or {}).items()},
        query_free_hosts=tuple(data.get("query_free_hosts") or ()),
        identifier_template=data.get("identifier_template"),
    )


def recognise(names: tuple[str, ...]) -> Preset:
    """The preset whose recognising columns the header has all of; else the generic one."""
    lowered = {name.lower() for name in names}
    for name in preset_names():
        preset = load_preset(name)
        if preset.recognised_by and all(c.lower() in lowered for c in preset.recognised_by):
            return preset
    return load_preset("csv")
