"""Property: on random DAGs with random failures, lost workers, retries, allow_failure
flags and cancels at random moments, the scheduler obeys the dependency rule exactly.

The fake runner records the order in which attempts start and end; the expected final
state of every job is computed from the rule (a failed or cancelled dependency cancels
a dependant without allow_failure, transitively; an allow_failure dependant runs once
its dependencies ended) and compared with the database.
"""

from __future__ import annotations

import re
import shutil

from core_kit import CONSUME, STEP, fast_dir, open_lab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.lab.spec import TERMINAL, JobRequest, Plan, PlanJob

BEHAVIOURS = ["ok", "ok", "ok", "fail", "raise", "lose", "lose_once"]


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 9))
    jobs = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        jobs.append(
            {
                "deps": deps,
                "allow_failure": draw(st.booleans()),
                "behaviour": draw(st.sampled_from(BEHAVIOURS)),
                "max_retries": draw(st.integers(0, 2)),
                "consumes": bool(deps) and draw(st.booleans()),  # the first dependency's artifact
            }
        )
    cancels = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 6)), max_size=3))
    return jobs, cancels, draw(st.booleans()), draw(st.integers(1, 3))


def expected_run(behaviour: str, retries: int) -> tuple[str, list[str]]:
    """Final status and attempt statuses of a job that ran and was not cancelled."""
    if behaviour == "ok":
        return "succeeded", ["succeeded"]
    if behaviour in ("fail", "raise"):
        return "failed", ["failed"]
    if behaviour == "lose":
        return "failed", ["lost"] * (retries + 1)
    return ("succeeded", ["lost", "succeeded"]) if retries >= 1 else ("failed", ["lost"])


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_dags_obey_the_dependency_rule(scenario):
    jobs, cancels, as_plan, slots = scenario
    root = fast_dir()
    lab = open_lab(root, slots=slots)
    try:
        lab.store.create_experiment("exp")
        lab.store.add_entry_point(STEP)
        lab.store.add_entry_point(CONSUME)
        ids = [f"job-{i + 1}" for i in range(len(jobs))]
        for job_id, spec in zip(ids, jobs, strict=True):
            lab.runner.behaviour[job_id] = spec["behaviour"]
        fields = [
            {
                "experiment": "exp",
                "entry_point": "consume" if spec["consumes"] else "step",
                "allow_failure": spec["allow_failure"],
                "max_retries": spec["max_retries"],
            }
            for spec in jobs
        ]

        def src(name: str) -> dict:
            return {"src": f"${{jobs.{name}.artifacts.out}}"}

        if as_plan:
            lab.scheduler.submit_plan(
                Plan(
                    jobs=[
                        PlanJob(
                            key=f"k{i}",
                            depends_on=[f"k{d}" for d in spec["deps"]],
                            parameters=src(f"k{spec['deps'][0]}") if spec["consumes"] else {},
                            **f,
                        )
                        for i, (spec, f) in enumerate(zip(jobs, fields, strict=True))
                    ]
                )
            )
        else:
            for spec, f in zip(jobs, fields, strict=True):
                lab.scheduler.submit(
                    JobRequest(
                        depends_on=[ids[d] for d in spec["deps"]],
                        parameters=src(ids[spec["deps"][0]]) if spec["consumes"] else {},
                        **f,
                    )
                )
        requested = {ids[k] for k, _ in cancels}
        for tick in range(3000):
            for k, when in cancels:
                if when == tick:
                    lab.scheduler.cancel(ids[k])
            lab.scheduler.tick(0.002)
            settled = all(j.status in TERMINAL for j in lab.store.list_jobs())
            if (
                settled
                and not lab.engine.running()
                and tick >= max((w for _, w in cancels), default=0)
            ):
                break
        else:
            raise AssertionError("the DAG did not settle")
        lab.engine.shutdown(wait=True)  # threads of attempts cancelled mid-run finish
        check(lab, jobs, ids, requested)
    finally:
        lab.engine.shutdown(wait=True)
        lab.store.close()
        shutil.rmtree(root, ignore_errors=True)


def check(lab, jobs, ids, requested) -> None:
    final = {j.id: j for j in lab.store.list_jobs()}
    runner = lab.runner
    status: dict[str, str] = {}
    for job_id, spec in zip(ids, jobs, strict=True):
        job = final[job_id]
        deps = [ids[d] for d in spec["deps"]]
        attempts = lab.store.attempts(job_id)
        assert job.status in TERMINAL, job
        assert all(a.status != "running" for a in attempts)
        # no job runs twice unless retried after a lost worker; an attempt cancelled
        # before its thread started never runs
        started = runner.started_attempts(job_id)
        assert len(started) == len(set(started)) and job.attempts == len(attempts)
        assert all(a.status == "lost" for a in attempts[:-1])
        if attempts and attempts[-1].status == "cancelled":
            assert started in (list(range(1, job.attempts + 1)), list(range(1, job.attempts)))
        else:
            assert started == list(range(1, job.attempts + 1))
        if runner.starts(job_id):
            first = min(runner.starts(job_id))
            for dep in deps:
                assert status[dep] in TERMINAL
                if not spec["allow_failure"]:
                    assert status[dep] == "succeeded", (job_id, dep)
                dep_stopped = [a.status for a in lab.store.attempts(dep)][-1:] == ["cancelled"]
                if runner.ends(dep) and not dep_stopped:  # a stopped thread may still run
                    assert max(runner.ends(dep)) < first, (job_id, dep)
        status[job_id] = job.status
        if job_id in requested and (job.status, job.reason) == (
            "cancelled",
            "cancelled by request",
        ):
            continue
        broken = [d for d in deps if status[d] in ("failed", "cancelled")]
        if broken and not spec["allow_failure"]:
            assert job.status == "cancelled" and not runner.starts(job_id), job
            found = re.fullmatch(r"dependency (job-\d+) (failed|cancelled)", job.reason)
            assert found and found.group(1) in broken, job.reason
            assert status[found.group(1)] == found.group(2)
            continue
        if spec["consumes"] and status[deps[0]] != "succeeded":  # allow_failure, no input
            assert (job.status, attempts) == ("failed", []), job
            assert job.reason.endswith(
                f"job {deps[0]} has no artifact 'out' (it {status[deps[0]]})"
            )
            continue
        if spec["consumes"]:
            [payload] = [p for p in runner.payloads if p.job_id == job_id][:1]
            [blob] = payload.inputs.values()
            [art] = lab.store.artifacts(deps[0])
            assert blob.data == lab.artifacts.read(art).data
        want, want_attempts = expected_run(spec["behaviour"], spec["max_retries"])
        assert (job.status, [a.status for a in attempts]) == (want, want_attempts), job
        if want == "succeeded":
            assert [a.attempt for a in lab.store.artifacts(job_id)] == [job.attempts]
        else:
            assert lab.store.artifacts(job_id) == []
