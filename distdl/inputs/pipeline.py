"""The input layer's composition: from a file as users have it to distdl's planned columns.

Per chunk: read the mapped columns -> licence ids -> row filters -> derived uuids and their
repeats -> rows already in ``previous_output`` -> (occurrence join, then the filters on its
fields) -> sampling. Every row set aside is counted by reason in :class:`Tally`. Chunks come
out as Arrow tables with distdl's input columns, ``license_id``, ``is_license_full`` and the
carried columns (``keep`` and occurrence fields), ready for the planner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from distdl.config import Config
from distdl.errors import InputError
from distdl.inputs.filters import CORE_ROLES, Filter, apply_filters, build_filters, describe_filters
from distdl.inputs.ids import identifier_keys, image_uuids
from distdl.inputs.join import core_fields_available, join_occurrences
from distdl.inputs.licences import full_licence, licence_ids
from distdl.inputs.mapping import HELPER_PREFIX, RowMapping, resolve_mapping
from distdl.inputs.presets import TARGET_COLUMNS, Preset, load_preset, recognise
from distdl.inputs.previous import PreviousOutput
from distdl.inputs.repeats import RepeatDropper
from distdl.inputs.sampling import chosen, thresholds
from distdl.inputs.sources import TableSource, archive_table, open_source
from distdl.inputs.tally import Tally
from distdl.schema import SUCCESSES

LICENCE_COLUMNS = ("license_id", "is_license_full")
_RESERVED = set(SUCCESSES.names) | set(LICENCE_COLUMNS) | {"server_name"}


@dataclass
class PreparedInput:
    """An input read through a preset; :meth:`chunks` may be called once per planning pass."""

    path: Path
    source: TableSource
    preset: Preset
    mapping: RowMapping
    config: Config
    work_folder: Path | None = None
    repeated_hashes: pl.Series | None = None
    tally: Tally = field(default_factory=Tally)
    licences: Counter[str] = field(default_factory=Counter)

    @property
    def derives_uuid(self) -> bool:
        return self.mapping.derives_uuid

    @property
    def filters_applied(self) -> dict[str, object]:
        return describe_filters(self.config.input_filters, self.preset.filters)

    def chunks(self) -> Iterator[pa.Table]:
        self.tally, self.licences = Tally(), Counter()
        rows, core_rules = build_filters(self.config.input_filters, self.preset.filters)
        frames = self._image_rows(rows)
        core_fields = self._core_fields(core_rules)
        if core_fields:
            frames = self._joined(frames, core_fields, core_rules)
        sampling = self.config.input_sampling
        if sampling is not None:
            limits = thresholds(self._planned_rows(rules=rows, core_rules=core_rules), sampling)
            frames = self._sampled(frames, limits)
        for frame in frames:
            for licence, rows_with_it in (
                frame["license_id"].fill_null("unknown").value_counts().iter_rows()
            ):
                self.licences[licence] += rows_with_it
            yield frame.drop([c for c in frame.columns if c.startswith(HELPER_PREFIX)]).to_arrow()

    def _planned_rows(
        self, rules: list[Filter], core_rules: list[Filter]
    ) -> Iterator[pl.DataFrame]:
        """A sampling pre-pass: the rows the planning pass would see before sampling."""
        frames = self._image_rows(rules)
        core_fields = self._core_fields(core_rules)
        yield from self._joined(frames, core_fields, core_rules) if core_fields else frames
        self.tally = Tally()

    def _image_rows(self, rules: list[Filter]) -> Iterator[pl.DataFrame]:
        repeats = RepeatDropper(self.repeated_hashes)
        previous = None
        if self.config.previous_output is not None:
            previous = PreviousOutput(self.config.previous_output)
        for table in self.source.read(self.mapping.input_columns()):
            self.tally.rows_read += table.num_rows
            frame = self.mapping.apply(table)
            ids = licence_ids(frame["license"])
            frame = frame.with_columns(ids, full_licence(ids, frame["source"]))
            frame = apply_filters(frame, rules, self.tally.add)
            if self.derives_uuid:
                frame = self._with_uuids(frame)
                frame, dropped = repeats.drop(frame)
                self.tally.add("duplicate", dropped)
            if previous is not None:
                frame, dropped = previous.drop(frame)
                self.tally.add("previous_output", dropped)
            yield frame

    def _with_uuids(self, frame: pl.DataFrame) -> pl.DataFrame:
        keys = identifier_keys(frame["identifier"].str.strip_chars(), self.preset.query_free_hosts)
        uuids = image_uuids(frame["source_id"], keys)
        no_identifier = (keys.str.len_bytes() == 0).fill_null(True)
        # Without an identifier there is no image: the planner makes it an error row.
        return frame.with_columns(uuid=pl.when(no_identifier).then(None).otherwise(uuids))

    def _core_fields(self, core_rules: list[Filter]) -> list[str]:
        fields = list(self.config.input_occurrence_fields)
        fields += [CORE_ROLES[role] for role in _roles(core_rules)]
        label = self.config.input_sampling.label if self.config.input_sampling else None
        if label is not None and label not in self.image_columns():
            fields.append(label)
        return list(dict.fromkeys(fields))

    def image_columns(self) -> set[str]:
        return {*TARGET_COLUMNS, *(name for name, _ in self.mapping.keep), *LICENCE_COLUMNS}

    def _joined(
        self, frames: Iterator[pl.DataFrame], fields: list[str], core_rules: list[Filter]
    ) -> Iterator[pl.DataFrame]:
        archive = self.source.archive
        if archive is None:
            raise InputError(
                f"{self.path}: occurrence fields ({', '.join(fields)}) need a Darwin Core "
                "Archive (its occurrence core); this input is a single table"
            )
        core = archive_table(archive, archive.meta.core)
        core_fields_available(core, fields)
        assert self.work_folder is not None, "the planner gives a work folder"
        wanted = set(self.config.input_occurrence_fields)
        media = archive.meta.multimedia()
        assert media is not None
        text_bytes = max(archive.size(archive.meta.core.location), archive.size(media.location))
        for frame in join_occurrences(frames, core, fields, self.work_folder, text_bytes):
            helpers = [pl.col(CORE_ROLES[r]).alias(HELPER_PREFIX + r) for r in _roles(core_rules)]
            frame = apply_filters(frame.with_columns(helpers), core_rules, self.tally.add)
            yield frame.drop([f for f in fields if f not in wanted and f in frame.columns])

    def _sampled(
        self, frames: Iterator[pl.DataFrame], limits: pl.DataFrame
    ) -> Iterator[pl.DataFrame]:
        sampling = self.config.input_sampling
        assert sampling is not None
        for frame in frames:
            keep = chosen(frame, sampling, limits)
            self.tally.add("sampling", frame.height - int(keep.sum()))
            yield frame.filter(keep)


def _roles(rules: list[Filter]) -> list[str]:
    return list(dict.fromkeys(rule.reason for rule in rules))


def prepare_input(config: Config, input_format: str | None = None) -> PreparedInput:
    """Open ``config.path_to_input`` with its preset; raise InputError on what cannot work."""
    path = Path(config.path_to_input)
    source = open_source(path, input_format)
    if config.input_preset is not None:
        preset = load_preset(config.input_preset)
    elif source.kind == "dwca":
        preset = load_preset("gbif")
    else:
        preset = recognise(source.names)
    mapping = resolve_mapping(source, preset, config.input_columns)
    clashing = sorted(_RESERVED & {name for name, _ in mapping.keep})
    clashing += sorted(_RESERVED & set(config.input_occurrence_fields))
    if clashing:
        raise InputError(
            f"{path}: carried column(s) {', '.join(clashing)} would overwrite distdl's own "
            "columns; leave them out of input_columns.keep / input_occurrence_fields"
        )
    prepared = PreparedInput(path, source, preset, mapping, config)
    _check_sampling_label(prepared)
    return prepared


def _check_sampling_label(prepared: PreparedInput) -> None:
    sampling = prepared.config.input_sampling
    if sampling is None or sampling.label is None:
        return
    known = prepared.image_columns() | set(prepared.config.input_occurrence_fields)
    archive = prepared.source.archive
    if archive is not None:
        known |= set(archive_table(archive, archive.meta.core).names)
    if sampling.label not in known:
        raise InputError(
            f"input_sampling.label: {sampling.label!r} is not a column of the planned rows "
            f"(distdl's, input_columns.keep, or occurrence fields): {', '.join(sorted(known))}"
        )
