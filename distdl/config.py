"""Pydantic models of the YAML config: the original tool's layout plus distdl's additions.

Every key but ``path_to_input`` and ``path_to_output`` has a default. Unknown keys are
rejected with a "did you mean" hint; :func:`load_config` turns every problem into one line
naming the key path and raises :class:`~distdl.errors.ConfigError` (exit code 2).
Relative paths are taken relative to the folder holding the config file; ``~`` and
``$VARS`` are expanded.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from distdl.core.byte_size import format_byte_size, parse_byte_size
from distdl.core.liveness import DEFAULT_SILENCE_LIMIT, MIN_SILENCE_LIMIT
from distdl.core.proxies import ProxyChoice, choose_proxies, normalize_proxy_url
from distdl.errors import ConfigError

LoggerLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ImageFormat = Literal["jpeg", "png", "raw"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Entries of path_to_output that distdl names itself (see distdl.layout and distdl.io.lock).
_RESERVED_ENTRIES = {"robots": "the robots.txt folder", "distdl.lock": "the output lock"}


class OutputStructure(_Strict):
    urls_folder: str = "servers_batched"
    logs_folder: str = "logs"
    images_folder: str = "downloaded_images"
    schedules_folder: str = "schedules"
    profiles_table: str = "servers_profiles.csv"
    ignored_table: str = "ignored_servers.csv"
    inner_checkpoint_file: str = "inner_checkpoint.yaml"
    tools_folder: str = "tools"

    @field_validator("*")
    @classmethod
    def _relative_inside_output(cls, value: str) -> str:
        path = Path(value)
        if not value.strip():
            raise ValueError("must not be empty")
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside path_to_output (no '..')")
        if path.parts in ((), (".",)):
            raise ValueError("must name an entry inside path_to_output, not the folder itself")
        return value

    @model_validator(mode="after")
    def _entries_apart(self) -> OutputStructure:
        """No entry may be or contain another: resetting one stage would delete another's."""
        entries = [(f"output_structure.{k}", v) for k, v in self.model_dump().items()]
        entries += [(description, name) for name, description in _RESERVED_ENTRIES.items()]
        problems = []
        for index, (key, value) in enumerate(entries):
            for other_key, other in entries[index + 1 :]:
                relation = _nesting(Path(value).parts, Path(other).parts)
                if relation:
                    problems.append(f"{key} ({value!r}) {relation} {other_key} ({other!r})")
        if problems:
            raise ValueError(
                "; ".join(problems) + ": every entry needs its own place, or resetting one "
                "stage deletes another's files"
            )
        return self


def _nesting(a: tuple[str, ...], b: tuple[str, ...]) -> str | None:
    """How two relative paths overlap: "is the same as", "is inside", "contains", or None."""
    if a == b:
        return "is the same as"
    if a[: len(b)] == b:
        return "is inside"
    if b[: len(a)] == a:
        return "contains"
    return None


class DownloaderParameters(_Strict):
    # --- the original tool's keys -------------------------------------------------------
    num_downloads: int = Field(
        1,
        ge=1,
        description="jobs in a `distdl submit` chain, each resuming where the last stopped; "
        "outside Slurm it does nothing",
    )
    max_nodes: int = Field(
        1, ge=1, description="nodes of each `distdl submit` job; outside Slurm it does nothing"
    )
    workers_per_node: int = Field(
        2,
        ge=1,
        description="MPI tasks per node of each `distdl submit` job (rank 0 of them "
        "coordinates); outside Slurm it does nothing",
    )
    cpu_per_worker: int = Field(
        2,
        ge=1,
        description="CPUs per worker rank, one image decoder process each; the rank's "
        "event loop keeps two busy (a submitted job's cpus-per-task)",
    )
    header: bool | dict[str, str] | str = True
    image_size: int = Field(720, gt=0, description="longer side after resizing (downscale only)")
    logger_level: LoggerLevel = "INFO"
    batch_size: int = Field(10000, ge=1, description="URLs per partition")
    rate_multiplier: float = Field(1.0, gt=0, le=1.0)
    default_rate_limit: float = Field(3.0, gt=0, description="req/s for a host with no profile")
    # --- distdl additions ---------------------------------------------------------------
    max_rate_limit: float = Field(100.0, gt=0, description="per-host ceiling, req/s")
    max_retries: int = Field(3, ge=0)
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(178_956_970, gt=0, description="decompression-bomb guard")
    memory_per_rank: int = Field(
        1024**3,
        gt=0,
        validate_default=True,  # a raised max_image_pixels must fit the default budget too
        description="bytes of image bodies and decoded pixels one rank may hold ('1GiB')",
    )
    image_timeout: float = Field(
        30.0, gt=0, description="seconds one image may take to decode and resize"
    )
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    total_timeout: float = Field(120.0, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    retry_after_cap: float = Field(300.0, gt=0, description="longest Retry-After honoured, s")
    image_format: ImageFormat = "jpeg"
    jpeg_quality: int = Field(95, ge=1, le=100)
    leases_per_worker: int = Field(
        32, ge=1, description="partitions of distinct hosts one worker rank holds at once"
    )
    max_in_flight_per_host: int = Field(
        16,
        ge=1,
        description="requests in flight per lease of a host (a host leased by several "
        "ranks has this many from each; its rate budget is shared, not multiplied)",
    )
    host_failure_threshold: int = Field(
        5, ge=1, description="connection failures in a row that open a host's breaker"
    )
    host_cooldown: float = Field(5.0, gt=0, description="first breaker cool-down, s (doubles)")
    host_max_probes: int = Field(4, ge=1, description="failed probes before a host is dead")
    contact: str | None = Field(None, description="e-mail or URL put in the User-Agent")
    respect_opt_out: bool = True
    rank_silence_limit: float = Field(
        DEFAULT_SILENCE_LIMIT,
        ge=MIN_SILENCE_LIMIT,
        description="seconds without a word from a rank before it counts as dead",
    )
    progress_interval: float = Field(
        60.0, gt=0, description="seconds between progress lines when not on a terminal"
    )
    ca_bundle: Path | None = Field(
        None, description="PEM file of CAs trusted besides the system's (a site CA)"
    )
    proxy: str | Literal[False] | None = Field(
        None,
        description="proxy URL for every request (NO_PROXY still applies); false: none, even "
        "if the environment names one; unset: HTTPS_PROXY/HTTP_PROXY/NO_PROXY decide",
    )

    @field_validator("memory_per_rank", mode="before")
    @classmethod
    def _byte_size(cls, value: object) -> object:
        return parse_byte_size(value) if isinstance(value, str) else value

    @field_validator("memory_per_rank")
    @classmethod
    def _holds_one_image(cls, value: int, info: ValidationInfo) -> int:
        """The budget must hold one image at the limits, or some images could never be
        processed: a body of max_image_bytes and an RGB image of max_image_pixels."""
        from distdl.image.footprint import least_peak_bytes  # Pillow, only when validating

        keys = ("max_image_bytes", "max_image_pixels", "image_size")
        if any(key not in info.data for key in keys):
            return value  # one of them is invalid and reported on its own
        body, pixels = info.data["max_image_bytes"], info.data["max_image_pixels"]
        decoded = least_peak_bytes(pixels, info.data["image_size"])
        if value < body + decoded:
            need = body + decoded
            raise ValueError(
                f"{format_byte_size(value)} cannot hold one image at the limits: "
                f"max_image_bytes ({format_byte_size(body)}) + max_image_pixels ({pixels} px, "
                f"about {format_byte_size(decoded)} decoded) = {format_byte_size(need)}; "
                f"set memory_per_rank to at least {need} bytes, or lower max_image_pixels "
                "or max_image_bytes"
            )
        return value

    @field_validator("proxy", mode="before")
    @classmethod
    def _proxy_url(cls, value: object) -> object:
        if value is True:
            raise ValueError("true is not a proxy: give its URL, or false for none")
        if isinstance(value, str):
            return normalize_proxy_url(value)
        return value

    @field_validator("header")
    @classmethod
    def _header_shape(cls, value: bool | dict[str, str] | str) -> bool | dict[str, str] | str:
        if isinstance(value, str) and ":" not in value:
            raise ValueError("a header string must look like 'Name: value'")
        if isinstance(value, dict):
            for name in value:
                if not name or any(c in name for c in " :\r\n"):
                    raise ValueError(f"invalid HTTP header name {name!r}")
        return value


class ToolsParameters(_Strict):
    num_workers: int = Field(1, ge=1)
    max_nodes: int = Field(1, ge=1)
    workers_per_node: int = Field(1, ge=1)
    cpu_per_worker: int = Field(1, ge=1)
    threshold_size: int = Field(224, gt=0)
    new_resize_size: int = Field(720, gt=0)


class SlurmSettings(_Strict):
    """How `distdl submit` runs jobs on a Slurm cluster: only what differs between sites.

    A key left unset falls back to the environment (see :mod:`distdl.cluster.site`).
    """

    account: str | None = Field(None, description="sbatch --account (else $SBATCH_ACCOUNT)")
    partition: str | None = Field(None, description="sbatch --partition (else $SBATCH_PARTITION)")
    time: str | None = Field(
        None, description="each job's time limit, as sbatch --time takes it (else the site's)"
    )
    modules: list[str] | None = Field(
        None, description="`module load`ed before srun (else $DISTDL_MODULES)"
    )
    virtualenv: Path | None = Field(
        None, description="activated before srun (else $VIRTUAL_ENV, else this Python)"
    )
    mpi: str | None = Field(
        None, description="srun --mpi plugin (else $DISTDL_SRUN_MPI, else pmi2)"
    )
    stop_margin: float = Field(
        120.0,
        ge=0,
        description="seconds before its time limit at which a download job stops gracefully",
    )
    sbatch_options: list[str] = Field(
        [], description="more sbatch options, as written after #SBATCH (--qos=long)"
    )
    pre_script: Path | None = Field(None, description="run by bash before srun, in the job")
    post_script: Path | None = Field(
        None, description="run by bash after srun, in the job, whatever srun's exit"
    )


InputPreset = Literal["gbif", "inaturalist", "csv"]


class InputColumns(_Strict):
    """Input column to read each distdl column from; overrides the preset's choice."""

    uuid: str | None = None
    identifier: str | None = None
    source_id: str | None = None
    license: str | None = None
    source: str | None = None
    title: str | None = None
    keep: list[str] | None = Field(None, description="columns carried into successes.parquet")


class InputFilters(_Strict):
    """Rows dropped while planning, counted by reason. None keeps the preset's default."""

    types: list[str] | None = None
    formats: list[str] | None = Field(None, description="MIME patterns, e.g. image/*")
    licenses: list[str] | None = Field(None, description="allowed license_id values")
    basis_of_record: list[str] | None = None
    include_publishers: list[str] | None = None
    exclude_publishers: list[str] | None = None
    include_datasets: list[str] | None = None
    exclude_datasets: list[str] | None = None
    include_hosts: list[str] | None = None
    exclude_hosts: list[str] | None = None


class InputSampling(_Strict):
    """A reproducible sample: rows chosen by a seeded hash of their uuid."""

    label: str | None = Field(None, description="column the caps and balance apply to")
    max_per_label: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1, description="rows kept in all")
    balanced: bool = Field(False, description="with rows: spread them evenly over labels")
    seed: int = 0

    @model_validator(mode="after")
    def _label_when_needed(self) -> InputSampling:
        if (self.max_per_label is not None or self.balanced) and not self.label:
            raise ValueError("max_per_label and balanced need a label column: set label")
        if self.balanced and self.rows is None:
            # Without a total there is nothing to spread: balanced alone would keep every row.
            raise ValueError("balanced spreads rows over labels: set rows, or drop balanced")
        return self


class Config(_Strict):
    path_to_input: Path
    path_to_output: Path
    output_structure: OutputStructure = OutputStructure()
    downloader_parameters: DownloaderParameters = DownloaderParameters()
    tools_parameters: ToolsParameters = ToolsParameters()
    input_preset: InputPreset | None = None
    input_columns: InputColumns = InputColumns()
    input_occurrence_fields: list[str] = []
    input_filters: InputFilters = InputFilters()
    input_sampling: InputSampling | None = None
    previous_output: Path | None = None
    slurm: SlurmSettings = SlurmSettings()


INPUT_KEYS = (
    "input_preset",
    "input_columns",
    "input_occurrence_fields",
    "input_filters",
    "input_sampling",
    "previous_output",
)


def input_settings(config: Config) -> dict[str, object]:
    """The input keys a plan depends on, those set to anything but their default."""
    data = config.model_dump(mode="json", include=set(INPUT_KEYS), exclude_defaults=True)
    return {key: data[key] for key in INPUT_KEYS if key in data}


def _suggest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """'did you mean' for an unknown key, looking at the model that owns it."""
    owner: type[BaseModel] = model
    for part in loc[:-1]:
        field = owner.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        owner = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; allowed keys: {', '.join(owner.model_fields)}"


def _format_problem(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    # Union members add their type name to the location; the user only knows the key.
    key_path = ".".join(str(p) for p in loc if not str(p).startswith(("bool", "dict", "str")))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key_path}: unknown key{_suggest(Config, loc)} (remove or rename it)"
    if kind == "missing":
        return f"{key_path}: required key is missing (add it)"
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    # Our own validators' messages are whole sentences: pydantic's prefix adds nothing.
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key_path}: {message}{shown}"


def parse_config(data: object, base_dir: Path) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("(top level): the config must be a YAML mapping of keys to values")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = dict.fromkeys(_format_problem(dict(e)) for e in exc.errors())
        raise ConfigError(list(problems)) from None
    config.path_to_input = _expand(config.path_to_input, base_dir)
    config.path_to_output = _expand(config.path_to_output, base_dir)
    if config.previous_output is not None:
        config.previous_output = _expand(config.previous_output, base_dir)
    slurm = config.slurm
    for key in ("virtualenv", "pre_script", "post_script"):
        if getattr(slurm, key) is not None:
            setattr(slurm, key, _expand(getattr(slurm, key), base_dir))
    params = config.downloader_parameters
    if params.ca_bundle is not None:
        params.ca_bundle = _expand(params.ca_bundle, base_dir)
        if not params.ca_bundle.is_file():
            raise ConfigError(f"downloader_parameters.ca_bundle: no such file {params.ca_bundle}")
    return config


def proxy_choice(params: DownloaderParameters, environ: Mapping[str, str]) -> ProxyChoice:
    """Which proxy each request goes through: the ``proxy`` key, else the proxy variables
    of ``environ`` (see :mod:`distdl.core.proxies`). ConfigError names a variable whose
    proxy cannot be used, so a run refuses it before it starts any rank."""
    try:
        return choose_proxies(params.proxy, environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _expand(path: Path, base_dir: Path) -> Path:
    """``~`` and ``$VARS`` expanded (cluster configs say /scratch/$USER), then made absolute."""
    expanded = Path(os.path.expanduser(os.path.expandvars(str(path))))
    return expanded if expanded.is_absolute() else (base_dir / expanded).resolve()


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; every problem is reported at once, nothing is written."""
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError(f"{config_path}: not valid YAML{line}: {exc}") from None
    return parse_config(data, config_path.resolve().parent)
