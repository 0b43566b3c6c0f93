"""RayEngine on one module-scoped local Ray: outcomes come back whole, cancel kills the
worker, a killed worker is "lost", nodes become workers with their queues."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.engine_ray import (
    RayEngine,
    keep_ray_token_private,
    outcome_from_wire,
    outcome_to_wire,
    payload_from_wire,
    payload_to_wire,
    ray_token_path,
)

pytest.importorskip("ray")

from ray_helpers import RAY_QUEUES, fake_execute, local_ray, worker_pythonpath

from sealroom.errors import LabError
from sealroom.lab.workers import worker_command


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from local_ray(tmp_path_factory.mktemp("ray"))


@pytest.fixture
def engine(ray_cluster: None) -> Iterator[RayEngine]:
    engine = RayEngine(execute=fake_execute)
    yield engine
    engine.shutdown()


def payload(job: str, attempt: int = 1, **params: object) -> AttemptPayload:
    return AttemptPayload(
        job_id=job,
        attempt=attempt,
        experiment="exp",
        entry_point="name: ep\n",
        parameters=dict(params),
        seed=7,
    )


def wait_for(engine: RayEngine, count: int, limit_s: float = 20.0) -> list[AttemptOutcome]:
    found: list[AttemptOutcome] = []
    deadline = time.monotonic() + limit_s
    while len(found) < count:
        assert time.monotonic() < deadline, f"only {len(found)} of {count} attempts ended"
        found.extend(engine.poll(0.2))
    return found


def wait_pid(path: Path, limit_s: float = 20.0) -> int:
    deadline = time.monotonic() + limit_s
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    return int(path.read_text())


def test_wire_round_trip_keeps_every_field() -> None:
    blob = ArtifactBlob("m", "onnx", "m.onnx", bytes(range(256)))
    sent = AttemptPayload(
        "job-1", 2, "e", "text", {"a": [1, 2]}, {"${jobs.job-0.artifacts.m}": blob}, 3, 9.5
    )
    assert payload_from_wire(payload_to_wire(sent)) == sent
    outcome = AttemptOutcome(
        "job-1",
        2,
        "failed",
        "boom",
        {"m": blob},
        [MetricPoint("acc", 0.5, 3)],
        {"a": "1"},
        "log",
        "w",
        1.0,
        2.0,
    )
    assert outcome_from_wire(outcome_to_wire(outcome)) == outcome


def test_attempt_outcome_comes_back_with_artifacts_metrics_and_worker(engine: RayEngine) -> None:
    blob = ArtifactBlob("in", "npz", "in.npz", b"\x00\x01")
    sent = AttemptPayload(
        "job-1", 1, "exp", "ep", {"k": 1}, {"${jobs.job-0.artifacts.in}": blob}, 7
    )
    started = time.monotonic()
    engine.submit(sent, "default")
    assert engine.running() == {("job-1", 1)}
    [outcome] = wait_for(engine, 1)
    print(f"first dispatch round trip {time.monotonic() - started:.3f}s")
    assert outcome.status == "succeeded", outcome.error
    assert outcome.artifacts["out"].data == b"\x00\x01\x00\x01"
    assert outcome.metrics == [MetricPoint("loss", 0.5, 1), MetricPoint("loss", 0.25, 2)]
    assert outcome.logs == "ran job-1 seed 7\n"
    assert outcome.worker and outcome.ended_at >= outcome.started_at > 0
    assert engine.running() == set()
    # per-task dispatch on a warm pool
    started = time.monotonic()
    for n in range(10):
        engine.submit(payload(f"job-{n + 2}"), "b")
    outcomes = wait_for(engine, 10)
    print(f"per-task dispatch (10 on queue b, 1 slot) {(time.monotonic() - started) / 10:.3f}s")
    assert {o.status for o in outcomes} == {"succeeded"}


def test_raising_execute_is_one_failed_line(engine: RayEngine) -> None:
    engine.submit(payload("job-9", fail="bad step"), "default")
    [outcome] = wait_for(engine, 1)
    assert (outcome.status, outcome.error) == ("failed", "RuntimeError: bad step")


def test_cancel_kills_the_running_attempt(engine: RayEngine, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    engine.submit(payload("job-3", 2, sleep=60, pidfile=str(pidfile)), "default")
    pid = wait_pid(pidfile)
    started = time.monotonic()
    engine.cancel("job-3", 2)
    [outcome] = wait_for(engine, 1, limit_s=15)
    assert (outcome.job_id, outcome.attempt, outcome.status) == ("job-3", 2, "cancelled")
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while _alive(pid):  # the worker process running it is gone, not left sleeping
        assert time.monotonic() < deadline, f"worker {pid} still running after cancel"
        time.sleep(0.1)


def test_killed_worker_process_is_lost(engine: RayEngine, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    engine.submit(payload("job-4", sleep=60, pidfile=str(pidfile)), "default")
    os.kill(wait_pid(pidfile), signal.SIGKILL)
    [outcome] = wait_for(engine, 1, limit_s=15)
    assert (outcome.job_id, outcome.status) == ("job-4", "lost")
    assert outcome.error is not None and outcome.error.startswith("worker lost: ")
    # the pool recovers: the next attempt runs
    engine.submit(payload("job-4", 2), "default")
    [again] = wait_for(engine, 1)
    assert again.status == "succeeded"


def test_attempt_on_an_unserved_queue_can_be_cancelled(engine: RayEngine) -> None:
    engine.submit(payload("job-5"), "gpu")
    assert engine.poll(1.0) == []
    assert engine.running() == {("job-5", 1)}
    engine.cancel("job-5", 1)
    [outcome] = wait_for(engine, 1, limit_s=10)
    assert outcome.status == "cancelled"


def test_attempt_stranded_on_an_unserved_queue_is_lost(ray_cluster: None) -> None:
    engine = RayEngine(execute=fake_execute, stranded_after_s=1.0)
    try:
        engine.submit(payload("job-6"), "gone")
        started = time.monotonic()
        [outcome] = wait_for(engine, 1, limit_s=10)
        assert (outcome.status, outcome.error) == (
            "lost",
            "worker lost: no live worker serves queue gone",
        )
        assert 1.0 <= time.monotonic() - started < 5
        assert engine.running() == set()
    finally:
        engine.shutdown()


def test_workers_are_nodes_with_their_queue_slots(engine: RayEngine) -> None:
    [worker] = engine.workers()
    assert worker.alive and worker.queues == ("b", "default")
    assert worker.slots == RAY_QUEUES
    assert engine.address.count(":") == 1


def test_the_ray_token_is_made_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray writes it 0644; whoever reads it may submit tasks (code) to the lab's Ray
    monkeypatch.setenv("HOME", str(tmp_path))
    token = ray_token_path()
    token.parent.mkdir()
    token.write_text("t" * 64)
    token.chmod(0o644)
    keep_ray_token_private()
    assert token.stat().st_mode & 0o777 == 0o600


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_worker_command_checks_its_arguments() -> None:
    command = worker_command("10.0.0.1:6379", "gpu", 2)
    assert (
        command[-7:]
        == [
            "--address",
            "10.0.0.1:6379",
            "--resources",
            '{"queue:gpu": 2}',
            "--block",
            "--num-cpus",
            "2",
        ][-7:]
    )
    for bad, message in [
        (("nohost", "gpu", 1), "is not HOST:PORT"),
        (("h:1", "GPU Q", 1), "queue name 'GPU Q'"),
        (("h:1", "gpu", 0), "--slots 0"),
    ]:
        with pytest.raises(LabError, match=message):
            worker_command(*bad)


@pytest.mark.slow  # about 15 s on two cores: a second raylet joins, then dies
def test_joined_worker_serves_its_queue_and_its_death_is_noticed(
    engine: RayEngine, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": worker_pythonpath(), "RAY_USAGE_STATS_ENABLED": "0"}
    node = subprocess.Popen(
        worker_command(engine.address, "gpu", 1),
        env=env,
        start_new_session=True,  # the node's raylet and workers die with its group
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        while "gpu" not in {q for w in engine.workers() for q in w.queues}:
            assert time.monotonic() - started < 30, "joined worker never showed up"
            assert node.poll() is None, "ray start exited"
            time.sleep(0.2)
        print(f"worker joined in {time.monotonic() - started:.1f}s")
        pidfile = tmp_path / "pid"
        engine.submit(payload("job-7", sleep=60, pidfile=str(pidfile)), "gpu")
        wait_pid(pidfile, limit_s=30)
        os.killpg(node.pid, signal.SIGKILL)  # the whole node: raylet, its workers
        died = time.monotonic()
        [outcome] = wait_for(engine, 1, limit_s=15)
        assert (outcome.job_id, outcome.status) == ("job-7", "lost")
        while "gpu" in {q for w in engine.workers() for q in w.queues}:
            assert time.monotonic() - died < 10, "dead worker still listed after 10 s"
            time.sleep(0.2)
        print(f"node death noticed in {time.monotonic() - died:.1f}s")
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=10)
        forget_joined_cluster(engine.address)


def forget_joined_cluster(address: str) -> None:
    """`ray start --address` records the cluster in /tmp/ray/ray_current_cluster, where a
    later plain ray.init() would find it: remove it when it names this test's cluster."""
    current = Path("/tmp/ray/ray_current_cluster")
    try:
        if current.read_text().strip() == address:
            current.unlink()
    except OSError:
        pass
