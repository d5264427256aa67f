"""The tool registry, with the original tool's names.

A tool is up to three classes registered under one name, one per *family*::

    @FilterRegister("my_tool")        # which rows/partitions it touches   (optional)
    class MyFilter(PythonFilterToolBase): ...

    @SchedulerRegister("my_tool")     # which rank does which partition    (optional)
    class MyScheduler(DefaultScheduler): ...

    @RunnerRegister("my_tool")        # what it does to one partition      (required)
    class MyRunner(MPIRunnerTool): ...

A missing filter is :class:`~distdl.tools.bases.PythonFilterToolBase` (every partition, no
row removed); a missing scheduler is :class:`~distdl.tools.bases.DefaultScheduler`.
Registering a name twice in a family is an error, unless it is the same class again (a
plugin module imported twice).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from distdl.errors import ToolError, ToolNotFoundError

if TYPE_CHECKING:
    from distdl.tools.bases import FilterToolBase, RunnerToolBase, SchedulerToolBase, ToolsBase

FAMILIES = ("filter", "scheduler", "runner")
C = TypeVar("C", bound=type)


class ToolsRegistryBase:
    TOOLS_REGISTRY: ClassVar[dict[str, dict[str, type[ToolsBase]]]] = {}

    @classmethod
    def register(cls, filter_family: str, filter_name: str) -> Callable[[C], C]:
        if filter_family not in FAMILIES:
            raise ToolError(f"unknown tool family {filter_family!r}; one of {', '.join(FAMILIES)}")

        def wrapper(model_cls: C) -> C:
            from distdl.tools.bases import ToolsBase

            if not (isinstance(model_cls, type) and issubclass(model_cls, ToolsBase)):
                raise ToolError(f"{model_cls!r} is not a tool class (subclass ToolsBase)")
            families = cls.TOOLS_REGISTRY.setdefault(filter_name, {})
            known = families.get(filter_family)
            if known is not None and _qualified(known) != _qualified(model_cls):
                raise ToolError(
                    f"tool {filter_name!r} already has a {filter_family}: {_qualified(known)}"
                )
            families[filter_family] = model_cls
            return model_cls

        return wrapper

    @classmethod
    def get(cls, name: str) -> dict[str, type[ToolsBase]] | None:
        return cls.TOOLS_REGISTRY.get(name)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


FilterRegister = functools.partial(ToolsRegistryBase.register, "filter")
SchedulerRegister = functools.partial(ToolsRegistryBase.register, "scheduler")
RunnerRegister = functools.partial(ToolsRegistryBase.register, "runner")


@dataclass(frozen=True)
class ToolClasses:
    name: str
    filter: type[FilterToolBase]
    scheduler: type[SchedulerToolBase]
    runner: type[RunnerToolBase]


def registered_tools() -> list[str]:
    """Names with a runner: the tools that can be applied."""
    return sorted(name for name, fam in ToolsRegistryBase.TOOLS_REGISTRY.items() if "runner" in fam)


def tool_classes(name: str) -> ToolClasses:
    from distdl.tools.bases import DefaultScheduler, PythonFilterToolBase

    families = ToolsRegistryBase.get(name) or {}
    runner = families.get("runner")
    if runner is None:
        known = ", ".join(registered_tools()) or "none"
        raise ToolNotFoundError(f"unknown tool {name!r}; registered tools: {known}")
    return ToolClasses(
        name,
        families.get("filter", PythonFilterToolBase),  # type: ignore[arg-type]
        families.get("scheduler", DefaultScheduler),  # type: ignore[arg-type]
        runner,  # type: ignore[arg-type]
    )
