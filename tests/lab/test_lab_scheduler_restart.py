"""A crash mid-DAG at scheduler level: the objects are dropped with an attempt running,
a new store and scheduler open the same folder, recover() and finish the DAG."""

from __future__ import annotations

import shutil

from core_kit import CONSUME, STEP, FakeRunner, fast_dir, open_lab

from sealroom.lab.spec import JobRequest, Plan, PlanJob


def test_a_restart_interrupts_the_running_attempt_reruns_it_and_never_reruns_completed_jobs():
    root = fast_dir()
    first = open_lab(root, runner=FakeRunner(behaviour={"job-2": "block"}))
    try:
        first.store.create_experiment("exp")
        first.store.add_entry_point(STEP)
        first.store.add_entry_point(CONSUME)
        src = "${jobs.a.artifacts.out}"
        first.scheduler.submit_plan(
            Plan(
                jobs=[
                    PlanJob(key="a", experiment="exp", entry_point="step"),
                    PlanJob(
                        key="b",
                        experiment="exp",
                        entry_point="consume",
                        parameters={"src": src},
                        depends_on=["a"],
                    ),
                    PlanJob(key="c", experiment="exp", entry_point="step", depends_on=["b"]),
                ]
            )
        )
        for _ in range(500):
            first.scheduler.tick(0.01)
            if first.store.get_job("job-2").status == "running":
                break
        assert first.store.get_job("job-1").status == "succeeded"
        # the crash: nothing is shut down or closed; a commit was also cut short, leaving a
        # temporary folder behind
        (first.paths.artifacts / "job-2" / ".tmp-1-crash").mkdir(parents=True)
        del first.scheduler

        second = open_lab(root, runner=FakeRunner())
        assert [a.status for a in second.store.attempts("job-2")] == ["running"]
        assert second.scheduler.recover() == ["job-2"]
        job2 = second.store.get_job("job-2")
        assert (job2.status, job2.reason) == ("queued", "attempt 1 interrupted; queued again")
        assert not (second.paths.artifacts / "job-2" / ".tmp-1-crash").exists()
        second.run()

        first.runner.gate.set()  # the old thread ends; nobody polls the old engine
        first.engine.shutdown(wait=True)
        second.scheduler.tick(0.01)

        jobs = {j.id: j for j in second.store.list_jobs()}
        assert all(j.status == "succeeded" for j in jobs.values())
        assert [a.status for a in second.store.attempts("job-1")] == ["succeeded"]
        assert [a.status for a in second.store.attempts("job-2")] == ["interrupted", "succeeded"]
        assert second.runner.starts("job-1") == []  # completed: never rerun
        assert [(p.job_id, p.attempt) for p in second.runner.payloads] == [
            ("job-2", 2),
            ("job-3", 1),
        ]
        assert [a.path for a in second.store.artifacts("job-1")] == ["job-1/1/out.json"]
        assert [a.path for a in second.store.artifacts("job-2")] == ["job-2/2/out.json"]
        assert not (root / "artifacts" / "job-2" / "1").exists()
        assert second.store.logs("job-2", 1) == ""  # the interrupted attempt left no log
        assert second.store.logs("job-2") == "ran job-2 attempt 2\n"
        untracked = {(a.job_id, a.number, a.status) for a in second.store.untracked_attempts()}
        assert ("job-2", 1, "interrupted") in untracked
        second.engine.shutdown(wait=True)
        second.store.close()
        first.store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_recover_on_a_clean_database_changes_nothing():
    root = fast_dir()
    lab = open_lab(root)
    try:
        lab.store.create_experiment("exp")
        lab.store.add_entry_point(STEP)
        lab.scheduler.submit(JobRequest(experiment="exp", entry_point="step"))
        lab.run()
        assert lab.scheduler.recover() == []
        assert [a.status for a in lab.store.attempts("job-1")] == ["succeeded"]
    finally:
        lab.engine.shutdown(wait=True)
        lab.store.close()
        shutil.rmtree(root, ignore_errors=True)
