"""The reference robustness experiment: its entry points, its plan, and one tiny run of the
whole chain on the lab's own store, scheduler, runner and artifacts (in-process engine)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from sealroom.lab.paths import LabPaths
from sealroom.lab.reference.inline import install, run_inline
from sealroom.lab.reference.plan import (
    ARCHS,
    ENTRY_POINT_FILES,
    FULL,
    REDUCED,
    TINY,
    entry_point_texts,
    reference_plan,
)
from sealroom.lab.refs import refs_in
from sealroom.lab.spec import Plan


def test_lab_reference_entry_points_are_accepted_by_a_lab(tmp_path: Path) -> None:
    from sealroom.lab.store import LabStore

    store = LabStore.open(LabPaths(tmp_path / "lab"))
    try:
        records = install(store)  # parse_entry_point + check_entry_point on every file
        assert [r.name for r in records] == [f.removesuffix(".yaml") for f in ENTRY_POINT_FILES]
        assert [r.version for r in install(store)] == [1] * len(records)  # idempotent
    finally:
        store.close()
    assert set(entry_point_texts()) == set(ENTRY_POINT_FILES)


@pytest.mark.parametrize("scale", [FULL, REDUCED, TINY])
def test_lab_reference_plan_chains_train_attack_evaluate_report(scale) -> None:  # type: ignore[no-untyped-def]
    plan = reference_plan(scale=scale, seed=7)
    keys = [job.key for job in plan.jobs]
    assert keys == [f"{stage}-{a}" for stage in ("train", "attack", "evaluate") for a in ARCHS] + [
        "report"
    ]
    assert scale.report_eps in scale.eps
    for job in plan.jobs:
        referenced = {ref.parts[0] for ref in refs_in(job.parameters, job.key)}
        assert referenced <= set(job.depends_on), job.key  # every reference is a dependency
    by_key = {job.key: job for job in plan.jobs}
    assert set(by_key["evaluate-lenet"].depends_on) == {
        "attack-lenet",
        *(f"train-{a}" for a in ARCHS),
    }
    assert by_key["report"].depends_on == [f"evaluate-{a}" for a in ARCHS]
    # seeds are parameters, fixed by the plan: the same plan twice is the same plan
    assert reference_plan(scale=scale, seed=7) == plan
    assert {by_key[f"train-{a}"].parameters["data_seed"] for a in ARCHS} == {7}
    assert {by_key[f"attack-{a}"].parameters["subset_seed"] for a in ARCHS} == {7}
    assert len({by_key[f"train-{a}"].parameters["seed"] for a in ARCHS}) == 4
    Plan.model_validate(plan.model_dump(mode="json"))  # what goes over the API


def test_lab_reference_plan_is_accepted_whole_by_the_scheduler(tmp_path: Path) -> None:
    from sealroom.lab.artifacts import ArtifactStore
    from sealroom.lab.inline_engine import InlineEngine
    from sealroom.lab.scheduler import Scheduler
    from sealroom.lab.store import LabStore

    paths = LabPaths(tmp_path / "lab")
    store = LabStore.open(paths)
    engine = InlineEngine(execute=lambda payload: pytest.fail("nothing runs here"))
    try:
        install(store)
        jobs = Scheduler(store, engine, ArtifactStore(paths)).submit_plan(
            reference_plan(scale=TINY)
        )
        assert len(jobs) == 13
        report = jobs[-1]
        assert report.entry_point == "robustness-report"
        assert set(report.depends_on) == {j.id for j in jobs[8:12]}
        assert report.parameters["mlp"] == f"${{jobs.{jobs[8].id}.artifacts.results}}"
        assert all(j.trust == "outside-room" for j in jobs)
    finally:
        engine.shutdown()
        store.close()


@pytest.mark.slow  # 13 real jobs (4 trainings, 8 attack/evaluate, 1 report): ~45 s on 2 cores
def test_lab_reference_tiny_run_end_to_end(tmp_path: Path) -> None:
    from sealroom.lab.artifacts import ArtifactStore
    from sealroom.lab.store import LabStore

    paths = LabPaths(tmp_path / "lab")
    jobs = run_inline(paths, reference_plan(scale=TINY), timeout_s=600)
    assert [j.status for j in jobs] == ["succeeded"] * 13, [(j.id, j.reason) for j in jobs]
    store = LabStore.open(paths)
    try:
        blobs = {r.name: ArtifactStore(paths).read(r) for r in store.artifacts(jobs[-1].id)}
        matrix = list(csv.DictReader(io.StringIO(blobs["transferability_csv"].data.decode())))
        assert len(matrix) == 2 * 4 * 4  # methods x sources x targets
        board = list(csv.DictReader(io.StringIO(blobs["table_csv"].data.decode())))
        assert {r["model"] for r in board} == set(ARCHS)
        white = [r for r in matrix if r["source"] == r["target"] and r["method"] == "pgd"]
        assert all(r["attack_success_rate"] for r in white)
        assert blobs["curves_png"].data.startswith(b"\x89PNG")
        names = {m.name for m in store.metrics([jobs[4].id])}
        assert "attack_success_rate.pgd.eps_0.2" in names
    finally:
        store.close()


def test_lab_reference_demo_refuses_a_used_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sealroom.cli.main import app

    (tmp_path / "something").write_text("x")
    result = CliRunner().invoke(app, ["demo", "testbed", "--home", str(tmp_path), "--inline"])
    assert result.exit_code == 1
    assert "is not empty; the demo needs a fresh folder" in result.output
    assert not (tmp_path / "lab").exists()


def test_lab_reference_exports_in_threads_of_one_process() -> None:
    """The in-process engine runs jobs in threads; torch's ONNX exporter has global state,
    so export serialises (without the lock one export fails with 'GLOBALS.in_onnx_export')."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.lab.lab_attack_models import SHAPE, halves, onnx_bytes, trained

    model = trained("mlp", 0, *halves(50, seed=0))
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda _: onnx_bytes(model), range(8)))
    assert len(done) == 8 and len(set(done)) == 1 and SHAPE == (1, 8, 8)


@pytest.mark.slow  # a lab server child process with a local Ray, 13 tiny jobs: ~1 min
def test_lab_reference_demo_testbed_through_a_lab_server(tmp_path: Path) -> None:
    import json
    import sqlite3

    from typer.testing import CliRunner

    from sealroom.cli.main import app

    home = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "testbed", "--home", str(home), "--scale", "tiny", "--json"]
    )
    assert result.exit_code == 0, result.output[-2000:]
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert set(summary["jobs"].values()) == {"succeeded"} and len(summary["jobs"]) == 13
    for path in summary["report"].values():
        assert Path(path).is_file() and Path(path).parent == home / "report"
    assert summary["mlflow_tracking_uri"] == f"sqlite:///{home / 'lab' / 'mlflow.db'}"
    with sqlite3.connect(home / "lab" / "mlflow.db") as db:
        (runs,) = db.execute("SELECT count(*) FROM runs").fetchone()
    assert runs == 13  # one MLflow run per attempt, recorded before the server stopped
    assert not (home / "lab" / "server.json").exists()  # the server stopped cleanly


def test_lab_reference_demo_refuses_an_unknown_scale(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sealroom.cli.main import app

    result = CliRunner().invoke(
        app, ["demo", "testbed", "--home", str(tmp_path / "d"), "--scale", "huge"]
    )
    assert (
        result.exit_code == 1 and "--scale 'huge': use one of reduced, full, tiny" in result.output
    )
