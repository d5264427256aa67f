"""`distdl submit`: the rendered job script, the sbatch chain (fake sbatch/squeue runners),
and the chain's job states for `distdl status`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

import distdl.cluster.submit
from distdl.cluster.chain import (
    ChainRecord,
    chain_status,
    job_states,
    parse_sacct,
    parse_squeue,
    read_chain,
    record_path,
    write_chain,
)
from distdl.cluster.commands import Completed
from distdl.cluster.script import SETUP_MARKER, render_script
from distdl.cluster.site import resolve_site
from distdl.cluster.submit import (
    build_chain,
    dry_run_text,
    parse_job_id,
    submit_chain,
    templates_folder,
)
from distdl.config import SlurmSettings, load_config
from distdl.errors import ConfigError, StateError, SubmitError
from distdl.io.lock import AFTER_JOB_ENV
from distdl.layout import Layout

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "slurm"


class FakeSlurm:
    """sbatch hands out ids from 100 (or refuses job ``refuse``); squeue lists ``queued``."""

    def __init__(self, refuse: int | None = None, queued: dict[str, str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.refuse = refuse
        self.queued = queued or {}
        self.next_id = 100

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.calls.append(list(argv))
        if argv[0] == "sbatch":
            if self.refuse is not None and len(self.sbatch_calls()) == self.refuse:
                return Completed(1, "", "sbatch: error: Invalid account or account/partition\n")
            self.next_id += 1
            return Completed(0, f"{self.next_id};cluster\n")
        if argv[0] == "squeue":
            wanted = argv[argv.index("-j") + 1].split(",")
            lines = [f"{job} {self.queued[job]}" for job in wanted if job in self.queued]
            return Completed(0, "\n".join(lines))
        return Completed(127, "", f"{argv[0]}: command not found")

    def sbatch_calls(self) -> list[list[str]]:
        return [call for call in self.calls if call[0] == "sbatch"]


def make_config(tmp_path: Path, **sections: object) -> Path:
    data: dict[str, object] = {
        "path_to_input": "urls.csv",
        "path_to_output": "out",
        "downloader_parameters": {
            "num_downloads": 3,
            "max_nodes": 2,
            "workers_per_node": 8,
            "cpu_per_worker": 4,
        },
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def chain_for(tmp_path: Path, env: dict[str, str] | None = None, **sections: object):
    path = make_config(tmp_path, **sections)
    config = load_config(path)
    site = resolve_site(config.slurm, env or {}, python="/opt/py/bin/python")
    return config, build_chain(config, path, site=site, templates=REPO_TEMPLATES)


def sbatch_lines(script: str) -> dict[str, str]:
    found = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --") and "=" in line:
            name, value = line.removeprefix("#SBATCH --").split("=", 1)
            found[name] = value
    return found


def test_the_script_is_sized_from_the_config_and_its_body_is_one_srun_line(
    tmp_path: Path,
) -> None:
    config, chain = chain_for(tmp_path, slurm={"account": "bio42", "time": "12:00:00"})
    options = sbatch_lines(chain.script)
    assert options["nodes"] == "2" and options["ntasks-per-node"] == "8"
    assert options["cpus-per-task"] == "4"
    assert options["account"] == "bio42" and options["time"] == "12:00:00"
    assert "partition" not in options  # unset: sbatch's own SBATCH_PARTITION decides
    assert options["output"] == str(Layout.from_config(config).logs / "slurm-%j.out")
    srun = [line for line in chain.script.splitlines() if "srun" in line and "#" not in line]
    assert (
        len(srun) == 1 and "distdl run" in srun[0] and '--mpi="${DISTDL_SRUN_MPI:-pmi2}"' in srun[0]
    )
    assert SETUP_MARKER not in chain.script
    assert "export DISTDL_PYTHON=/opt/py/bin/python" in chain.script
    assert "export DISTDL_SRUN_MPI=pmi2" in chain.script
    assert "export ACCOUNT=bio42" in chain.script  # the original's variables, for the job
    assert chain.shape.jobs == 3
    assert subprocess.run(["bash", "-n"], input=chain.script, text=True).returncode == 0


def test_the_site_comes_from_the_slurm_section_else_the_environment(tmp_path: Path) -> None:
    env = {
        "DISTDL_MODULES": "gcc/12 openmpi/4",
        "VIRTUAL_ENV": "/envs/dl",
        "DISTDL_SRUN_MPI": "pmix",
    }
    _, chain = chain_for(tmp_path, env)
    assert "module load gcc/12\nmodule load openmpi/4\nsource /envs/dl/bin/activate" in chain.script
    assert "export DISTDL_PYTHON=python" in chain.script  # the virtualenv's
    assert "export DISTDL_SRUN_MPI=pmix" in chain.script
    section = {
        "modules": ["mpich/4.1"],
        "virtualenv": "venv",
        "mpi": "pmi2",
        "sbatch_options": ["--qos=long", "--constraint=cpu"],
        "pre_script": "pre.sh",
        "post_script": "post job.sh",
    }
    _, chain = chain_for(tmp_path, env, slurm=section)
    script = chain.script
    assert "module load mpich/4.1" in script and "gcc/12" not in script
    assert f"source {tmp_path / 'venv' / 'bin' / 'activate'}" in script
    assert "export DISTDL_SRUN_MPI=pmi2" in script
    assert "#SBATCH --qos=long\n#SBATCH --constraint=cpu" in script
    assert f"bash {tmp_path / 'pre.sh'}" in script
    assert "trap " in script and "post job.sh" in script
    # The set-up comes before the srun line, the #SBATCH lines before any command.
    assert script.index("module load") < script.index("srun ")
    last_sbatch = max(i for i, line in enumerate(script.splitlines()) if line.startswith("#SBATCH"))
    first_command = script.splitlines().index("set -euo pipefail")
    assert last_sbatch < first_command


def test_pre_and_post_scripts_see_the_original_variables_and_the_exit_code_is_srun_s(
    tmp_path: Path,
) -> None:
    (tmp_path / "pre.sh").write_text('echo "pre $PATH_TO_OUTPUT $DOWNLOADER_BATCH_SIZE"\n')
    (tmp_path / "post.sh").write_text('echo "post $OUTPUT_LOGS_FOLDER"\n')
    _, chain = chain_for(tmp_path, slurm={"pre_script": "pre.sh", "post_script": "post.sh"})
    fake_srun = "srun() { echo srun; return 3; }\n"
    script = chain.script.replace("set -euo pipefail", f"set -euo pipefail\n{fake_srun}")
    ran = subprocess.run(
        ["bash", "-c", script, "job", "config.yaml"], capture_output=True, text=True
    )
    out = tmp_path / "out"
    assert ran.stdout.splitlines() == ["pre " + str(out) + " 10000", "srun", f"post {out / 'logs'}"]
    assert ran.returncode == 3


def test_render_replaces_present_options_and_adds_the_others_after_the_last() -> None:
    template = (
        "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --job-name=x\nset -e\n"
        + SETUP_MARKER
        + "\nsrun a\n"
    )
    text = render_script(template, {"nodes": "4", "time": "1:00:00"}, ["--qos=q"], ["echo hi"])
    assert text == (
        "#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH --job-name=x\n#SBATCH --time=1:00:00\n"
        "#SBATCH --qos=q\nset -e\necho hi\nsrun a\n"
    )
    with pytest.raises(ValueError):
        render_script("#!/bin/bash\nsrun a\n", {}, [], [])


def test_a_download_job_needs_two_tasks_and_the_command_line_sizes_win(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    config = load_config(path)
    site = resolve_site(SlurmSettings(), {}, python="python")
    chain = build_chain(
        config, path, nodes=1, ntasks_per_node=3, site=site, templates=REPO_TEMPLATES
    )
    assert sbatch_lines(chain.script)["nodes"] == "1"
    assert sbatch_lines(chain.script)["ntasks-per-node"] == "3"
    with pytest.raises(ConfigError, match="workers_per_node"):
        build_chain(config, path, nodes=1, ntasks_per_node=1, site=site, templates=REPO_TEMPLATES)


def test_tools_chain_uses_tools_parameters_and_slurm_s_signal(tmp_path: Path) -> None:
    tools = {"num_workers": 2, "max_nodes": 1, "workers_per_node": 4, "cpu_per_worker": 2}
    path = make_config(tmp_path, tools_parameters=tools, slurm={"stop_margin": 300})
    config = load_config(path)
    site = resolve_site(config.slurm, {}, python="python")
    chain = build_chain(config, path, tool="resize", site=site, templates=REPO_TEMPLATES)
    options = sbatch_lines(chain.script)
    assert (options["nodes"], options["ntasks-per-node"], options["cpus-per-task"]) == (
        "1",
        "4",
        "2",
    )
    assert options["signal"] == "USR1@300"
    assert chain.shape.jobs == 2 and chain.args[-1] == "resize"
    assert "OUTPUT_TOOLS_LOGS_FOLDER" in chain.script
    assert "distdl tools" in chain.script


def test_the_chain_is_linked_afterany_and_each_job_knows_the_one_before(tmp_path: Path) -> None:
    config, chain = chain_for(tmp_path)
    layout = Layout.from_config(config)
    slurm = FakeSlurm()
    jobs = submit_chain(chain, layout, slurm)
    assert jobs == ["101", "102", "103"]
    calls = slurm.sbatch_calls()
    assert calls[0] == [
        "sbatch",
        "--parsable",
        str(chain.script_path),
        str(tmp_path / "config.yaml"),
    ]
    assert (
        "--dependency=afterany:101" in calls[1] and f"--export=ALL,{AFTER_JOB_ENV}=101" in calls[1]
    )
    assert "--dependency=afterany:102" in calls[2]
    assert chain.script_path.read_text() == chain.script
    assert layout.logs.is_dir()  # sbatch writes the job's output there
    record = read_chain(layout)
    assert record is not None and record.jobs == ("101", "102", "103") and record.kind == "download"


def test_a_refused_submission_names_sbatch_s_message_and_what_was_submitted(
    tmp_path: Path,
) -> None:
    config, chain = chain_for(tmp_path)
    layout = Layout.from_config(config)
    with pytest.raises(SubmitError) as refused:
        submit_chain(chain, layout, FakeSlurm(refuse=2))
    message = str(refused.value)
    assert "job 2 of 3" in message and "Invalid account or account/partition" in message
    assert "jobs 101 were submitted" in message
    assert refused.value.exit_code == 7
    assert read_chain(layout).jobs == ("101",)  # type: ignore[union-attr]


def test_a_chain_still_queued_is_not_doubled(tmp_path: Path) -> None:
    config, chain = chain_for(tmp_path)
    layout = Layout.from_config(config)
    layout.schedules.mkdir(parents=True)
    write_chain(record_path(layout), ChainRecord("download", None, "x", "t", ("7", "8")))
    slurm = FakeSlurm(queued={"8": "PENDING"})
    with pytest.raises(StateError, match="8"):
        submit_chain(chain, layout, slurm)
    assert not slurm.sbatch_calls()


def test_dry_run_prints_the_script_and_the_commands_and_submits_nothing(tmp_path: Path) -> None:
    _, chain = chain_for(tmp_path)
    text = dry_run_text(chain)
    assert chain.script.strip() in text
    commands = [line for line in text.splitlines() if line.startswith("JOB")]
    assert len(commands) == 3
    assert commands[1].startswith("JOB2=$(sbatch --parsable --dependency=afterany:$JOB1 ")
    assert not chain.script_path.exists()


@pytest.mark.parametrize(
    ("stdout", "job"), [("4242\n", "4242"), ("4242;cluster2\n", "4242"), ("note\n77\n", "77")]
)
def test_parsable_output_is_parsed(stdout: str, job: str) -> None:
    assert parse_job_id(stdout) == job


def test_output_without_a_job_id_is_an_error() -> None:
    with pytest.raises(SubmitError, match="no job id"):
        parse_job_id("Submitted batch job 12\n")


def test_job_states_from_squeue_then_sacct_and_ids_alone_without_either(tmp_path: Path) -> None:
    assert parse_squeue("11 RUNNING\n12 PENDING\n") == {"11": "RUNNING", "12": "PENDING"}
    assert parse_sacct("10|CANCELLED by 0\n11|COMPLETED\n") == {
        "10": "CANCELLED",
        "11": "COMPLETED",
    }

    def with_sacct(argv: Sequence[str]) -> Completed:
        if argv[0] == "squeue":
            return Completed(0, "12 RUNNING\n")
        return Completed(0, "11|TIMEOUT\n")

    assert job_states(["11", "12"], with_sacct) == {"11": "TIMEOUT", "12": "RUNNING"}

    def accounting_off(argv: Sequence[str]) -> Completed:
        if argv[0] == "squeue":
            return Completed(0, "12 RUNNING\n")
        return Completed(1, "", "sacct: error: Slurm accounting storage is disabled")

    assert job_states(["11", "12"], accounting_off) == {"11": "ENDED", "12": "RUNNING"}

    def forgotten(argv: Sequence[str]) -> Completed:
        return Completed(1, "", "slurm_load_jobs error: Invalid job id specified\n")

    assert job_states(["11"], forgotten) == {"11": "ENDED"}

    def no_slurm(argv: Sequence[str]) -> Completed:
        return Completed(127, "", "not found")

    assert job_states(["11", "12"], no_slurm) == {"11": None, "12": None}
    config = load_config(make_config(tmp_path))
    layout = Layout.from_config(config)
    assert chain_status(layout, no_slurm) is None
    layout.schedules.mkdir(parents=True)
    write_chain(record_path(layout), ChainRecord("download", None, "x", "t", ("11", "12")))
    status = chain_status(layout, no_slurm)
    assert status is not None
    assert status["jobs"] == [{"id": "11", "state": None}, {"id": "12", "state": None}]
    assert json.loads(record_path(layout).read_text())["jobs"] == ["11", "12"]


def test_the_templates_ship_with_the_package_and_slurm_links_to_them() -> None:
    # An installed wheel has no source tree: submit reads the package's copies, and the
    # repository's slurm/*.sbatch (what users copy by hand) are the same files.
    shipped = templates_folder({})
    assert shipped.parent == Path(distdl.cluster.submit.__file__).resolve().parent
    for name in ("distdl.sbatch", "tools.sbatch"):
        assert SETUP_MARKER in (shipped / name).read_text()
        assert (REPO_TEMPLATES / name).resolve() == (shipped / name).resolve()
    assert templates_folder({"DISTDL_SLURM_TEMPLATES": "/site/t"}) == Path("/site/t")
