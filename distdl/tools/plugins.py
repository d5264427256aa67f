"""Finding tools: the built-ins, ``distdl.tools`` entry points, and ``--plugin`` modules.

A plugin is a module that registers tools with the decorators of
:mod:`distdl.tools.registry` when imported: a file (``--plugin my_tools.py``, imported under
a name derived from its path) or an importable module name (``--plugin lab.tools``).
Installed packages can instead declare an entry point in the ``distdl.tools`` group.
Launched ranks get the same ``--plugin`` arguments, so a plugin runs on every rank.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

from distdl.errors import ToolError

log = logging.getLogger("distdl.tools")
ENTRY_POINT_GROUP = "distdl.tools"
_loaded_entry_points = False


def load_tools(plugins: Iterable[str] = ()) -> None:
    """Register the built-in tools, the installed entry points and ``plugins``."""
    global _loaded_entry_points
    import distdl.tools.builtin  # noqa: F401  (registers the built-in tools)

    if not _loaded_entry_points:
        _loaded_entry_points = True
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except Exception as exc:
                raise ToolError(
                    f"the {ENTRY_POINT_GROUP} entry point {entry.name!r} "
                    f"({entry.value}) failed to load: {exc}"
                ) from exc
    for plugin in plugins:
        load_plugin(plugin)


def load_plugin(spec: str) -> None:
    """Import a plugin file (``*.py``) or module by name."""
    if spec.endswith(".py") or "/" in spec:
        _load_file(Path(spec))
        return
    try:
        importlib.import_module(spec)
    except ImportError as exc:
        raise ToolError(f"cannot import plugin module {spec!r}: {exc}") from exc


def _load_file(path: Path) -> None:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ToolError(f"plugin file {path} does not exist")
    # One module name per file: importing it twice reuses the module, and two files with
    # the same stem do not replace each other.
    name = f"distdl_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolError(f"cannot load plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ToolError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise ToolError(f"plugin file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    log.debug("loaded plugin %s", path)
