"""The lab database: catalogue, versions, heartbeats, models, tracking marks, reopening."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from core_kit import STEP, accept, fast_dir, lab_at

from sealroom.errors import LabError
from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.engine import WorkerInfo
from sealroom.lab.paths import LabPaths
from sealroom.lab.spec import JobRequest
from sealroom.lab.store import LabStore
from sealroom.lab.store_records import MIGRATIONS


@pytest.fixture
def store():
    root = fast_dir()
    s = LabStore.open(LabPaths(root), check=accept)
    yield s
    s.close()
    shutil.rmtree(root, ignore_errors=True)


def test_experiments_are_created_once_and_unknown_ones_are_refused(store):
    first = store.create_experiment("robustness", "fgsm vs pgd")
    again = store.create_experiment("robustness", "other words")
    assert first == again and first.description == "fgsm vs pgd"
    assert [e.name for e in store.list_experiments()] == ["robustness"]
    assert first.to_json()["name"] == "robustness"
    with pytest.raises(LabError, match=r"^unknown experiment 'nope' \(create it first\)$"):
        store.get_experiment("nope")
    with pytest.raises(LabError, match="experiment name 'Bad Name'"):
        store.create_experiment("Bad Name")


def test_entry_point_versions_follow_the_text(store):
    v1 = store.add_entry_point(STEP)
    assert (v1.name, v1.version) == ("step", 1)
    assert store.add_entry_point(STEP) == v1  # same text: same version
    v2 = store.add_entry_point(STEP + "# tweaked\n")
    assert v2.version == 2 and v2.digest != v1.digest
    assert store.get_entry_point("step") == v2
    assert store.get_entry_point("step", 1).text == STEP
    assert [(e.name, e.version) for e in store.list_entry_points()] == [("step", 1), ("step", 2)]
    with pytest.raises(LabError, match="unknown entry point 'step' version 3"):
        store.get_entry_point("step", 3)


def test_an_invalid_entry_point_is_refused_and_nothing_is_stored(store):
    with pytest.raises(LabError, match=r"^train.yaml: steps: "):
        store.add_entry_point("name: train\nsteps: []\n", "train.yaml")

    def refuse(ep, where):
        raise LabError(f"{where}: step run: task 'noop' is not registered")

    picky = LabStore(store.paths, check=refuse)
    with pytest.raises(LabError, match="step run: task 'noop' is not registered"):
        picky.add_entry_point(STEP)
    picky.close()
    assert store.list_entry_points() == []


def test_the_default_check_is_the_runners():
    root = fast_dir()
    s = LabStore.open(LabPaths(root))
    try:
        with pytest.raises(LabError, match=r"step.yaml: step run: task 'noop' is not registered"):
            s.add_entry_point(STEP, "step.yaml")
        assert s.list_entry_points() == []
    finally:
        s.close()
        shutil.rmtree(root, ignore_errors=True)


def test_queues_and_worker_heartbeats(store):
    store.add_queue("gpu", "the big box")
    assert store.add_queue("gpu").description == "the big box"
    assert [q.name for q in store.list_queues()] == ["gpu"]
    with pytest.raises(LabError, match="unknown queue 'cpu'"):
        store.get_queue("cpu")
    a = WorkerInfo("node-a", ("gpu", "default"), "10.0.0.1", True, {"gpu": 1.0})
    b = WorkerInfo("node-b", ("default",), "10.0.0.2", True, {"default": 2.0})
    store.record_workers([a, b], 100.0)
    store.record_workers([a], 105.0)
    workers = {w.worker_id: w for w in store.list_workers()}
    assert (workers["node-a"].alive, workers["node-a"].last_heartbeat) == (True, 105.0)
    assert workers["node-a"].queues == ("default", "gpu")
    assert (workers["node-b"].alive, workers["node-b"].last_heartbeat) == (False, 100.0)
    assert workers["node-b"].to_json()["queues"] == ["default"]


def test_the_database_survives_reopening_at_the_latest_schema(store):
    store.create_experiment("exp")
    store.close()
    again = LabStore.open(store.paths, check=accept)
    assert [e.name for e in again.list_experiments()] == ["exp"]
    again.close()
    with sqlite3.connect(store.paths.db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert oct(store.paths.db.stat().st_mode & 0o777) == "0o600"


def test_unknown_jobs_and_attempts_are_refused_in_one_line(store):
    with pytest.raises(LabError, match=r"^unknown job 'job-4'$"):
        store.get_job("job-4")
    with pytest.raises(LabError, match="unknown job"):
        store.attempts("job-4")
    with pytest.raises(LabError, match=r"^job job-4 has no attempt 1$"):
        store.mark_tracked("job-4", 1, "run")


def test_models_tracking_marks_and_logs_of_a_finished_job():
    with lab_at() as lab:
        lab.scheduler.submit(JobRequest(experiment="exp", entry_point="step"))
        lab.run()
        store = lab.store
        m1 = store.record_model("classifier", "job-1", "out")
        assert (m1.name, m1.version, m1.mlflow_version) == ("classifier", 1, None)
        m1b = store.record_model("classifier", "job-1", "out", mlflow_version="7")
        assert (m1b.version, m1b.mlflow_version) == (1, "7")  # the same artifact: same version
        with pytest.raises(LabError, match="job job-1 has no committed artifact 'model'"):
            store.record_model("classifier", "job-1", "model")
        assert store.list_models() == [m1b]
        assert len(store.untracked_attempts()) == 1
        store.mark_tracked("job-1", 1, "run-abc")
        assert store.untracked_attempts() == []
        assert store.attempts("job-1")[0].mlflow_run_id == "run-abc"
        with pytest.raises(LabError, match=r"^job job-1 has no attempt 2$"):
            store.logs("job-1", 2)
        filtered = store.metrics(["job-1"], names=["nothing"])
        assert filtered == []
        assert {j.id for j in store.list_jobs(experiment="exp", status="succeeded")} == {"job-1"}
        assert store.list_jobs(status="failed") == []
        assert store.get_job("job-1").to_json()["depends_on"] == []


def test_a_commit_refused_by_the_database_side_leaves_no_files(tmp_path):
    root = fast_dir()
    paths = LabPaths(root)
    s = LabStore.open(paths, check=accept)
    try:
        artifacts = ArtifactStore(paths)
        blob = {"out": ArtifactBlob("out", "json", "out.json", b"{}")}
        assert not artifacts.commit("job-1", 1, blob, store=s, finish=lambda conn, recs: False)
        assert list((paths.artifacts / "job-1").iterdir()) == []
        with pytest.raises(LabError, match="job job-1: artifact 'out': kind 'pickle'"):
            artifacts.commit(
                "job-1",
                1,
                {"out": ArtifactBlob("out", "pickle", "o.pkl", b"")},
                store=s,
                finish=lambda conn, recs: True,
            )
        with pytest.raises(LabError, match=r"file name '.hidden' is not a plain file name"):
            artifacts.commit(
                "job-1",
                1,
                {"out": ArtifactBlob("out", "json", ".hidden", b"")},
                store=s,
                finish=lambda conn, recs: True,
            )
    finally:
        s.close()
        shutil.rmtree(root, ignore_errors=True)
