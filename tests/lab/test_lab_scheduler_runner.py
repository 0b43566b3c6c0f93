"""The scheduler with the real runner on the inline engine: a dependency's artifact reaches
the dependant's task as a file, a task error fails the job naming the step."""

from __future__ import annotations

import io
import shutil

import numpy as np
from core_kit import fast_dir

from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.inline_engine import InlineEngine
from sealroom.lab.paths import LabPaths
from sealroom.lab.scheduler import Scheduler
from sealroom.lab.spec import JobRequest
from sealroom.lab.store import LabStore

LOAD = """
name: load
parameters:
  train_size: {type: int, default: 40}
steps:
  - {name: data, task: load_data, args: {dataset: digits, train_size: "${parameters.train_size}",
     test_size: 20}}
artifacts:
  data: "${steps.data.npz}"
"""

READ = """
name: read
parameters:
  src: {type: artifact}
steps:
  - {name: data, task: read_data, args: {file: "${parameters.src}"}}
"""


def test_real_tasks_pass_an_artifact_from_one_job_to_the_next():
    root = fast_dir()
    paths = LabPaths(root)
    store = LabStore.open(paths)  # the runner's check_entry_point
    engine = InlineEngine()  # sealroom.lab.runner.execute
    scheduler = Scheduler(store, engine, ArtifactStore(paths))
    try:
        store.create_experiment("exp")
        store.add_entry_point(LOAD)
        store.add_entry_point(READ)
        scheduler.submit(JobRequest(experiment="exp", entry_point="load"))
        scheduler.submit(
            JobRequest(
                experiment="exp",
                entry_point="read",
                depends_on=["job-1"],
                parameters={"src": "${jobs.job-1.artifacts.data}"},
            )
        )
        scheduler.submit(
            JobRequest(experiment="exp", entry_point="load", parameters={"train_size": -5})
        )
        for _ in range(3000):
            scheduler.tick(0.05)
            if all(j.status in ("succeeded", "failed", "cancelled") for j in store.list_jobs()):
                break
        jobs = {j.id: j for j in store.list_jobs()}
        assert jobs["job-1"].status == "succeeded", jobs["job-1"].reason
        assert jobs["job-2"].status == "succeeded", jobs["job-2"].reason
        [art] = store.artifacts("job-1")
        with np.load(io.BytesIO(ArtifactStore(paths).read(art).data), allow_pickle=False) as npz:
            assert npz["x_train"].shape[0] == 40
        assert jobs["job-3"].status == "failed"
        assert jobs["job-3"].reason.startswith("attempt 1 failed: step data")
        assert "\n" not in jobs["job-3"].reason
    finally:
        engine.shutdown(wait=True)
        store.close()
        shutil.rmtree(root, ignore_errors=True)
