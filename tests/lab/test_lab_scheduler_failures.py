"""The scheduler when things go wrong: failures and their propagation, cancels, timeouts,
lost workers, queues nobody serves, superseded attempts, engines that refuse."""

from __future__ import annotations

from core_kit import consume, job, lab_at, plan


def test_a_failure_cancels_dependants_transitively_and_allow_failure_still_runs():
    with lab_at() as lab:
        lab.runner.behaviour["job-1"] = "fail"
        lab.scheduler.submit_plan(
            plan(
                {"key": "a"},
                {"key": "b", "depends_on": ["a"]},
                {"key": "c", "depends_on": ["b"]},
                {"key": "d", "depends_on": ["b"], "allow_failure": True},
            )
        )
        lab.run()
        jobs = {j.id: j for j in lab.store.list_jobs()}
        assert (jobs["job-1"].status, jobs["job-1"].reason) == (
            "failed",
            "attempt 1 failed: step run: boom",
        )
        assert (jobs["job-2"].status, jobs["job-2"].reason) == (
            "cancelled",
            "dependency job-1 failed",
        )
        assert (jobs["job-3"].status, jobs["job-3"].reason) == (
            "cancelled",
            "dependency job-2 cancelled",
        )
        assert jobs["job-4"].status == "succeeded"
        assert lab.runner.starts("job-2") == [] and lab.runner.starts("job-3") == []
        assert lab.store.artifacts("job-1") == []


def test_an_execute_that_raises_is_a_failed_attempt_naming_the_error_in_one_line():
    with lab_at() as lab:
        lab.runner.behaviour.update({"job-1": "raise", "job-2": "fail_traceback"})
        lab.scheduler.submit(job())
        lab.scheduler.submit(job())
        lab.run()
        assert lab.store.get_job("job-1").reason == (
            "attempt 1 failed: RuntimeError: the task blew up"
        )
        assert lab.store.get_job("job-2").reason == "attempt 1 failed: step run: boom"
        assert lab.store.attempts("job-2")[0].error == "step run: boom"


def test_a_missing_declared_artifact_or_a_path_like_file_name_fails_the_job():
    with lab_at() as lab:
        lab.runner.behaviour.update({"job-1": "no_artifact", "job-2": "bad_artifact"})
        lab.scheduler.submit(job())
        lab.scheduler.submit(job())
        lab.run()
        assert "declared artifact 'out' was not produced" in lab.store.get_job("job-1").reason
        reason = lab.store.get_job("job-2").reason
        assert "artifact 'out': file name '../escape.json' is not a plain file name" in reason
        assert not (lab.paths.artifacts / "escape.json").exists()
        assert [a.status for a in lab.store.attempts("job-2")] == ["failed"]


def test_cancel_of_a_running_job_stops_it_cascades_and_its_result_is_never_committed():
    with lab_at() as lab:
        lab.runner.behaviour["job-1"] = "block"
        lab.scheduler.submit_plan(plan({"key": "a"}, {"key": "b", "depends_on": ["a"]}))
        while lab.store.get_job("job-1").status != "running":
            lab.scheduler.tick(0.01)
        rec = lab.scheduler.cancel("job-1")
        assert (rec.status, rec.reason) == ("cancelled", "cancelled by request")
        assert lab.store.get_job("job-2").status == "cancelled"
        lab.runner.gate.set()  # the thread finishes and reports success: ignored
        lab.engine.shutdown(wait=True)
        for _ in range(3):
            lab.scheduler.tick(0.01)
        assert [a.status for a in lab.store.attempts("job-1")] == ["cancelled"]
        assert lab.store.artifacts("job-1") == []
        assert not (lab.paths.artifacts / "job-1" / "1").exists()
        assert lab.scheduler.cancel("job-1").status == "cancelled"  # ended: unchanged


def test_a_job_past_its_timeout_is_stopped_and_fails_its_dependants():
    with lab_at() as lab:
        lab.runner.behaviour["job-1"] = "block"
        lab.scheduler.submit_plan(
            plan({"key": "a", "timeout_s": 0.2}, {"key": "b", "depends_on": ["a"]})
        )
        lab.run()
        one = lab.store.get_job("job-1")
        assert (one.status, one.reason) == ("failed", "attempt 1 timed out after 0.2s")
        assert [a.status for a in lab.store.attempts("job-1")] == ["timed_out"]
        assert lab.store.get_job("job-2").reason == "dependency job-1 failed"


def test_a_lost_worker_is_retried_while_max_retries_allows_then_fails():
    with lab_at() as lab:
        lab.runner.behaviour.update({"job-1": "lose_once", "job-2": "lose", "job-3": "lose_once"})
        lab.scheduler.submit(job(max_retries=1))
        lab.scheduler.submit(job(max_retries=2))
        lab.scheduler.submit(job())
        lab.run()
        assert [a.status for a in lab.store.attempts("job-1")] == ["lost", "succeeded"]
        assert [m.value for m in lab.store.metrics(["job-1"], ["loss"], attempt=1)] == [1.0, 0.5]
        assert [m.value for m in lab.store.metrics(["job-1"], ["loss"])] == [0.5, 0.5]
        assert lab.store.get_job("job-1").status == "succeeded"
        assert [a.status for a in lab.store.attempts("job-2")] == ["lost"] * 3
        assert lab.store.get_job("job-2").reason == "attempt 3 lost its worker"
        assert lab.store.get_job("job-3").status == "failed"
        assert [len(lab.runner.starts(j)) for j in ("job-1", "job-2", "job-3")] == [2, 3, 1]


def test_a_queue_without_a_worker_says_so_and_runs_when_one_appears():
    now = [1000.0]
    with lab_at(queues=("default",), no_worker_after_s=5.0, clock=lambda: now[0]) as lab:
        lab.scheduler.submit(job(queue="gpu"))
        lab.scheduler.tick(0.0)
        assert lab.store.get_job("job-1").reason == ""
        now[0] += 5.0
        lab.scheduler.tick(0.0)
        rec = lab.store.get_job("job-1")
        assert (rec.status, rec.reason) == ("queued", "no worker for queue gpu")
        assert [q.name for q in lab.store.list_queues()] == ["gpu"]
        [worker] = lab.store.list_workers()
        assert (worker.worker_id, worker.queues, worker.alive, worker.last_heartbeat) == (
            "inline",
            ("default",),
            True,
            1005.0,
        )
        lab.engine.queues = ("default", "gpu")
        lab.run()
        assert lab.store.get_job("job-1").status == "succeeded"


def test_an_attempt_superseded_before_commit_is_not_committed():
    with lab_at() as lab:
        lab.runner.behaviour["job-1"] = "block"
        lab.scheduler.submit(job())
        while lab.store.get_job("job-1").status != "running":
            lab.scheduler.tick(0.01)
        # a restart happened meanwhile: attempt 1 interrupted, attempt 2 started
        assert lab.scheduler.recover() == ["job-1"]
        lab.runner.behaviour["job-1"] = "ok"
        lab.runner.gate.set()
        lab.run()
        attempts = lab.store.attempts("job-1")
        assert [a.status for a in attempts] == ["interrupted", "succeeded"]
        assert [a.attempt for a in lab.store.artifacts("job-1")] == [2]
        assert not (lab.paths.artifacts / "job-1" / "1").exists()
        assert not [p for p in (lab.paths.artifacts / "job-1").iterdir() if p.name.startswith(".")]


def test_an_allow_failure_consumer_of_a_failed_producer_fails_naming_the_missing_artifact():
    with lab_at() as lab:
        lab.runner.behaviour["job-1"] = "fail"
        lab.scheduler.submit(job())
        lab.scheduler.submit(job(**consume("job-1"), depends_on=["job-1"], allow_failure=True))
        lab.run()
        rec = lab.store.get_job("job-2")
        assert (rec.status, rec.reason) == (
            "failed",
            "job job-2: parameter 'src': job job-1 has no artifact 'out' (it failed)",
        )
        assert lab.store.attempts("job-2") == [] and lab.runner.starts("job-2") == []


def test_an_engine_that_refuses_a_submission_fails_the_job_in_one_line():
    with lab_at() as lab:

        def refuse(payload, queue):
            raise RuntimeError("cluster unreachable\nTraceback ...")

        lab.engine.submit = refuse  # type: ignore[method-assign]
        lab.scheduler.submit(job())
        lab.scheduler.tick(0.0)
        rec = lab.store.get_job("job-1")
        assert (rec.status, rec.reason) == (
            "failed",
            "the engine refused attempt 1: cluster unreachable",
        )
        assert [a.status for a in lab.store.attempts("job-1")] == ["failed"]
