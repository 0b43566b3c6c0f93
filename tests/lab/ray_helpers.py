"""Shared by the Ray tests: one local Ray per test module, and small execute functions that
stand in for the runner (they run on Ray workers, so they live in an importable module)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import STDOUT, Popen
from typing import Any

from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.engine_ray import HEALTH_CHECK, RayEngine
from sealroom.lab.paths import LabPaths
from sealroom.lab.service import LabService, RecordsAttempts

RAY_QUEUES = {"default": 2.0, "b": 1.0}


def local_ray(tmp_home: Path) -> Iterator[None]:
    """A private local Ray serving RAY_QUEUES; shut down after the module's tests."""
    import ray

    assert not ray.is_initialized(), "another test module left Ray running"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = worker_pythonpath()  # Ray workers inherit it from the raylet
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        resources={f"queue:{q}": n for q, n in RAY_QUEUES.items()},
        _system_config=HEALTH_CHECK,
    )
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved
    try:
        yield
    finally:
        ray.shutdown()


def worker_pythonpath() -> str:
    """This folder (fake_execute lives here) and the checkout, ahead of what was set."""
    here = Path(__file__).resolve().parent
    parts = [str(here), str(here.parents[1]), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


def fake_execute(payload: AttemptPayload) -> AttemptOutcome:
    """Parameters: sleep (s), pidfile (writes the worker's pid), fail (message), echo (bytes
    of each input doubled into an artifact)."""
    params = payload.parameters
    started = time.time()
    pidfile = params.get("pidfile")
    if isinstance(pidfile, str):
        Path(pidfile).write_text(str(os.getpid()))
    sleep = params.get("sleep", 0)
    assert isinstance(sleep, int | float)
    time.sleep(float(sleep))
    if isinstance(params.get("fail"), str):
        raise RuntimeError(str(params["fail"]))
    data = b"".join(blob.data * 2 for blob in payload.inputs.values()) or b"x"
    return AttemptOutcome(
        job_id=payload.job_id,
        attempt=payload.attempt,
        status="succeeded",
        artifacts={"out": ArtifactBlob("out", "text", "out.txt", data)},
        metrics=[MetricPoint("loss", 0.5, 1), MetricPoint("loss", 0.25, 2)],
        params={k: str(v) for k, v in params.items()},
        logs=f"ran {payload.job_id} seed {payload.seed}\n",
        started_at=started,
        ended_at=time.time(),
    )


# --------------------------------------------------------------------------- server processes


def start_story_server(
    root: Path, log: Path, limit_s: float = 120.0, ray_address: str | None = None
) -> tuple[Popen[bytes], str]:
    """``lab_story_tasks.serve(root)`` in a new session (its Ray shares it); returns it
    and its URL once ``server.json`` names it."""
    env = {**os.environ, "PYTHONPATH": worker_pythonpath(), "RAY_USAGE_STATS_ENABLED": "0"}
    code = f"import lab_story_tasks as s; s.serve({str(root)!r}, {ray_address!r})"
    with log.open("ab") as out:
        proc = Popen(
            [sys.executable, "-c", code], env=env, stdout=out, stderr=STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + limit_s
    server_file = root / "server.json"
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"lab server exited {proc.returncode}: {tail(log)}")
        if time.monotonic() > deadline:
            kill_session(proc)
            raise AssertionError(f"lab server not ready after {limit_s:.0f}s: {tail(log)}")
        try:
            data = json.loads(server_file.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("pid") == proc.pid:
            return proc, str(data["url"])
        time.sleep(0.1)


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def session_pids(sid: int) -> set[int]:
    """Live (not zombie) processes in session ``sid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.add(int(entry.name))
    return found


def session_commands(sid: int) -> list[str]:
    """Command lines of the live processes in session ``sid``."""
    found = []
    for pid in session_pids(sid):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def kill_session(proc: Popen[bytes], limit_s: float = 15.0, *, everything: bool = False) -> float:
    """SIGKILL the process group of ``proc`` (a lab server: its Ray goes with it) and wait
    until nothing of its session lives; ``everything``: SIGKILL every process of the
    session at once (a ``ray start`` cluster: its daemons outlive the command). Returns
    the seconds that took; fails (after killing what is left) past ``limit_s``."""
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if everything:
        for pid in session_pids(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=limit_s)
    while session_pids(proc.pid):
        if time.monotonic() - started > limit_s:
            left = session_pids(proc.pid)
            for pid in left:  # our own children: clean up, then fail
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"processes of the killed session left: {left}")
        time.sleep(0.1)
    return time.monotonic() - started


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_head(log: Path, limit_s: float = 60.0) -> tuple[Popen[bytes], str]:
    """A Ray cluster head of its own (``ray start --head --block``, new session) serving
    queue ``default``, as a lab joined with ``--ray-address`` finds one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": worker_pythonpath(), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"]
    command += ["--port", str(port), "--num-cpus", "2", "--include-dashboard=false"]
    command += ["--resources", json.dumps({"queue:default": 2})]
    with log.open("ab") as out:
        proc = Popen(command, env=env, stdout=out, stderr=STDOUT, start_new_session=True)
    deadline = time.monotonic() + limit_s
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"ray start --head exited {proc.returncode}: {tail(log)}")
        if time.monotonic() > deadline:
            kill_session(proc)
            raise AssertionError(f"ray head not up after {limit_s:.0f}s: {tail(log)}")
        if "Ray runtime started" in log.read_text(errors="replace"):
            return proc, f"127.0.0.1:{port}"
        time.sleep(0.2)


def wait_until(check: Callable[[], Any], what: str, limit_s: float = 60.0) -> Any:
    """``check()``'s first truthy value, polled until ``limit_s`` (then the test fails)."""
    deadline = time.monotonic() + limit_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {limit_s:.0f}s"
        time.sleep(0.05)
    return value


@contextlib.contextmanager
def story_service(root: Path, tracker: RecordsAttempts | None = None) -> Iterator[LabService]:
    """A started LabService on the module's Ray, running the story tasks, with the
    ``story`` experiment and the FIRST entry point in its catalogue."""
    from lab_story_tasks import FIRST, story_execute

    service = LabService(LabPaths(root), RayEngine(execute=story_execute), tracker)
    service.store.create_experiment("story")
    service.store.add_entry_point(FIRST)
    service.start()
    try:
        yield service
    finally:
        service.stop()
