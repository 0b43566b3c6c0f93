"""MLflow tracking of lab attempts: runs, params, metrics, artifacts, ONNX-only models, and
idempotence across a restart. One module-scoped lab is tracked once (MLflow's sqlite schema
setup alone takes ~2 s); each test reads it back through a fresh MlflowClient, as the
``mlflow ui`` does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sealroom.errors import LabError
from sealroom.lab.nopickle import scan_tracking_store
from sealroom.lab.tracking import (
    ATTEMPT_KEY_TAG,
    MAX_PARAM_VALUE,
    Tracker,
    mlflow_name,
    model_name,
    model_version_map,
    param_value,
)
from tests.lab.lab_tracking_support import SmallLab, tiny_onnx

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallLab]:
    """job-1 succeeds (ONNX model + CSV), job-2 loses its worker once then succeeds,
        job-3 fails, job-4 is cancelled by the engine, job-5 succeeds with a file labelled ONNX that
    is not; then everything is tracked once."""
    lab = SmallLab.open(tmp_path_factory.mktemp("track"))
    jobs = [
        lab.submit("mnist", parameters={"big": "x" * 7000}),
        lab.submit(
            "mnist", parameters={"mode": "lose-once", "lr": 0.2, "seed_model": 2}, max_retries=1
        ),
        lab.submit("other", parameters={"mode": "fail", "lr": 0.3}),
        lab.submit("other", parameters={"mode": "cancel"}),
        lab.submit("other", parameters={"mode": "bad-onnx"}),
    ]
    assert jobs == ["job-1", "job-2", "job-3", "job-4", "job-5"]
    lab.settle(jobs)
    assert [lab.store.get_job(j).status for j in jobs] == [
        "succeeded",
        "succeeded",
        "failed",
        "cancelled",
        "succeeded",
    ]
    lab.tracker = Tracker.for_lab(lab.paths)
    cwd = Path.cwd()
    lab.run_ids = _record_untracked(lab.tracker, lab)
    assert Path.cwd() == cwd
    yield lab
    lab.close()


def _record_untracked(tracker: Tracker, lab: SmallLab) -> list[str]:
    """What the lab service's tracking loop does: record every untracked ended attempt."""
    return [tracker.record(lab.store, a.job_id, a.number) for a in lab.store.untracked_attempts()]


def _client(lab: SmallLab) -> Any:
    uri = lab.paths.default_tracking_uri
    return mlflow.MlflowClient(uri, registry_uri=uri)


def _run(lab: SmallLab, job: str, attempt: int) -> Any:
    client = _client(lab)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.`{ATTEMPT_KEY_TAG}` = '{job}/{attempt}'")
    assert len(runs) == 1, f"{job}/{attempt}: {len(runs)} runs"
    return runs[0]


def test_one_run_per_attempt_with_tags_and_status(lab: SmallLab) -> None:
    assert len(lab.run_ids) == 6 and len(set(lab.run_ids)) == 6
    expected = {
        ("job-1", 1): "FINISHED",
        ("job-2", 1): "FAILED",
        ("job-2", 2): "FINISHED",
        ("job-3", 1): "FAILED",
        ("job-4", 1): "KILLED",
        ("job-5", 1): "FINISHED",
    }
    for (job, attempt), status in expected.items():
        run = _run(lab, job, attempt)
        assert run.info.status == status
        assert run.info.run_name == f"{job} #{attempt}"
        tags = run.data.tags
        assert tags["sealroom.job"] == job and tags["sealroom.attempt"] == str(attempt)
        assert tags["sealroom.trust"] == "outside-room"
        assert tags["sealroom.entry_point"] == "train" and tags["sealroom.queue"] == "default"
        [record] = [a for a in lab.store.attempts(job) if a.number == attempt]
        assert record.mlflow_run_id == run.info.run_id and record.tracked
    assert "step train: boom" in _run(lab, "job-3", 1).data.tags["sealroom.error"]
    assert _run(lab, "job-2", 1).data.tags["sealroom.status"] == "lost"
    assert lab.store.untracked_attempts() == []
    assert lab.tracker.find_run("job-2", 2).info.run_id == _run(lab, "job-2", 2).info.run_id
    assert lab.tracker.find_run("job-2", 3) is None


def test_experiments_live_under_the_artifact_root_not_the_cwd(lab: SmallLab) -> None:
    client = _client(lab)
    root = lab.paths.mlflow_artifacts.resolve()
    for name in ("mnist", "other"):
        location = client.get_experiment_by_name(name).artifact_location
        assert location.startswith(root.as_uri() + "/"), location
    artifacts = client.list_artifacts(_run(lab, "job-1", 1).info.run_id, "report")
    assert [a.path for a in artifacts] == ["report/r.csv"]
    assert not (lab.home / "mlruns").exists()


def test_params_and_metrics_round_trip_with_steps(lab: SmallLab) -> None:
    client = _client(lab)
    run = _run(lab, "job-1", 1)
    params = run.data.params
    assert params["lr"] == "0.1" and params["layers"] == "[64, 32]" and params["mode"] == "ok"
    assert len(params["big"]) == MAX_PARAM_VALUE and "truncated by sealroom: 7000" in params["big"]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 1.0),
        (1, 0.5),
        (2, 0.25),
    ]
    assert run.data.metrics["acc_eps_0.1"] == 0.8
    assert _run(lab, "job-2", 2).data.params["lr"] == "0.2"
    assert _run(lab, "job-2", 1).data.metrics == {}  # a lost attempt reported nothing
    assert _run(lab, "job-3", 1).data.metrics == {"loss": 9.0}  # a failed one did


def test_registered_model_versions_map_to_jobs(lab: SmallLab) -> None:
    client = _client(lab)
    versions = model_version_map(client, ["mnist-model"])
    assert versions == {"mnist-model/1": "job-1", "mnist-model/2": "job-2"}
    assert [(m.name, m.job_id, m.mlflow_version) for m in lab.store.list_models()] == [
        ("mnist-model", "job-1", "1"),
        ("mnist-model", "job-2", "2"),
    ]
    version = client.get_model_version("mnist-model", "2")
    assert version.run_id == _run(lab, "job-2", 2).info.run_id
    assert version.tags[ATTEMPT_KEY_TAG] == "job-2/2"
    # a file labelled ONNX that is not: noted on the run, not registered, not retried
    error = _run(lab, "job-5", 1).data.tags["sealroom.model_error.model"]
    assert error.startswith("DecodeError") or "onnx" in error.lower(), error
    # no model for a failed job or a non-ONNX artifact
    assert {m.name for m in client.search_registered_models()} == {"mnist-model"}


def test_tracking_store_holds_no_pickle(lab: SmallLab) -> None:
    paths = lab.paths
    assert list(paths.mlflow_artifacts.rglob("MLmodel")), (
        "no model was logged: the scan proves nothing"
    )
    assert scan_tracking_store(paths.mlflow_db, paths.mlflow_artifacts) == []


def test_restart_does_not_duplicate_runs_or_model_versions(lab: SmallLab) -> None:
    lab.forget_tracking()
    again = Tracker.for_lab(lab.paths)  # a fresh process: no cached state
    assert sorted(_record_untracked(again, lab)) == sorted(lab.run_ids)
    client = _client(lab)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert len(client.search_runs(experiments, "")) == 6
    assert len(client.search_model_versions("name = 'mnist-model'")) == 2


def test_half_written_run_is_replaced_not_duplicated(lab: SmallLab) -> None:
    client = _client(lab)
    run_id = _run(lab, "job-1", 1).info.run_id
    client.delete_tag(run_id, "sealroom.recorded")  # as if the tracker died mid-run
    lab.forget_tracking()
    again = Tracker.for_lab(lab.paths)
    new_id = again.record(lab.store, "job-1", 1)
    assert sorted(_record_untracked(again, lab)) == sorted(set(lab.run_ids) - {run_id})
    assert new_id != run_id
    assert _run(lab, "job-1", 1).info.run_id == new_id
    versions = client.search_model_versions("name = 'mnist-model'")
    assert sorted(v.tags["sealroom.job"] for v in versions) == ["job-1", "job-2"]
    assert [(m.job_id, m.mlflow_version) for m in lab.store.list_models()] == [
        ("job-1", "3"),
        ("job-2", "2"),
    ]
    lab.run_ids[lab.run_ids.index(run_id)] = new_id


def test_running_attempt_and_overlong_parameter_name_are_refused(
    lab: SmallLab, tmp_path: Path
) -> None:
    other = SmallLab.open(tmp_path)
    try:
        other.execute.extra_params = {"p" * 300: "1"}
        running = other.submit("refusals", parameters={"mode": "block"})
        failed = other.submit("refusals", parameters={"mode": "fail"})
        other.settle([failed])
        tracker = Tracker(lab.paths.default_tracking_uri, lab.paths.mlflow_artifacts)
        with pytest.raises(LabError, match=f"{running} attempt 1 has not ended"):
            tracker.record(other.store, running, 1)
        with pytest.raises(LabError, match=f"{failed} parameter name 'pppp.*300 characters"):
            tracker.record(other.store, failed, 1)
        with pytest.raises(LabError, match=f"{failed} has no attempt 5"):
            tracker.record(other.store, failed, 5)
        assert (
            tracker.client.search_runs(
                [tracker.client.get_experiment_by_name("refusals").experiment_id], ""
            )
            == []
        )
    finally:
        other.close()


def test_names_and_values_fit_mlflow() -> None:
    assert mlflow_name("acc@eps=0.1") == "acc_eps_0.1"
    assert mlflow_name("train/loss") == "train/loss"
    assert mlflow_name("../x") == ".._x" and mlflow_name("a//b") == "a__b"
    assert (
        param_value([1, 2]) == "[1, 2]" and param_value("s") == "s" and param_value(True) == "true"
    )
    assert len(param_value("y" * 10_000)) == MAX_PARAM_VALUE


def test_scanner_finds_pickles_in_files_zips_databases_and_model_flavours(tmp_path: Path) -> None:
    """The no-pickle test above is only as good as this detector: each hiding place is found."""
    import pickle
    import sqlite3
    import zipfile

    root = tmp_path / "mlruns"
    (root / "m").mkdir(parents=True)
    (root / "m" / "clean.onnx").write_bytes(tiny_onnx() * 50)
    (root / "m" / "weights.bin").write_bytes(
        b"\0" * 10 + pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
    )
    with zipfile.ZipFile(root / "m" / "model.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"k": "v"}, protocol=4))
    (root / "m" / "MLmodel").write_text(
        "flavors:\n  pytorch: {}\n  python_function: {loader_module: mlflow.pytorch}\n"
    )
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a TEXT, b BLOB)")
        conn.execute("INSERT INTO t VALUES (?, ?)", ("plain", pickle.dumps([1, 2, 3], protocol=5)))
    problems = scan_tracking_store(db, root)
    text = "\n".join(problems)
    assert "weights.bin: pickle stream at byte 10" in text
    assert "model.zip!archive/data.pkl: pickle-style member name" in text
    assert "model.zip!archive/data.pkl: pickle stream at byte 0" in text
    assert "t.b row 0 holds a pickle" in text
    assert "flavours ['python_function', 'pytorch']" in text
    assert "clean.onnx" not in text


def test_mlflow_ui_backend_serves_the_store(lab: SmallLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same Flask app `mlflow ui --backend-store-uri sqlite:///…/lab/mlflow.db` serves,
    driven in-process (no socket): experiments, runs and registered models are listed."""
    from mlflow.server import app, handlers

    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", lab.paths.default_tracking_uri)
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", lab.paths.mlflow_artifacts.as_uri())
    monkeypatch.setattr(handlers, "_tracking_store", None)
    monkeypatch.setattr(handlers, "_model_registry_store", None)
    web = app.test_client()
    found = web.post("/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10})
    assert found.status_code == 200
    experiments = {e["name"]: e for e in found.get_json()["experiments"]}
    assert {"Default", "mnist", "other"} <= set(experiments)
    root = lab.paths.mlflow_artifacts.resolve().as_uri()
    assert all(e["artifact_location"].startswith(root) for e in experiments.values())
    runs = web.post(
        "/ajax-api/2.0/mlflow/runs/search",
        json={"experiment_ids": [experiments["mnist"]["experiment_id"]]},
    ).get_json()["runs"]
    assert sorted(r["info"]["run_name"] for r in runs) == ["job-1 #1", "job-2 #1", "job-2 #2"]
    models = web.get("/ajax-api/2.0/mlflow/registered-models/search").get_json()
    assert [m["name"] for m in models["registered_models"]] == ["mnist-model"]


def test_an_entry_point_names_its_models_from_its_parameters() -> None:
    text = (
        "name: fit\nparameters:\n  arch: {type: str, default: mlp}\n"
        "steps:\n  - {name: data, task: load_data}\n"
        "artifacts:\n  model: ${steps.data.npz}\n  other: ${steps.data.npz}\n"
        "models:\n  model: robustness-${parameters.arch}\n"
    )
    store = SimpleNamespace(get_entry_point=lambda name, version: SimpleNamespace(text=text))

    def job(arch: str) -> SimpleNamespace:
        return SimpleNamespace(
            id="job-4",
            experiment="exp",
            entry_point="fit",
            entry_point_version=1,
            parameters={"arch": arch},
        )

    assert model_name(store, job("lenet"), "model") == "robustness-lenet"
    assert model_name(store, job("lenet"), "other") == "exp-other"  # not named: the default
    with pytest.raises(LabError, match=r"job-4 models.model: 'robustness-a/../b' is not a model"):
        model_name(store, job("a/../b"), "model")
