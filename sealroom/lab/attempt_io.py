"""What the scheduler hands an engine for an attempt and keeps from what comes back:
the payload (pinned YAML, dependency artifact bytes) and the attempt's log file."""

from __future__ import annotations

from pathlib import Path

from sealroom.errors import LabError
from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.attempts import AttemptOutcome, AttemptPayload
from sealroom.lab.paths import LabPaths
from sealroom.lab.store import LabStore
from sealroom.lab.store_records import JobRecord
from sealroom.lab.submit import pinned_entry_point


def build_payload(store: LabStore, artifacts: ArtifactStore, job: JobRecord) -> AttemptPayload:
    """The job's pinned entry point text and, for each artifact parameter, the committed
    bytes of that dependency artifact (checked against its sha256). ``attempt`` is 0 until
    the scheduler numbers it."""
    text = store.get_entry_point(job.entry_point, job.entry_point_version).text
    with store.transaction("DEFERRED") as conn:
        ep, _ = pinned_entry_point(conn, job.entry_point, job.entry_point_version, job.id)
    inputs = {}
    for name, spec in ep.parameters.items():
        if spec.type != "artifact":
            continue
        ref = str(job.parameters[name])
        dep_id, artifact = ref[len("${jobs.") : -1].split(".artifacts.")
        records = {r.name: r for r in store.artifacts(dep_id)}
        if artifact not in records:
            dep = store.get_job(dep_id)
            raise LabError(
                f"job {job.id}: parameter {name!r}: job {dep_id} has no artifact "
                f"{artifact!r} (it {dep.status})"
            )
        inputs[ref] = artifacts.read(records[artifact])
    return AttemptPayload(
        job_id=job.id,
        attempt=0,
        experiment=job.experiment,
        entry_point=text,
        parameters=dict(job.parameters),
        inputs=inputs,
        seed=job.seed,
        timeout_s=job.timeout_s,
    )


def write_log(paths: LabPaths, outcome: AttemptOutcome) -> None:
    """``logs/<job>/<attempt>.log``, replaced atomically."""
    folder = paths.logs / outcome.job_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{outcome.attempt}.log"
    if not outcome.logs and path.exists():
        return  # a second, empty report (a stop after the end) keeps the first log
    tmp = Path(f"{path}.tmp")
    tmp.write_text(outcome.logs, encoding="utf-8")
    tmp.replace(path)
