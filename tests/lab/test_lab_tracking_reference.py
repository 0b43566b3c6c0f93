"""End to end with the real runner: the reference experiment's train entry point (load_data →
train → export) runs a tiny MLP in-process, the tracker mirrors it, and the store holds a
registered ONNX model made by torch's exporter and no pickle anywhere (the npz data
artifact included). Slow (torch import, a real training step): `make test-all`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.inline_engine import InlineEngine
from sealroom.lab.nopickle import scan_tracking_store
from sealroom.lab.paths import LabPaths
from sealroom.lab.reference.plan import entry_point_texts
from sealroom.lab.scheduler import Scheduler
from sealroom.lab.spec import TERMINAL, JobRequest
from sealroom.lab.store import LabStore
from sealroom.lab.tracking import Tracker

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("torch")


@pytest.mark.slow
def test_reference_training_job_is_tracked_with_an_onnx_model_and_no_pickle(
    tmp_path: Path,
) -> None:
    paths = LabPaths.of_workspace(tmp_path).create()
    store = LabStore.open(paths)
    engine = InlineEngine(slots=1)
    try:
        store.add_entry_point(entry_point_texts()["robustness-train.yaml"])
        store.create_experiment("robustness")
        scheduler = Scheduler(store, engine, ArtifactStore(paths))
        parameters = {"arch": "mlp", "dataset": "digits", "train_size": 200, "test_size": 50,
                      "epochs": 1}  # fmt: skip
        job = scheduler.submit(
            JobRequest(
                experiment="robustness", entry_point="robustness-train", parameters=parameters
            )
        ).id
        deadline = time.monotonic() + 300
        while store.get_job(job).status not in TERMINAL and time.monotonic() < deadline:
            scheduler.tick(0.1)
        assert store.get_job(job).status == "succeeded", store.get_job(job).reason
        run_id = Tracker.for_lab(paths).record(store, job, 1)
    finally:
        engine.shutdown()
    client = mlflow.MlflowClient(
        paths.default_tracking_uri, registry_uri=paths.default_tracking_uri
    )
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["arch"] == "mlp"
    assert run.data.metrics, "the training task reported no metric"
    [version] = client.search_model_versions("name = 'robustness-mlp'")
    assert version.tags["sealroom.job"] == job and version.run_id == run_id
    assert [m.mlflow_version for m in store.list_models()] == [str(version.version)]
    assert {a.path for a in client.list_artifacts(run_id)} == {"data", "model"}
    assert scan_tracking_store(paths.mlflow_db, paths.mlflow_artifacts) == []
    store.close()
