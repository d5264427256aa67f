"""Rendering a job script from a template in ``slurm/``: pure text in, text out.

A template is an ordinary sbatch script (usable by hand) with two things ``distdl submit``
fills in: the values of its ``#SBATCH --option=value`` lines (replaced where the template
has the option, added after its last ``#SBATCH`` line otherwise), and the line
``# distdl submit: set-up``, replaced by the site's set-up: ``module load``, the
virtualenv, the Python and MPI plugin srun uses, the original tool's environment variables,
and the user's pre/post scripts.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from distdl.cluster.site import MPI_ENV, PYTHON_ENV, Site

SETUP_MARKER = "# distdl submit: set-up"
_SBATCH_LINE = re.compile(r"^#SBATCH\s+--([A-Za-z-]+)")


def render_script(
    template: str, options: Mapping[str, str], extra: Sequence[str], setup: Sequence[str]
) -> str:
    """The template with ``options`` (name without ``--`` -> value) in its #SBATCH lines,
    ``extra`` raw #SBATCH options after them, and ``setup`` in place of the marker."""
    lines = template.splitlines()
    if SETUP_MARKER not in (line.strip() for line in lines):
        raise ValueError(f"the template has no {SETUP_MARKER!r} line")
    pending = dict(options)
    rendered: list[str] = []
    last_sbatch = -1
    for line in lines:
        found = _SBATCH_LINE.match(line)
        if found:
            name = found.group(1)
            if name in pending:
                line = f"#SBATCH --{name}={pending.pop(name)}"
            rendered.append(line)
            last_sbatch = len(rendered)
        elif line.strip() == SETUP_MARKER:
            rendered.extend(setup)
        else:
            rendered.append(line)
    added = [f"#SBATCH --{name}={value}" for name, value in pending.items()]
    added += [f"#SBATCH {option}" for option in extra]
    rendered[last_sbatch:last_sbatch] = added
    return "\n".join(rendered) + "\n"


def setup_lines(site: Site, environment: Mapping[str, str]) -> list[str]:
    """The shell lines of a job's set-up, from the site and the environment to export."""
    lines = ["# --- set up by distdl submit (the config's slurm: section) ---"]
    if site.modules or site.virtualenv is not None:
        lines.append("set +u  # module and activate scripts read unset variables")
        lines += [f"module load {shlex.quote(module)}" for module in site.modules]
        if site.virtualenv is not None:
            lines.append(f"source {shlex.quote(str(site.virtualenv / 'bin' / 'activate'))}")
        lines.append("set -u")
    lines.append(f"export {PYTHON_ENV}={shlex.quote(site.python)}")
    lines.append(f"export {MPI_ENV}={shlex.quote(site.mpi)}")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
    if site.post_script is not None:
        # An EXIT trap runs whatever srun's exit, and keeps the job's exit code.
        lines.append(f"trap {shlex.quote('bash ' + shlex.quote(str(site.post_script)))} EXIT")
    if site.pre_script is not None:
        lines.append(f"bash {shlex.quote(str(site.pre_script))}")
    lines.append("# --- end of the set-up ---")
    return lines
