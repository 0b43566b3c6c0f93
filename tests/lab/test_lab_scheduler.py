"""The scheduler's contract, one behaviour per test, on the inline engine with a fake
runner (no tasks run, no torch)."""

from __future__ import annotations

import hashlib
import json

import pytest
from core_kit import consume, job, lab_at, plan

from sealroom.errors import LabError
from sealroom.lab.spec import JobRequest


def test_a_job_runs_and_its_artifacts_logs_metrics_and_params_are_recorded():
    with lab_at() as lab:
        rec = lab.scheduler.submit(job(parameters={"tag": "x"}))
        assert lab.store.logs("job-1") == "" and lab.store.metrics(["job-1"]) == []
        assert (rec.id, rec.status, rec.entry_point_version, rec.trust) == (
            "job-1",
            "queued",
            1,
            "outside-room",
        )
        lab.run()
        done = lab.store.get_job("job-1")
        assert done.status == "succeeded" and done.attempts == 1 and done.ended_at is not None
        [art] = lab.store.artifacts("job-1")
        path = lab.paths.artifacts / "job-1" / "1" / "out.json"
        assert art.path == "job-1/1/out.json" and path.is_file()
        assert art.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert lab.artifacts.read(art).data == path.read_bytes()
        assert lab.store.logs("job-1") == "ran job-1 attempt 1\n"
        assert [(m.name, m.step, m.value) for m in lab.store.metrics(["job-1"])] == [
            ("loss", 0, 1.0),
            ("loss", 1, 0.5),
        ]
        assert lab.store.params("job-1") == {"tag": "x"}
        [attempt] = lab.store.attempts("job-1")
        assert (attempt.status, attempt.worker, attempt.tracked) == ("succeeded", "inline", False)
        assert [a.job_id for a in lab.store.untracked_attempts()] == ["job-1"]


def test_a_dependants_payload_carries_the_dependency_artifact_bytes():
    with lab_at() as lab:
        lab.scheduler.submit(job())
        lab.scheduler.submit(job(**consume("job-1"), depends_on=["job-1"]))
        assert lab.store.get_job("job-2").status == "waiting"
        lab.run()
        assert lab.store.get_job("job-2").status == "succeeded"
        [payload] = [p for p in lab.runner.payloads if p.job_id == "job-2"]
        blob = payload.inputs["${jobs.job-1.artifacts.out}"]
        assert json.loads(blob.data)["job"] == "job-1"
        assert lab.runner.ends("job-1")[-1] < lab.runner.starts("job-2")[0]


@pytest.mark.parametrize(
    ("request_kw", "message"),
    [
        ({"depends_on": ["job-9"]}, "job request: depends_on: unknown job 'job-9'"),
        ({"experiment": "nope"}, "job request: unknown experiment 'nope'"),
        ({"entry_point": "nope"}, "job request: unknown entry point 'nope'"),
        ({"parameters": {"colour": 1}}, "job request: unknown parameter 'colour'"),
        ({"parameters": {"tag": 3}}, "job request: parameter 'tag': expected text"),
    ],
)
def test_bad_requests_are_refused_in_one_line_and_nothing_is_written(request_kw, message):
    with lab_at() as lab:
        fields = {"experiment": "exp", "entry_point": "step", **request_kw}
        with pytest.raises(LabError) as err:
            lab.scheduler.submit(JobRequest(**fields))
        assert message in str(err.value) and "\n" not in str(err.value)
        assert lab.store.list_jobs() == []


def test_an_artifact_parameter_must_name_an_artifact_the_dependency_declares():
    with lab_at() as lab:
        lab.scheduler.submit(job())
        bad = {"ep": "consume", "parameters": {"src": "${jobs.job-1.artifacts.model}"}}
        with pytest.raises(LabError, match=r"job job-1 .* declares no artifact 'model'"):
            lab.scheduler.submit(job(**bad, depends_on=["job-1"]))
        with pytest.raises(LabError, match="not in depends_on"):
            lab.scheduler.submit(job(**consume("job-1")))


def test_a_plan_resolves_keys_to_ids_in_dependencies_and_references():
    with lab_at() as lab:
        recs = lab.scheduler.submit_plan(
            plan(
                {"key": "train"},
                {"key": "attack", **consume("train"), "depends_on": ["train"]},
            )
        )
        assert [r.id for r in recs] == ["job-1", "job-2"]
        assert recs[1].depends_on == ("job-1",)
        assert recs[1].parameters["src"] == "${jobs.job-1.artifacts.out}"
        lab.run()
        assert [j.status for j in lab.store.list_jobs()] == ["succeeded", "succeeded"]


def test_a_plan_with_a_cycle_is_refused_naming_the_cycle_and_nothing_is_written():
    with lab_at() as lab:
        with pytest.raises(LabError, match=r"^plan: cycle job a -> b -> a$"):
            lab.scheduler.submit_plan(
                plan(
                    {"key": "a", "depends_on": ["b"]},
                    {"key": "b", "depends_on": ["a"]},
                    {"key": "c"},
                )
            )
        with pytest.raises(LabError, match=r"plan job 'a': cycle job a -> a"):
            lab.scheduler.submit_plan(plan({"key": "a", "depends_on": ["a"]}))
        assert lab.store.list_jobs() == []


def test_a_plan_is_all_or_none_when_one_job_is_bad():
    with lab_at() as lab:
        with pytest.raises(LabError, match="plan job 'b': unknown parameter 'nope'"):
            lab.scheduler.submit_plan(plan({"key": "a"}, {"key": "b", "parameters": {"nope": 1}}))
        with pytest.raises(LabError, match="plan job 'b': depends_on: unknown job 'zz'"):
            lab.scheduler.submit_plan(plan({"key": "a"}, {"key": "b", "depends_on": ["zz"]}))
        with pytest.raises(LabError, match=r"plan job 'b': .*references job a, which is not in"):
            lab.scheduler.submit_plan(plan({"key": "a"}, {"key": "b", **consume("a")}))
        bad = {"ep": "consume", "parameters": {"src": "${jobs.a.artifacts.model}"}}
        with pytest.raises(LabError, match=r"plan job 'b': parameter 'src': job a \(entry point"):
            lab.scheduler.submit_plan(plan({"key": "a"}, {"key": "b", **bad, "depends_on": ["a"]}))
        with pytest.raises(LabError, match="key is used twice"):
            lab.scheduler.submit_plan(plan({"key": "a"}, {"key": "a"}))
        assert lab.store.list_jobs() == []


def test_rerun_makes_a_new_job_with_the_pinned_version_parameters_and_seed():
    with lab_at() as lab:
        lab.scheduler.submit(job(parameters={"tag": "v1"}))
        lab.run()
        lab.store.add_entry_point(lab.store.get_entry_point("step").text + "\n# v2\n")
        assert lab.store.get_entry_point("step").version == 2
        old = lab.store.get_job("job-1")
        new = lab.scheduler.rerun("job-1")
        assert (new.id, new.rerun_of, new.entry_point_version) == ("job-2", "job-1", 1)
        assert (new.parameters, new.seed, new.queue) == (old.parameters, old.seed, old.queue)
        with pytest.raises(LabError, match="job job-2 is queued; rerun it once it has ended"):
            lab.scheduler.rerun("job-2")
        lab.run()
        assert lab.store.get_job("job-2").status == "succeeded"


def test_a_requested_seed_is_the_jobs_seed_and_reaches_its_attempt():
    with lab_at() as lab:
        pinned = lab.scheduler.submit(job(seed=1234))
        drawn = lab.scheduler.submit(job())
        assert pinned.seed == 1234 and 0 <= drawn.seed < 2**31
        lab.run()
        assert {p.job_id: p.seed for p in lab.runner.payloads}["job-1"] == 1234


def test_a_tampered_artifact_is_refused_on_read():
    with lab_at() as lab:
        lab.scheduler.submit(job())
        lab.run()
        [art] = lab.store.artifacts("job-1")
        (lab.paths.artifacts / art.path).write_bytes(b"{}")
        with pytest.raises(LabError, match="job job-1: artifact 'out' does not match its recorded"):
            lab.artifacts.read(art)


def test_listeners_hear_every_ended_attempt_and_a_failing_listener_does_not_stop_the_loop():
    with lab_at() as lab:
        heard: list[tuple[str, int, str]] = []
        lab.scheduler.on_attempt_ended.append(lambda j, a: heard.append((j.id, a.number, a.status)))
        lab.scheduler.on_attempt_ended.append(lambda j, a: 1 / 0)
        lab.runner.behaviour["job-2"] = "lose_once"
        lab.scheduler.submit(job())
        lab.scheduler.submit(job(max_retries=1))
        lab.run()
        assert sorted(heard) == [
            ("job-1", 1, "succeeded"),
            ("job-2", 1, "lost"),
            ("job-2", 2, "succeeded"),
        ]


def test_the_inline_engine_holds_attempts_for_queues_it_does_not_serve_until_cancelled():
    from core_kit import FakeRunner

    from sealroom.lab.attempts import AttemptPayload
    from sealroom.lab.inline_engine import InlineEngine

    runner = FakeRunner()
    engine = InlineEngine(runner, queues=("default",))
    try:
        engine.submit(AttemptPayload("job-1", 1, "exp", "", {}), "gpu")
        engine.submit(AttemptPayload("job-2", 1, "exp", "", {}), "default")
        done = engine.poll(5.0)
        assert [(o.job_id, o.status, o.worker) for o in done] == [("job-2", "succeeded", "inline")]
        assert engine.running() == {("job-1", 1)} and runner.starts("job-1") == []
        engine.cancel("job-1", 1)
        assert [(o.job_id, o.status) for o in engine.poll(1.0)] == [("job-1", "cancelled")]
        assert engine.running() == set() and runner.starts("job-1") == []
        [worker] = engine.workers()
        assert (worker.queues, worker.alive, worker.slots) == (("default",), True, {"default": 2.0})
    finally:
        engine.shutdown(wait=True)
    assert engine.workers() == []


def test_submissions_and_cancels_from_other_threads_while_the_loop_ticks():
    import threading

    with lab_at() as lab:
        lab.runner.behaviour.update({f"job-{n}": "slow" for n in range(1, 21, 4)})
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop():
            try:
                while not stop.is_set():
                    lab.scheduler.tick(0.005)
            except BaseException as exc:
                errors.append(exc)

        ticker = threading.Thread(target=loop)
        ticker.start()
        ids: list[str] = []

        def client():
            try:
                for n in range(5):
                    new = lab.scheduler.submit(job()).id
                    ids.append(new)
                    if n % 2:
                        assert lab.scheduler.cancel(new).status in ("cancelled", "succeeded")
            except BaseException as exc:
                errors.append(exc)

        clients = [threading.Thread(target=client) for _ in range(4)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        stop.set()
        ticker.join()
        assert errors == []
        assert sorted(ids, key=lambda i: int(i[4:])) == [f"job-{n}" for n in range(1, 21)]
        lab.run()
        for j in lab.store.list_jobs():
            attempts = lab.store.attempts(j.id)
            assert j.status in ("succeeded", "cancelled") and len(attempts) <= 1
            if j.status == "succeeded":
                assert [a.attempt for a in lab.store.artifacts(j.id)] == [1]


def test_jobs_run_only_while_their_queue_has_a_free_slot():
    with lab_at(slots=1) as lab:
        for _ in range(3):
            lab.runner.behaviour[lab.scheduler.submit(job()).id] = "block"
        for _ in range(5):
            lab.scheduler.tick(0.01)
        assert [j.status for j in lab.store.list_jobs()] == ["running", "queued", "queued"]
        lab.runner.gate.set()
        lab.run()
        assert [j.status for j in lab.store.list_jobs()] == ["succeeded"] * 3
        starts = sorted(e[3] for e in lab.runner.events if e[0] == "start")
        ends = sorted(e[3] for e in lab.runner.events if e[0] == "end")
        assert starts[1] > ends[0] and starts[2] > ends[1]  # one at a time
