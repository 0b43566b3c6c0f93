"""Shared by the Ray tests: one local Ray per test module, and small execute functions that
stand in for the runner (they run on Ray workers, so they live in an importable module)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.engine_ray import HEALTH_CHECK

RAY_QUEUES = {"default": 2.0, "b": 1.0}


def local_ray(tmp_home: Path) -> Iterator[None]:
    """A private local Ray serving RAY_QUEUES; shut down after the module's tests."""
    import ray

    assert not ray.is_initialized(), "another test module left Ray running"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = worker_pythonpath()  # Ray workers inherit it from the raylet
    ray.init(
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
