"""`sealroom demo testbed`: the reduced reference robustness experiment, end to end.

A fresh workspace; a lab server started as a child process (local Ray, MLflow tracking);
the reference entry points added and the 13-job plan submitted over the lab API; a live
view of the jobs until all are done; the report's plots and tables downloaded; where the
MLflow store is and the ``mlflow ui`` command to browse it. ``--inline`` runs the same plan
in this process (the lab's scheduler with the in-process engine; no Ray, no HTTP).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealroom.cli.console import console, emit_json, err_console, heading, progress, refusals
from sealroom.errors import LabError

if TYPE_CHECKING:
    from rich.progress import Progress

SERVER_START_S = 120.0
PLAN_TIMEOUT_S = 1800.0
STAGES = ("train", "attack", "evaluate", "report")
REPORT_FILES = (
    "transferability_png",
    "curves_png",
    "table_png",
    "table_csv",
    "transferability_csv",
    "curves_csv",
)


class StageView:
    """One bar per stage of the plan (train, attack, evaluate, report): jobs finished."""

    def __init__(self, bars: Progress, keys: dict[str, str]) -> None:
        self.bars = bars
        self.stage_of = {job_id: key.split("-", 1)[0] for job_id, key in keys.items()}
        totals = {s: sum(1 for v in self.stage_of.values() if v == s) for s in STAGES}
        self.tasks = {s: bars.add_task(f"{s:<9}", total=totals[s]) for s in STAGES}
        self.seen: dict[str, str] = {}

    def update(self, jobs: list[tuple[str, str, str]]) -> None:
        """``jobs``: (id, status, reason) of every job of the plan."""
        done = dict.fromkeys(STAGES, 0)
        running = dict.fromkeys(STAGES, 0)
        for job_id, status, reason in jobs:
            stage = self.stage_of.get(job_id)
            if stage is None:
                continue
            if status in ("succeeded", "failed", "cancelled"):
                done[stage] += 1
            running[stage] += status == "running"
            if status in ("failed", "cancelled") and self.seen.get(job_id) != status:
                self.bars.console.print(f"  [red]{job_id} {status}[/]: {reason}", highlight=False)
            self.seen[job_id] = status
        for stage, task_id in self.tasks.items():
            note = f" ({running[stage]} running)" if running[stage] else ""
            self.bars.update(task_id, completed=done[stage], description=f"{stage:<9}{note}")


def testbed_demo(home: Path | None, json_out: bool, inline: bool, scale: str = "reduced") -> None:
    """See the module docstring. Exit 1 with one line when a job fails."""
    from sealroom.lab.extras import require_lab_extra
    from sealroom.lab.paths import LabPaths
    from sealroom.lab.reference.plan import SCALES, reference_plan
    from sealroom.workspace import Workspace

    out = err_console if json_out else console
    with refusals():
        if scale not in SCALES:
            raise LabError(f"--scale {scale[:40]!r}: use one of {', '.join(SCALES)}")
        require_lab_extra()
        if home is None:
            home = Path(tempfile.mkdtemp(prefix="sealroom-demo-testbed-"))
        elif home.exists() and any(home.iterdir()):
            raise LabError(f"{home} is not empty; the demo needs a fresh folder")
        home = home.resolve()
        Workspace.create(home)
        paths = LabPaths.of_workspace(home).create()
        plan = reference_plan(scale=SCALES[scale])
        heading(out, f"[bold]Experiment testbed: the reference robustness experiment ({scale})[/]")
        out.print(f"  demo folder {home}", highlight=False)
        started = time.monotonic()
        runner = _run_inline if inline else _run_served
        statuses, report = runner(paths, plan, home / "report", out)
    seconds = time.monotonic() - started
    tracking = paths.default_tracking_uri
    failed = {k: s for k, s in statuses.items() if s != "succeeded"}
    if json_out:
        emit_json(
            {
                "home": str(home),
                "jobs": statuses,
                "report": {name: str(path) for name, path in report.items()},
                "mlflow_tracking_uri": tracking if not inline else None,
                "seconds": round(seconds, 1),
            }
        )
    else:
        _summary(report, paths, tracking, inline, seconds)
    if failed:
        raise SystemExit(1)


def _summary(
    report: dict[str, Path], paths: Any, tracking: str, inline: bool, seconds: float
) -> None:
    from rich.table import Table

    heading(console, "[bold green]Done[/]")
    if "table_csv" in report:
        rows = list(csv.DictReader(io.StringIO(report["table_csv"].read_text())))
        table = Table(title="clean vs robust accuracy (RobustBench style, L∞)")
        for column in rows[0] if rows else []:
            table.add_column(column)
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
    for name, path in report.items():
        console.print(f"  {name:<20} {path}", highlight=False)
    if inline:
        console.print(f"  (--inline: no MLflow tracking; the lab store is at {paths.db})")
    else:
        console.print(
            f"  MLflow store: {paths.mlflow_db} (artifacts {paths.mlflow_artifacts})",
            highlight=False,
        )
        console.print(
            f"  browse it: mlflow ui --backend-store-uri {tracking} "
            f"--default-artifact-root {paths.mlflow_artifacts}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"  ({seconds:.0f} s)", highlight=False)


# ----------------------------------------------------------------------- in-process


def _run_inline(
    paths: Any, plan: Any, dest: Path, out: Any
) -> tuple[dict[str, str], dict[str, Path]]:
    from sealroom.lab.artifacts import ArtifactStore
    from sealroom.lab.reference.inline import run_inline
    from sealroom.lab.store import LabStore

    view: list[StageView] = []
    keys: dict[str, str] = {}

    def show(jobs: list[Any]) -> None:
        if not view:
            keys.update({job.id: plan.jobs[i].key for i, job in enumerate(jobs)})
            view.append(StageView(bars, keys))
        view[0].update([(j.id, j.status, j.reason) for j in jobs])

    with progress() as bars:
        # One job at a time: in-process jobs share torch's global state, and two at once
        # race (an attack's backward pass during another job's ONNX export raises "Backward
        # called while converting to ONNX"; ART's first import can deadlock on its lock).
        jobs = run_inline(paths, plan, slots=1, timeout_s=PLAN_TIMEOUT_S, on_progress=show)
    statuses = {keys[j.id]: j.status for j in jobs}
    report: dict[str, Path] = {}
    if jobs[-1].status == "succeeded":
        store = LabStore.open(paths)
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for record in store.artifacts(jobs[-1].id):
                blob = ArtifactStore(paths).read(record)
                (dest / blob.filename).write_bytes(blob.data)
                report[record.name] = dest / blob.filename
        finally:
            store.close()
    return statuses, report


# ----------------------------------------------------------------------- lab server


def _run_served(
    paths: Any, plan: Any, dest: Path, out: Any
) -> tuple[dict[str, str], dict[str, Path]]:
    from sealroom.errors import plural
    from sealroom.lab.client import LabClient
    from sealroom.lab.reference.plan import entry_point_texts

    log_path = paths.root / "demo-server.log"
    server, url = _start_server(paths, log_path, out)
    try:
        with LabClient.from_workspace(paths) as client:
            experiment = plan.jobs[0].experiment
            client.create_experiment(experiment, "reference robustness experiment (demo)")
            for text in entry_point_texts().values():
                client.add_entry_point(text)
            submitted = client.submit_plan(plan.model_dump(mode="json"))
            keys = {job["id"]: plan.jobs[i].key for i, job in enumerate(submitted)}
            out.print(
                f"  submitted {plural(len(keys), 'job')} to the lab at {url}", highlight=False
            )
            jobs = _wait(client, keys, lambda: server.poll() is None)
            statuses = {keys[j["id"]]: j["status"] for j in jobs}
            report: dict[str, Path] = {}
            last = submitted[-1]["id"]
            if statuses[keys[last]] == "succeeded":
                dest.mkdir(parents=True, exist_ok=True)
                names = {a["name"] for a in client.artifacts(last)}
                for name in REPORT_FILES:
                    if name in names:
                        report[name] = client.download_artifact(last, name, dest)
            _wait_tracked(client, list(keys))
    finally:
        _stop_server(server)
    return statuses, report


def _start_server(paths: Any, log_path: Path, out: Any) -> tuple[subprocess.Popen[bytes], str]:
    """`sealroom lab start --port 0` in this workspace, as a child process; ready once it
    wrote the lab's server file naming its own pid."""
    from sealroom.lab.client import read_server_file

    env = {**os.environ, "SEALROOM_HOME": str(paths.root.parent)}
    command = [sys.executable, "-c", "from sealroom.cli.main import main; main()"]
    command += ["lab", "start", "--port", "0", "--queue", "default=2"]
    out.print("  starting the lab server (local Ray, MLflow tracking) …")
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            url, pid = read_server_file(paths)
        except LabError:
            pid = None
        if pid == server.pid:
            out.print(f"  lab server at {url} (pid {server.pid}; log {log_path})", highlight=False)
            return server, url
        time.sleep(0.5)
    _stop_server(server)
    raise LabError(f"the lab server did not start; see {log_path}")


def _wait(client: Any, keys: dict[str, str], alive: Callable[[], bool]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + PLAN_TIMEOUT_S
    with progress() as bars:
        view = StageView(bars, keys)
        while True:
            jobs = [j for j in client.list_jobs() if j["id"] in keys]
            view.update([(j["id"], j["status"], j.get("reason", "")) for j in jobs])
            if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs):
                return jobs
            if not alive():
                raise LabError("the lab server stopped before the plan finished")
            if time.monotonic() > deadline:
                for job in jobs:
                    if job["status"] not in ("succeeded", "failed", "cancelled"):
                        client.cancel_job(job["id"])
                deadline = float("inf")
            time.sleep(1.0)


def _wait_tracked(client: Any, job_ids: list[str], wait_s: float = 30.0) -> None:
    """Give the server's tracking thread time to record every attempt in MLflow."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        attempts = [a for job_id in job_ids for a in client.attempts(job_id)]
        if all(a.get("tracked") for a in attempts if a.get("status") != "running"):
            return
        time.sleep(1.0)


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
