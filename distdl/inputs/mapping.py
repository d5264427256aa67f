"""Which input column feeds each distdl column: the preset's choice, overridden by the config.

The resolved mapping turns a chunk of input columns into distdl's columns (``uuid`` null
when the input has none: it is derived later), the carried ``keep`` columns, and helper
columns the filters and the occurrence join read, prefixed ``__``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from distdl.config import InputColumns
from distdl.errors import InputError
from distdl.inputs.columns import find_column, first_present
from distdl.inputs.presets import TARGET_COLUMNS, Preset
from distdl.inputs.sources import TableSource

REQUIRED = ("identifier", "source_id")
HELPER_PREFIX = "__"
KEY_COLUMN = "__key"  # the core id, for the occurrence join


@dataclass(frozen=True)
class RowMapping:
    targets: dict[str, str | None]  # distdl column -> input column (None: absent)
    keep: tuple[tuple[str, str], ...]  # (output name, input column)
    helpers: dict[str, str]  # filter column role -> input column
    key: str | None  # input column of the core id
    identifier_template: str | None
    template_columns: tuple[str, ...]

    @property
    def derives_uuid(self) -> bool:
        return self.targets["uuid"] is None

    def input_columns(self) -> list[str]:
        wanted = [c for c in self.targets.values() if c is not None]
        wanted += (
            [c for _, c in self.keep] + list(self.helpers.values()) + list(self.template_columns)
        )
        if self.key is not None:
            wanted.append(self.key)
        return list(dict.fromkeys(wanted))

    def apply(self, table: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        null = pl.lit(None, dtype=pl.String)
        columns = [
            (pl.col(source) if source is not None else null).alias(target)
            for target, source in self.targets.items()
        ]
        if self.identifier_template is not None:
            columns[TARGET_COLUMNS.index("identifier")] = _template(self.identifier_template)
        columns += [pl.col(source).alias(name) for name, source in self.keep]
        columns += [
            pl.col(source).alias(HELPER_PREFIX + role) for role, source in self.helpers.items()
        ]
        if self.key is not None:
            columns.append(pl.col(self.key).alias(KEY_COLUMN))
        return frame.select(columns)


def _template(template: str) -> pl.Expr:
    """``.../{photo_id}/large.{extension}`` as a column expression."""
    parts: list[pl.Expr] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        parts += [pl.lit(before), pl.col(name)]
    parts.append(pl.lit(rest))
    return pl.concat_str(parts).alias("identifier")


def resolve_mapping(source: TableSource, preset: Preset, overrides: InputColumns) -> RowMapping:
    where = source.where
    names = source.names
    targets: dict[str, str | None] = {}
    for target in TARGET_COLUMNS:
        chosen = getattr(overrides, target)
        if chosen is not None:
            found = find_column(names, chosen, where)
            if found is None:
                raise InputError(
                    f"{where}: input_columns.{target} names {chosen!r}, which the input does "
                    f"not have; columns found: {', '.join(names)}"
                )
            targets[target] = found
        else:
            targets[target] = first_present(names, preset.columns[target], where)
    template_columns: tuple[str, ...] = ()
    template = preset.identifier_template if overrides.identifier is None else None
    if template is not None:
        template_columns = _template_columns(template, names, where)
    _require(targets, template is not None, source, preset)
    keep = _keep(overrides, preset, names, where, targets)
    helpers = {
        role: found
        for role, column in preset.filter_columns.items()
        if (found := find_column(names, column, where)) is not None
    }
    return RowMapping(targets, keep, helpers, source.key, template, template_columns)


def _template_columns(template: str, names: tuple[str, ...], where: str) -> tuple[str, ...]:
    wanted = [part.partition("}")[0] for part in template.split("{")[1:]]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise InputError(f"{where}: the identifier is built from {', '.join(missing)}: missing")
    return tuple(wanted)


def _require(
    targets: dict[str, str | None], templated: bool, source: TableSource, preset: Preset
) -> None:
    missing = [t for t in REQUIRED if targets[t] is None and not (t == "identifier" and templated)]
    if missing:
        raise InputError(
            f"{source.where}: missing required column(s) {', '.join(missing)}; columns found: "
            f"{', '.join(source.names) if source.names else '(none)'} (input_preset "
            f"{preset.name!r}; name the columns in input_columns)"
        )


def _keep(
    overrides: InputColumns,
    preset: Preset,
    names: tuple[str, ...],
    where: str,
    targets: dict[str, str | None],
) -> tuple[tuple[str, str], ...]:
    """Carried columns: the config's list must all exist; the preset's are taken if present."""
    explicit = overrides.keep is not None
    wanted = overrides.keep if overrides.keep is not None else list(preset.keep)
    keep: list[tuple[str, str]] = []
    for name in wanted:
        found = find_column(names, name, where)
        if found is None:
            if explicit:
                raise InputError(f"{where}: input_columns.keep names {name!r}, not in the input")
            continue
        if found in TARGET_COLUMNS or name in TARGET_COLUMNS:
            continue  # already a distdl column
        keep.append((found, found))
    return tuple(keep)
