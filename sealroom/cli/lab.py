"""`sealroom lab`: the experiment testbed from the terminal, through the lab server's API.

`sealroom lab start` runs the server in the foreground (Ctrl-C stops it); every other
command is a client of it, found through the workspace's ``lab/server.json`` and token.
Lab jobs run outside the rooms (trust: outside-room).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals
from sealroom.errors import LabError

if TYPE_CHECKING:
    from rich.table import Table

    from sealroom.lab.client import LabClient
    from sealroom.lab.paths import LabPaths


app = typer.Typer(
    help="Experiment testbed: experiments, entry points, queues, jobs.", no_args_is_help=True
)
experiment_app = typer.Typer(help="Experiments group jobs.", no_args_is_help=True)
entrypoint_app = typer.Typer(help="Entry points: versioned YAML recipes.", no_args_is_help=True)
queue_app = typer.Typer(help="Queues route jobs to the workers serving them.", no_args_is_help=True)
worker_app = typer.Typer(help="Workers: machines serving queues.", no_args_is_help=True)
model_app = typer.Typer(help="Models registered from succeeded jobs.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
app.add_typer(entrypoint_app, name="entrypoint")
app.add_typer(queue_app, name="queue")
app.add_typer(worker_app, name="worker")
app.add_typer(model_app, name="model")

STOP_WAIT_S = 30.0


# --------------------------------------------------------------------------- shared helpers


def lab_paths() -> LabPaths:
    from sealroom.lab.paths import LabPaths
    from sealroom.workspace import Workspace

    return LabPaths.of_workspace(Workspace.find().home)


def client() -> LabClient:
    from sealroom.lab.client import LabClient

    return LabClient.from_workspace(lab_paths())


def when(value: Any) -> str:
    if not isinstance(value, int | float) or not value:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table(
    rows: Iterable[dict[str, Any]], columns: Sequence[str], title: str | None = None
) -> Table:
    """A rich table of ``columns`` (record keys; ``*_at`` shown as local times)."""
    from rich.table import Table

    shown = Table(title=title, show_lines=False)
    for column in columns:
        shown.add_column(column.replace("_", " "))
    for row in rows:
        shown.add_row(
            *(when(row.get(c)) if c.endswith("_at") else cell(row.get(c)) for c in columns)
        )
    return shown


def show(data: Any, json_out: bool, columns: Sequence[str], title: str | None = None) -> None:
    """``--json``: the API's JSON as is; else a table (one record: a two-column table)."""
    from rich.table import Table

    if json_out:
        emit_json(data)
        return
    if isinstance(data, dict):
        one = Table(title=title, show_header=False)
        one.add_column("field", style="bold")
        one.add_column("value")
        for key, value in data.items():
            if key == "text":
                continue
            one.add_row(key, when(value) if key.endswith("_at") else cell(value))
        console.print(one)
        return
    if not data:
        console.print(f"no {title or 'rows'}")
        return
    console.print(table(data, columns, title))


def verbatim(text: str) -> None:
    """Text as stored (YAML, logs): no markup, no highlighting, never wrapped."""
    end = "" if text.endswith("\n") else "\n"
    console.print(text, markup=False, highlight=False, soft_wrap=True, end=end)


def read_text_file(path: Path, what: str, limit: int) -> str:
    from sealroom.files import read_capped

    raw = read_capped(path, limit, what, LabError)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LabError(f"{path}: not UTF-8 text; not {what}") from None


def parse_queues(values: list[str]) -> dict[str, float] | None:
    """``--queue NAME[=SLOTS]`` (slots default 2) → {name: slots}; None: the engine's default."""
    if not values:
        return None
    queues: dict[str, float] = {}
    for value in values:
        name, sep, slots = value.partition("=")
        try:
            count = float(slots) if sep else 2.0
        except ValueError:
            raise LabError(f"--queue {value!r}: slots must be a number (NAME=SLOTS)") from None
        if not name or count <= 0:
            raise LabError(f"--queue {value!r}: give NAME or NAME=SLOTS with SLOTS > 0")
        queues[name] = count
    return queues


# --------------------------------------------------------------------------- server


@app.command("start")
def start(
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on."),
    port: int = typer.Option(8480, "--port", help="TCP port (0: any free port)."),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Join this Ray cluster (default: a local Ray)."
    ),
    tracking_uri: str = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI (default: lab/mlflow.db)."
    ),
    queue: list[str] = typer.Option(
        [], "--queue", help="Queue the local Ray serves, NAME[=SLOTS] (repeatable)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run the lab server in the foreground until Ctrl-C.

    Example: sealroom lab start --queue default=2 --queue gpu=1
    """
    from sealroom.lab.server import run_lab_server

    with refusals():
        paths = lab_paths().create()
        queues = parse_queues(queue)

    def ready(url: str) -> None:
        if json_out:  # one line: a script reads it and goes on
            sys.stdout.write(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        else:
            console.print(f"lab server at [bold]{url}[/] (Ctrl-C stops it)")
        sys.stdout.flush()

    with refusals():
        run_lab_server(
            paths,
            host=host,
            port=port,
            ray_address=ray_address,
            queues=queues,
            tracking_uri=tracking_uri,
            ready=ready,
        )


@app.command("stop")
def stop(json_out: bool = JSON_OPTION) -> None:
    """Stop the running lab server (SIGTERM; it finishes its bookkeeping first)."""
    from sealroom.lab.client import LabClient, read_server_file

    with refusals():
        paths = lab_paths()
        url, pid = read_server_file(paths)
        # A server.json left by a killed server may name a pid reused by another process:
        # signal it only while the lab answers at the recorded address.
        with LabClient(url, "unused-token-for-the-health-check", timeout=5.0) as probe:
            if not probe.health():
                raise LabError(
                    f"no lab server answers at {url}; lab/server.json is stale "
                    f"(pid {pid} was not signalled)"
                )
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            if _exited(pid):
                break
            time.sleep(0.2)
        else:
            raise LabError(f"lab server (pid {pid}) still running after {STOP_WAIT_S:.0f} s")
    if json_out:
        emit_json({"stopped": url, "pid": pid})
    else:
        console.print(f"lab server at {url} stopped")


def _exited(pid: int) -> bool:
    """The process is gone, or has exited and waits for its parent to reap it (a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@app.command("status")
def status(json_out: bool = JSON_OPTION) -> None:
    """The server's address, jobs by status, live workers and queues."""
    with refusals(), client() as lab:
        data = {"url": lab.url, **lab.status()}
    if json_out:
        emit_json(data)
        return
    jobs = ", ".join(f"{n} {s}" for s, n in sorted(data["jobs"].items())) or "none"
    console.print(f"lab server at [bold]{data['url']}[/] (jobs run {data['trust']})")
    console.print(f"jobs: {jobs}")
    console.print(f"live workers: {data['workers']}; queues: {cell(data['queues'])}")


@app.command("tasks")
def tasks(json_out: bool = JSON_OPTION) -> None:
    """Tasks installed on the server (built-ins and task packages)."""
    with refusals(), client() as lab:
        rows = lab.list_tasks()
    show(rows, json_out, ("name", "outputs", "source", "description"), "tasks")


# --------------------------------------------------------------------------- catalogue


@experiment_app.command("create")
def experiment_create(
    name: str = typer.Argument(..., help="Experiment name (lower case, - and _)."),
    description: str = typer.Option("", "--description", "-d"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Create an experiment. Example: sealroom lab experiment create robustness"""
    with refusals(), client() as lab:
        record = lab.create_experiment(name, description)
    show(record, json_out, (), f"experiment {name}")


@experiment_app.command("list")
def experiment_list(json_out: bool = JSON_OPTION) -> None:
    with refusals(), client() as lab:
        rows = lab.list_experiments()
    show(rows, json_out, ("name", "description", "created_at"), "experiments")


@entrypoint_app.command("add")
def entrypoint_add(
    file: Path = typer.Argument(..., help="Entry point YAML file."), json_out: bool = JSON_OPTION
) -> None:
    """Add an entry point (same text: same version; changed text: the next version).

    Example: sealroom lab entrypoint add train.yaml
    """
    from sealroom.lab.spec import MAX_ENTRY_POINT_BYTES

    with refusals():
        text = read_text_file(file, "an entry point (YAML)", MAX_ENTRY_POINT_BYTES)
        with client() as lab:
            record = lab.add_entry_point(text)
    if json_out:
        emit_json(record)
    else:
        console.print(f"entry point {record['name']} version {record['version']}")


@entrypoint_app.command("list")
def entrypoint_list(json_out: bool = JSON_OPTION) -> None:
    with refusals(), client() as lab:
        rows = lab.list_entry_points()
    show(rows, json_out, ("name", "version", "digest", "created_at"), "entry points")


@entrypoint_app.command("show")
def entrypoint_show(
    name: str,
    version: int = typer.Option(None, "--version", help="Default: the latest."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print an entry point's YAML text (as stored, for this version)."""
    with refusals(), client() as lab:
        record = lab.get_entry_point(name, version)
    if json_out:
        emit_json(record)
    else:
        console.print(f"# {record['name']} version {record['version']}", highlight=False)
        verbatim(record["text"])


@queue_app.command("add")
def queue_add(
    name: str,
    description: str = typer.Option("", "--description", "-d"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Declare a queue. Example: sealroom lab queue add gpu"""
    with refusals(), client() as lab:
        record = lab.add_queue(name, description)
    show(record, json_out, (), f"queue {name}")


@queue_app.command("list")
def queue_list(json_out: bool = JSON_OPTION) -> None:
    with refusals(), client() as lab:
        rows = lab.list_queues()
    show(rows, json_out, ("name", "description", "created_at"), "queues")


@worker_app.command("list")
def worker_list(json_out: bool = JSON_OPTION) -> None:
    """Workers the server has seen, with their queues and last heartbeat."""
    with refusals(), client() as lab:
        rows = lab.list_workers()
    show(rows, json_out, ("worker_id", "queues", "address", "alive", "last_heartbeat"), "workers")


@worker_app.command("start")
def worker_start(
    address: str = typer.Option(..., "--address", help="The lab's Ray address, HOST:PORT."),
    queue: str = typer.Option("default", "--queue", "-q", help="Queue this worker serves."),
    slots: int = typer.Option(1, "--slots", help="Jobs it runs at a time."),
    num_cpus: int = typer.Option(None, "--num-cpus", help="CPUs it offers Ray (default: slots)."),
) -> None:
    """Join this machine to the lab's Ray cluster as a worker for a queue (until Ctrl-C).

    Example: sealroom lab worker start --address 10.0.0.5:6379 --queue gpu --slots 1
    """
    from sealroom.lab.workers import start_worker

    with refusals():
        start_worker(address, queue, slots, num_cpus)


@model_app.command("list")
def model_list(json_out: bool = JSON_OPTION) -> None:
    with refusals(), client() as lab:
        rows = lab.list_models()
    show(rows, json_out, ("name", "version", "job_id", "artifact", "mlflow_version"), "models")


from sealroom.cli import lab_jobs  # noqa: E402  (registers job, plan, artifact, compare)

lab_jobs.register(app)
