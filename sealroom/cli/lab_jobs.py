"""`sealroom lab job|plan|artifact|compare`: submit and follow jobs, fetch their artifacts,
compare their metrics in one table (jobs as rows, their parameters beside each metric)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.cli.lab import client, read_text_file, show, table, verbatim
from sealroom.errors import LabError

if TYPE_CHECKING:
    from sealroom.lab.client import LabClient


job_app = typer.Typer(help="Jobs: one entry point run with parameters.", no_args_is_help=True)
plan_app = typer.Typer(help="Plans: many jobs submitted at once.", no_args_is_help=True)
artifact_app = typer.Typer(help="Artifacts committed by succeeded jobs.", no_args_is_help=True)

JOB_COLUMNS = ("id", "experiment", "entry_point", "queue", "status", "attempts", "reason")
MAX_PLAN_BYTES = 1 << 20
POLL_S = 0.5


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
    app.add_typer(plan_app, name="plan")
    app.add_typer(artifact_app, name="artifact")
    app.command("compare")(compare)


# --------------------------------------------------------------------------- parameters


def _yaml_file(path: Path, what: str) -> Any:
    import yaml

    from sealroom.lab.spec import check_yaml_shape

    text = read_text_file(path, what, MAX_PLAN_BYTES)
    check_yaml_shape(text, str(path))
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise LabError(f"{path}: not valid YAML; not {what}") from None


def gather_parameters(
    lab: LabClient,
    entry_point: str,
    params: list[str],
    params_file: Path | None,
    depends_on: list[str],
) -> dict[str, Any]:
    """``--params-file`` values, overridden by ``--param k=v``, typed by the entry point's
    declared parameters (the server binds them again; this catches mistakes early)."""
    from sealroom.lab.spec import parse_entry_point

    values: dict[str, Any] = {}
    if params_file is not None:
        loaded = _yaml_file(params_file, "parameters (a YAML mapping)")
        if not isinstance(loaded, dict):
            raise LabError(f"{params_file}: parameters must be a YAML mapping name: value")
        values.update({str(k): v for k, v in loaded.items()})
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LabError(f"--param {item!r}: write NAME=VALUE")
        values[name.strip()] = value
    from sealroom.lab.params import bind_parameters

    record = lab.get_entry_point(entry_point)
    ep = parse_entry_point(record["text"], f"entry point {entry_point}")
    return bind_parameters(ep, values, depends_on, "--param")


# --------------------------------------------------------------------------- jobs


@job_app.command("submit")
def submit(
    entry_point: str = typer.Argument(..., help="Entry point name (its latest version)."),
    experiment: str = typer.Option(..., "--experiment", "-e"),
    param: list[str] = typer.Option([], "--param", "-P", help="NAME=VALUE (repeatable)."),
    params_file: Path = typer.Option(None, "--params-file", help="YAML mapping of parameters."),
    queue: str = typer.Option("default", "--queue", "-q"),
    depends_on: list[str] = typer.Option([], "--depends-on", help="Job id (repeatable)."),
    allow_failure: bool = typer.Option(False, "--allow-failure"),
    timeout: float = typer.Option(None, "--timeout", help="Seconds before the job fails."),
    max_retries: int = typer.Option(0, "--max-retries", help="New attempts after a lost worker."),
    seed: int = typer.Option(None, "--seed", help="The job's seed (default: drawn at submit)."),
    description: str = typer.Option("", "--description", "-d"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Submit a job.

    Example: sealroom lab job submit train -e robustness -P model=lenet -P epochs=2
    """
    with refusals(), client() as lab:
        parameters = gather_parameters(lab, entry_point, param, params_file, depends_on)
        request = {
            "experiment": experiment,
            "entry_point": entry_point,
            "parameters": parameters,
            "queue": queue,
            "depends_on": depends_on,
            "allow_failure": allow_failure,
            "timeout_s": timeout,
            "max_retries": max_retries,
            "seed": seed,
            "description": description,
        }
        record = lab.submit_job(request)
    if json_out:
        emit_json(record)
    else:
        console.print(f"{record['id']} {record['status']} (queue {record['queue']})")


@job_app.command("list")
def job_list(
    experiment: str = typer.Option(None, "--experiment", "-e"),
    status: str = typer.Option(None, "--status"),
    json_out: bool = JSON_OPTION,
) -> None:
    with refusals(), client() as lab:
        rows = lab.list_jobs(experiment, status)
    show(rows, json_out, JOB_COLUMNS, "jobs")


@job_app.command("show")
def job_show(job_id: str, json_out: bool = JSON_OPTION) -> None:
    """A job and its attempts."""
    with refusals(), client() as lab:
        record = lab.get_job(job_id)
        attempts = lab.attempts(job_id)
    if json_out:
        emit_json({**record, "attempt_records": attempts})
        return
    show(record, False, (), f"job {job_id}")
    if attempts:
        columns = ("number", "status", "worker", "started_at", "ended_at", "error")
        console.print(table(attempts, columns, "attempts"))


@job_app.command("logs")
def job_logs(
    job_id: str,
    attempt: int = typer.Option(None, "--attempt", help="Default: every attempt."),
    json_out: bool = JSON_OPTION,
) -> None:
    with refusals(), client() as lab:
        text = lab.logs(job_id, attempt)
    if json_out:
        emit_json({"job": job_id, "attempt": attempt, "text": text})
    else:
        verbatim(text)


@job_app.command("cancel")
def job_cancel(job_id: str, json_out: bool = JSON_OPTION) -> None:
    """Cancel a job (and, unless they allow failure, its dependants)."""
    with refusals(), client() as lab:
        record = lab.cancel_job(job_id)
    if json_out:
        emit_json(record)
    else:
        console.print(f"{record['id']} {record['status']}")


@job_app.command("rerun")
def job_rerun(job_id: str, json_out: bool = JSON_OPTION) -> None:
    """A new job with the same entry point version, parameters, queue and dependencies."""
    with refusals(), client() as lab:
        record = lab.rerun_job(job_id)
    if json_out:
        emit_json(record)
    else:
        console.print(f"{record['id']} {record['status']} (rerun of {job_id})")


def _summary(records: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{job_id} {r['status']}" for job_id, r in records.items())


def _current(lab: LabClient, records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The jobs' records now, in one request per experiment (polling many jobs one request
    each would run into the server's rate limit)."""
    fresh: dict[str, dict[str, Any]] = {}
    for experiment in sorted({r["experiment"] for r in records.values()}):
        for job in lab.list_jobs(experiment=experiment):
            fresh[job["id"]] = job
    return {job_id: fresh.get(job_id, old) for job_id, old in records.items()}


def wait_for(lab: LabClient, job_ids: list[str], timeout: float | None) -> dict[str, Any]:
    """Poll until every job is terminal; a rich status line on stderr meanwhile."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from sealroom.lab.spec import TERMINAL

    deadline = None if timeout is None else time.monotonic() + timeout
    records = {job_id: lab.get_job(job_id) for job_id in job_ids}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bars:
        line = bars.add_task(_summary(records))
        while any(r["status"] not in TERMINAL for r in records.values()):
            if deadline is not None and time.monotonic() >= deadline:
                pending = [j for j, r in records.items() if r["status"] not in TERMINAL]
                raise LabError(
                    f"timed out after {timeout:g} s waiting for {', '.join(pending)} "
                    f"({records[pending[0]]['status']})"
                )
            time.sleep(POLL_S)
            records = _current(lab, records)
            bars.update(line, description=_summary(records))
    return records


@job_app.command("wait")
def job_wait(
    job_ids: list[str] = typer.Argument(..., help="Job ids."),
    timeout: float = typer.Option(None, "--timeout", help="Give up after this many seconds."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Wait until the jobs end; exit 1 unless every one succeeded.

    Example: sealroom lab job wait job-1 job-2 --timeout 600
    """
    with refusals(), client() as lab:
        records = wait_for(lab, list(dict.fromkeys(job_ids)), timeout)
        if json_out:
            emit_json(list(records.values()))
        else:
            console.print(table(records.values(), JOB_COLUMNS, "jobs"))
        unhappy = [r for r in records.values() if r["status"] != "succeeded"]
        if unhappy:
            first = unhappy[0]
            reason = f": {first['reason']}" if first.get("reason") else ""
            raise LabError(f"{first['id']} {first['status']}{reason}")


# --------------------------------------------------------------------------- plans, artifacts


@plan_app.command("submit")
def plan_submit(
    file: Path = typer.Argument(..., help="Plan YAML or JSON: {jobs: [{key, ...}]}."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Submit every job of a plan, or none (a cycle is refused with its path)."""
    with refusals():
        plan = _yaml_file(file, "a plan")
        if not isinstance(plan, dict):
            raise LabError(f"{file}: a plan is a mapping with a list of jobs")
        with client() as lab:
            rows = lab.submit_plan(plan)
    show(rows, json_out, JOB_COLUMNS, "jobs submitted")


@artifact_app.command("list")
def artifact_list(job_id: str, json_out: bool = JSON_OPTION) -> None:
    with refusals(), client() as lab:
        rows = lab.artifacts(job_id)
    show(rows, json_out, ("name", "kind", "filename", "size", "sha256", "attempt"), "artifacts")


@artifact_app.command("get")
def artifact_get(
    job_id: str,
    name: str,
    output: Path = typer.Option(Path("."), "--output", "-o", help="File or folder."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Download an artifact (checked against its recorded sha256).

    Example: sealroom lab artifact get job-3 model -o lenet.onnx
    """
    with refusals(), client() as lab:
        path = lab.download_artifact(job_id, name, output)
    if json_out:
        emit_json({"job": job_id, "artifact": name, "path": str(path)})
    else:
        console.print(f"{name} of {job_id} saved to {path}")


def compare(
    job_ids: list[str] = typer.Argument(..., help="Job ids to compare."),
    metric: list[str] = typer.Option([], "--metric", "-m", help="Metric name (repeatable)."),
    all_steps: bool = typer.Option(False, "--all-steps", help="Every step, not the last."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Metrics of several jobs in one table, with each job's parameters.

    Example: sealroom lab compare job-4 job-5 job-6 --metric accuracy
    """
    with refusals(), client() as lab:
        rows = lab.compare(job_ids, metric or None)
    if not all_steps:
        last: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:  # sorted by job, metric, step
            last[(row["job"], row["metric"])] = row
        rows = list(last.values())
    if json_out:
        emit_json(rows)
        return
    if not rows:
        console.print("no metrics recorded for " + ", ".join(job_ids))
        return
    shown = table(rows, ("job", "entry_point", "parameters", "metric", "step", "value"), "metrics")
    console.print(shown)
