"""What the experiment testbed costs around a job, against bare Ray in the same run.

(a) cold start: ``sealroom lab start`` as a subprocess (fresh workspace, private local Ray)
    until the first job, a tiny ``load_data`` (sklearn digits, 20 + 10 images) submitted
    through the REST client, has succeeded; then until MLflow has its run (tracking runs in
    its own thread, off the scheduling path), and a second job's latency on the warm lab.
(b) dispatch overhead: N empty jobs (the attempt function returns "succeeded" at once, so
    only the lab is measured: store transactions, scheduler ticks, Ray submission and
    polling) submitted together and one at a time, against the same N bare Ray tasks
    (max_retries=0, same queue resource) in the same Ray.
(c) MLflow cost per tracked attempt, without and with an ONNX model to register.

Prints figures and ratios; asserts nothing about timings.

    python benchmarks/bench_lab.py [--jobs 40] [--serial 10] [--models 5] [--skip-start]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)  # Ray workers and the server subprocess import this tree's sealroom

from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload  # noqa: E402
from sealroom.lab.paths import LabPaths  # noqa: E402
from sealroom.workspace import Workspace  # noqa: E402

TINY = """\
name: tiny
description: the smallest real job (bench)
steps:
  - name: data
    task: load_data
    args: {dataset: digits, train_size: 20, test_size: 10}
"""
# (b)/(c) jobs never reach the runner (see empty_attempt); the entry point only has to pass
# the store's check, so it names a built-in task and maps its npz output to "model".
EMPTY = """\
name: empty
parameters:
  model: {type: bool, default: false}
steps:
  - name: data
    task: load_data
"""
WITH_MODEL = (
    EMPTY.replace("name: empty", "name: with-model") + "artifacts:\n  model: ${steps.data.npz}\n"
)


def tiny_onnx() -> bytes:
    """A 4 → 2 linear layer as ONNX, built without torch."""
    from onnx import TensorProto, helper

    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [0.1 * i for i in range(8)])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def empty_attempt(payload: AttemptPayload) -> AttemptOutcome:
    """An attempt that does nothing (plus an ONNX artifact when the job asks for one)."""
    now = time.time()
    artifacts = {}
    if payload.parameters.get("model"):
        artifacts["model"] = ArtifactBlob("model", "onnx", "model.onnx", tiny_onnx())
    return AttemptOutcome(
        payload.job_id, payload.attempt, "succeeded", artifacts=artifacts,
        started_at=now, ended_at=now,
    )  # fmt: skip


def bare(i: int) -> dict[str, int]:
    return {"i": i}


def workspace(tmp: Path, name: str) -> LabPaths:
    return LabPaths.of_workspace(Workspace.create(tmp / name).home).create()


# --------------------------------------------------------------------------- (a)


@contextlib.contextmanager
def lab_server(home: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    script = Path(sys.executable).with_name("sealroom")
    cmd = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from sealroom.cli.main import main; main()"]
    )
    env = {**os.environ, "SEALROOM_HOME": str(home)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "lab", "start", "--port", "0", "--queue", "default=1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(
    what: str, check: Any, limit_s: float, proc: subprocess.Popen[bytes], log: Path
) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"lab server exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(0.02)
    raise SystemExit(f"{what}: not within {limit_s:.0f} s; server log: {log.read_text()[-2000:]}")


def cold_start(tmp: Path) -> dict[str, float]:
    from sealroom.lab.client import LabClient

    paths = workspace(tmp, "cold")
    log = tmp / "server.log"
    started = time.perf_counter()
    with lab_server(paths.root.parent, log) as proc:

        def ready() -> bool:
            return bool(json.loads(paths.server_file.read_text()).get("pid") == proc.pid)

        wait_for("server.json", ready, 120, proc, log)
        t_ready = time.perf_counter() - started
        client = LabClient.from_workspace(paths)
        client.create_experiment("bench")
        client.add_entry_point(TINY)

        def run_one() -> tuple[str, float]:
            t0 = time.perf_counter()
            job = client.submit_job({"experiment": "bench", "entry_point": "tiny"})["id"]

            def done() -> bool:
                status = client.get_job(job)["status"]
                if status in {"failed", "cancelled"}:
                    raise SystemExit(f"{job} {status}: {client.get_job(job)['reason']}")
                return bool(status == "succeeded")

            wait_for(f"{job} succeeded", done, 300, proc, log)
            return job, time.perf_counter() - t0

        first, _ = run_one()
        t_first = time.perf_counter() - started

        def tracked() -> bool:
            return bool(client.attempts(first)[0].get("mlflow_run_id"))

        wait_for(f"{first} tracked", tracked, 120, proc, log)
        t_tracked = time.perf_counter() - started
        _, warm = run_one()
        client.close()
    return {"ready": t_ready, "first": t_first, "tracked": t_tracked, "warm_job": warm}


# --------------------------------------------------------------------------- (b), (c)


def dispatch_and_tracking(tmp: Path, n: int, serial: int, models: int) -> dict[str, float]:
    import ray

    from sealroom.lab.engine_ray import RayEngine
    from sealroom.lab.service import LabService
    from sealroom.lab.spec import JobRequest
    from sealroom.lab.tracking import Tracker

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        resources={"queue:default": 2.0},
    )  # fmt: skip
    remote = ray.remote(max_retries=0, num_cpus=1, resources={"queue:default": 1})(bare)
    out: dict[str, float] = {}
    paths = workspace(tmp, "dispatch")
    service = LabService(paths, RayEngine(execute=empty_attempt), tracker=None).start()
    try:
        store, scheduler = service.store, service.scheduler
        store.create_experiment("bench")
        store.add_entry_point(EMPTY)
        store.add_entry_point(WITH_MODEL)

        def lab_jobs(count: int, entry_point: str = "empty", **params: Any) -> list[str]:
            request = JobRequest(experiment="bench", entry_point=entry_point, parameters=params)
            return [scheduler.submit(request).id for _ in range(count)]

        def wait_done(ids: list[str]) -> None:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                statuses = [store.get_job(j).status for j in ids]
                if all(s == "succeeded" for s in statuses):
                    return
                bad = [
                    f"{j} {s}"
                    for j, s in zip(ids, statuses, strict=True)
                    if s in {"failed", "cancelled"}
                ]
                if bad:
                    raise SystemExit(
                        f"bench job did not succeed: {bad[0]}: {store.get_job(ids[0]).reason}"
                    )
                time.sleep(0.005)
            raise SystemExit("bench jobs not done in 600 s")

        # warm both paths (worker processes, imports) before timing
        ray.get([remote.remote(i) for i in range(4)])
        wait_done(lab_jobs(4))

        t0 = time.perf_counter()
        ray.get([remote.remote(i) for i in range(n)])
        out["bare_batch_ms"] = (time.perf_counter() - t0) * 1000 / n
        t0 = time.perf_counter()
        wait_done(lab_jobs(n))
        out["lab_batch_ms"] = (time.perf_counter() - t0) * 1000 / n

        t0 = time.perf_counter()
        for i in range(serial):
            ray.get(remote.remote(i))
        out["bare_serial_ms"] = (time.perf_counter() - t0) * 1000 / serial
        t0 = time.perf_counter()
        for _ in range(serial):
            wait_done(lab_jobs(1))
        out["lab_serial_ms"] = (time.perf_counter() - t0) * 1000 / serial

        wait_done(lab_jobs(models, "with-model", model=True))
        untracked = store.untracked_attempts()
        plain = [a for a in untracked if store.get_job(a.job_id).entry_point == "empty"][:n]
        with_model = [a for a in untracked if store.get_job(a.job_id).entry_point == "with-model"]
        t0 = time.perf_counter()
        tracker = Tracker.for_lab(paths)
        tracker.client.search_experiments()  # import + schema setup, paid once per server
        out["mlflow_open_s"] = time.perf_counter() - t0
        tracker.record(store, plain[0].job_id, plain[0].number)  # first run: experiment setup
        t0 = time.perf_counter()
        for a in plain[1:]:
            tracker.record(store, a.job_id, a.number)
        out["track_plain_ms"] = (time.perf_counter() - t0) * 1000 / max(1, len(plain) - 1)
        t0 = time.perf_counter()
        for a in with_model:
            tracker.record(store, a.job_id, a.number)
        out["track_model_ms"] = (time.perf_counter() - t0) * 1000 / max(1, len(with_model))
        from sealroom.lab.nopickle import scan_tracking_store

        problems = scan_tracking_store(paths.mlflow_db, paths.mlflow_artifacts)
        out["pickle_problems"] = float(len(problems))
    finally:
        service.stop()
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="empty jobs per batch (b)")
    parser.add_argument("--serial", type=int, default=10, help="jobs one at a time (b)")
    parser.add_argument("--models", type=int, default=5, help="attempts with an ONNX model (c)")
    parser.add_argument("--skip-start", action="store_true", help="skip (a)")
    args = parser.parse_args()
    print(f"bench_lab: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_start:
            a = cold_start(tmp)
            print("(a) sealroom lab start → first finished job (tiny load_data through the API)")
            print(f"    server ready            {a['ready']:7.2f} s")
            print(f"    first job succeeded     {a['first']:7.2f} s after start")
            print(f"    ... and in MLflow       {a['tracked']:7.2f} s after start")
            print(f"    second job (warm lab)   {a['warm_job']:7.2f} s  "
                  f"(cold/warm {a['first'] - a['ready']:.2f}/{a['warm_job']:.2f} s)")  # fmt: skip
        b = dispatch_and_tracking(tmp, args.jobs, args.serial, args.models)
    print("(b) dispatch overhead per empty job vs a bare Ray task (same Ray, 2 CPUs)")
    for label, key in (
        (f"batch of {args.jobs}", "batch"),
        (f"one at a time ({args.serial})", "serial"),
    ):
        lab_ms, bare_ms = b[f"lab_{key}_ms"], b[f"bare_{key}_ms"]
        print(
            f"    {label}: lab {lab_ms:8.1f} ms/job, bare Ray {bare_ms:6.1f} ms/task, "
            f"ratio {lab_ms / bare_ms:6.1f}x"
        )
    print("(c) MLflow tracking (its own thread in the server; not on the scheduling path)")
    print(f"    open store (import + schema)  {b['mlflow_open_s']:6.2f} s once per server")
    print(
        f"    per attempt, no model         {b['track_plain_ms']:6.1f} ms "
        f"({b['track_plain_ms'] / b['lab_batch_ms']:.1f}x the lab's batch dispatch per job)"
    )
    print(f"    per attempt, one ONNX model   {b['track_model_ms']:6.1f} ms (log_model + registry)")
    print(f"    pickle problems in the store  {int(b['pickle_problems'])}")


if __name__ == "__main__":
    main()
