"""Mirror finished attempts into MLflow so the usual UI can browse and compare them.

The lab database stays the source of truth; MLflow is a read-mostly view of it. One MLflow
run per attempt (run name ``"job-7 #2"``) in an MLflow experiment named after the lab
experiment, whose artifact location lies under ``artifact_root`` (MLflow would otherwise
write ``./mlruns`` into whatever directory the server was started from). Models are
registered through ``mlflow.onnx`` only, with ``pip_requirements`` given so MLflow does not
import the model to infer them, and no other flavour: nothing in the store is a pickle.

Recording is idempotent. A run carries ``sealroom.attempt_key = "job-7/2"`` and, once
everything is logged, ``sealroom.recorded = "true"``. Recording an attempt again finds the
complete run and returns its id; a run left half-written by a crash is deleted together with
the model versions it registered, then written afresh, so a restart never duplicates a run
or a model version.

``mlflow`` is imported lazily (about 2 s): only the process that tracks pays for it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sealroom.errors import LabError
from sealroom.lab.paths import LabPaths
from sealroom.lab.refs import substitute
from sealroom.lab.runner import one_line
from sealroom.lab.spec import parse_entry_point
from sealroom.train.onnx_check import check_onnx

TRUST = "outside-room"
ATTEMPT_KEY_TAG = "sealroom.attempt_key"
RECORDED_TAG = "sealroom.recorded"
MAX_KEY = 250  # MLflow's limit on param, metric and tag names
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000
_BATCH = 100  # params/tags per log_batch call (MLflow refuses more)
_METRIC_BATCH = 1000
_TRUNCATED = "…[truncated by sealroom: {n} characters in the lab database]"

# Attempt status (sealroom.lab.spec.AttemptStatus) → MLflow run status.
RUN_STATUS = {
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "lost": "FAILED",
    "timed_out": "FAILED",
    "cancelled": "KILLED",
    "interrupted": "KILLED",
}

# The fluent parts of MLflow used here (log_model, register_model) read a process-wide
# tracking URI; one lock keeps two trackers in one process from crossing them.
_FLUENT = threading.Lock()
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class TrackedStore(Protocol):
    """The slice of ``sealroom.lab.store.LabStore`` the tracker reads and writes."""

    paths: LabPaths

    def get_job(self, job_id: str) -> Any: ...
    def attempts(self, job_id: str) -> Sequence[Any]: ...
    def artifacts(self, job_id: str) -> Sequence[Any]: ...
    def metrics(self, job_ids: list[str], names: list[str] | None = None) -> Sequence[Any]: ...
    def params(self, job_id: str, attempt: int | None = None) -> Mapping[str, str]: ...
    def record_model(
        self, name: str, job_id: str, artifact: str, mlflow_version: str | None = None
    ) -> Any: ...
    def get_entry_point(self, name: str, version: int | None = None) -> Any: ...
    def untracked_attempts(self) -> Sequence[Any]: ...
    def mark_tracked(self, job_id: str, attempt: int, run_id: str) -> Any: ...


def mlflow_name(name: str) -> str:
    """A metric/param name MLflow accepts: letters, digits, ``_ - . / : space``, no path
    tricks. Other characters become ``_`` so a task's ``acc@eps=0.1`` still gets logged."""
    key = re.sub(r"[^\w./\- :]", "_", name)
    if any(part in {"", ".", ".."} for part in key.split("/")):
        key = key.replace("/", "_")
    return "_" if key in {"", ".", ".."} else key


def param_value(value: object) -> str:
    """Parameters are JSON in the lab; MLflow keeps strings of at most 6000 characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > MAX_PARAM_VALUE:
        marker = _TRUNCATED.format(n=len(text))
        text = text[: MAX_PARAM_VALUE - len(marker)] + marker
    return text


def _tag_value(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 1] + "…"


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Tracker:
    """Writes attempts of a lab into one MLflow tracking store (see module docstring)."""

    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root).resolve()
        self._client: Any = None
        self._experiments: dict[str, str] = {}

    @property
    def _local(self) -> bool:
        """A store this process writes files for itself (sqlite, other databases, file:),
        as opposed to a tracking server that places and serves its own artifacts."""
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))

    @classmethod
    def for_lab(cls, paths: LabPaths, tracking_uri: str | None = None) -> Tracker:
        """The lab's own store (``lab/mlflow.db`` + ``lab/mlruns``) unless a URI is given."""
        return cls(tracking_uri or paths.default_tracking_uri, paths.mlflow_artifacts)

    @property
    def client(self) -> Any:
        """An ``mlflow.MlflowClient`` on this store (imports MLflow on first use)."""
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a lab never phones home
            import mlflow

            self._create_sqlite_store()
            self._client = mlflow.MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _create_sqlite_store(self) -> None:
        """Create a new sqlite store with its "Default" experiment under ``artifact_root``:
        left to MlflowClient, that experiment would point at ``./mlruns`` of the cwd."""
        prefix = "sqlite:///"
        if not self.tracking_uri.startswith(prefix):
            return
        if Path(self.tracking_uri[len(prefix) :]).exists():
            return
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self.artifact_root.mkdir(parents=True, exist_ok=True)
        SqlAlchemyStore(self.tracking_uri, (self.artifact_root / "Default").as_uri())

    # -- public -----------------------------------------------------------------------

    def record(self, store: TrackedStore, job_id: str, attempt: int) -> str:
        """Log one ended attempt (idempotent) and mark it tracked in ``store``; the run id."""
        job = store.get_job(job_id)
        record = next((a for a in store.attempts(job_id) if a.number == attempt), None)
        if record is None:
            raise LabError(f"tracking: {job_id} has no attempt {attempt}")
        if record.status not in RUN_STATUS:
            raise LabError(f"tracking: {job_id} attempt {attempt} has not ended ({record.status})")
        key = f"{job_id}/{attempt}"
        experiment_id = self._experiment_id(job.experiment)
        run_id = self._complete_run(experiment_id, key)
        if run_id is None:
            run_id = self._write_run(store, experiment_id, job, record, key)
        store.mark_tracked(job_id, attempt, run_id)
        return run_id

    def find_run(self, job_id: str, attempt: int) -> Any:
        """The complete MLflow run of an attempt, or None."""
        from mlflow.entities import ViewType

        runs = self.client.search_runs(
            [e.experiment_id for e in self.client.search_experiments()],
            filter_string=f"tags.`{ATTEMPT_KEY_TAG}` = '{job_id}/{attempt}' "
            f"and tags.`{RECORDED_TAG}` = 'true'",
            run_view_type=ViewType.ACTIVE_ONLY,
        )
        return runs[0] if runs else None

    # -- experiments and runs ---------------------------------------------------------

    def _experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        found = self.client.get_experiment_by_name(name)
        if found is None:
            folder = self.artifact_root / re.sub(r"[^\w.\-]", "_", name)
            # a local store keeps files under artifact_root; a tracking server decides
            # where its experiments' files go (its --default-artifact-root / proxy)
            location = folder.as_uri() if self._local else None
            try:
                experiment_id = self.client.create_experiment(
                    name, artifact_location=location, tags={"sealroom.trust": TRUST}
                )
            except Exception:  # created meanwhile by another tracker: use that one
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        elif found.lifecycle_stage == "deleted":
            raise LabError(
                f"tracking: MLflow experiment {name!r} was deleted in {self.tracking_uri}; "
                "restore it (mlflow experiments restore) or remove it for good"
            )
        else:
            experiment_id = found.experiment_id
        self._experiments[name] = experiment_id
        return str(experiment_id)

    def _runs_of(self, experiment_id: str, key: str) -> list[Any]:
        from mlflow.entities import ViewType

        return list(
            self.client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{ATTEMPT_KEY_TAG}` = '{key}'",
                run_view_type=ViewType.ACTIVE_ONLY,
            )
        )

    def _complete_run(self, experiment_id: str, key: str) -> str | None:
        """The id of the complete run for ``key``; half-written ones are removed."""
        complete: str | None = None
        for run in self._runs_of(experiment_id, key):
            if run.data.tags.get(RECORDED_TAG) == "true" and complete is None:
                complete = run.info.run_id
            else:
                self._discard(run.info.run_id, key)
        return complete

    def _discard(self, run_id: str, key: str) -> None:
        for version in self.client.search_model_versions(f"run_id = '{run_id}'"):
            if version.tags.get(ATTEMPT_KEY_TAG) == key:
                self.client.delete_model_version(version.name, version.version)
        self.client.delete_run(run_id)

    def _write_run(
        self, store: TrackedStore, experiment_id: str, job: Any, record: Any, key: str
    ) -> str:
        from mlflow.entities import Metric, Param

        started_ms = int((record.started_at or job.created_at or time.time()) * 1000)
        ended_ms = int((record.ended_at or time.time()) * 1000)
        tags = {**self._tags(job, record, key), ATTEMPT_KEY_TAG: key}
        params = self._params(job, store.params(job.id, record.number))  # may refuse: first
        metrics = [
            Metric(mlflow_name(m.name), float(m.value), ended_ms, int(m.step))
            for m in store.metrics([job.id])
            if m.attempt == record.number
        ]
        run = self.client.create_run(
            experiment_id, start_time=started_ms, tags=tags, run_name=f"{job.id} #{record.number}"
        )
        run_id: str = run.info.run_id
        # few, large writes: each MLflow call is one sqlite commit (an fsync)
        param_batches = list(_chunks([Param(k, v) for k, v in params.items()], _BATCH)) or [[]]
        metric_batches = list(_chunks(metrics, _METRIC_BATCH - _BATCH)) or [[]]
        for index in range(max(len(param_batches), len(metric_batches))):
            batch_params = param_batches[index] if index < len(param_batches) else []
            batch_metrics = metric_batches[index] if index < len(metric_batches) else []
            if batch_params or batch_metrics:
                self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params)
        artifacts = [a for a in store.artifacts(job.id) if a.attempt == record.number]
        for artifact in artifacts:
            path = store.paths.artifacts / artifact.path
            self.client.log_artifact(run_id, str(path), artifact_path=mlflow_name(artifact.name))
        if record.status == "succeeded":
            for artifact in artifacts:
                if artifact.kind == "onnx":
                    self._register(store, experiment_id, run_id, job, record, artifact, key)
        self.client.set_tag(run_id, RECORDED_TAG, "true")
        self.client.set_terminated(run_id, RUN_STATUS[record.status], end_time=ended_ms)
        return run_id

    def _tags(self, job: Any, record: Any, key: str) -> dict[str, str]:
        tags = {
            "sealroom.job": job.id,
            "sealroom.attempt": str(record.number),
            "sealroom.entry_point": job.entry_point,
            "sealroom.entry_point_version": str(job.entry_point_version),
            "sealroom.queue": job.queue,
            "sealroom.trust": TRUST,
            "sealroom.status": record.status,
            "sealroom.job_status": job.status,
            "sealroom.depends_on": ",".join(job.depends_on),
            "sealroom.seed": str(job.seed),
        }
        if record.worker:
            tags["sealroom.worker"] = record.worker
        if record.error:
            tags["sealroom.error"] = record.error
        if job.rerun_of:
            tags["sealroom.rerun_of"] = job.rerun_of
        if job.description:
            tags["mlflow.note.content"] = job.description
        return {k: _tag_value(v) for k, v in tags.items()}

    def _params(self, job: Any, logged: Mapping[str, str]) -> dict[str, str]:
        """The parameters the attempt logged (resolved), else the job's bound parameters."""
        params: dict[str, str] = {}
        source: Mapping[str, object] = logged or job.parameters
        for name, value in sorted(source.items()):
            if len(name) > MAX_KEY:
                raise LabError(
                    f"tracking: {job.id} parameter name {name[:40]!r}… is {len(name)} "
                    f"characters; MLflow keeps at most {MAX_KEY}"
                )
            params[mlflow_name(name)] = param_value(value)
        return params

    # -- models -----------------------------------------------------------------------

    def _register(
        self,
        store: TrackedStore,
        experiment_id: str,
        run_id: str,
        job: Any,
        record: Any,
        artifact: Any,
        key: str,
    ) -> None:
        """Log one ONNX artifact as an mlflow.onnx model and register a version of it."""
        import mlflow
        import mlflow.onnx

        try:  # a bad file or name is the job's fault, not MLflow's: noted once, never retried
            # the room's check: no external data (a path MLflow would copy into the store)
            model = check_onnx(
                (store.paths.artifacts / artifact.path).read_bytes(),
                f"{job.id} artifact {artifact.name}",
                operators=False,
            )
            name = model_name(store, job, artifact.name)
        except Exception as exc:
            line = one_line(exc)
            self.client.set_tag(run_id, f"sealroom.model_error.{mlflow_name(artifact.name)}", line)
            return
        version_tags = {
            ATTEMPT_KEY_TAG: key,
            "sealroom.job": job.id,
            "sealroom.attempt": str(record.number),
            "sealroom.artifact": artifact.name,
            "sealroom.sha256": str(getattr(artifact, "sha256", "")),
            "sealroom.trust": TRUST,
        }
        logged = self.client.create_logged_model(
            experiment_id, name=mlflow_name(artifact.name), source_run_id=run_id
        )
        with _FLUENT:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            info = mlflow.onnx.log_model(
                model,
                name=mlflow_name(artifact.name),
                model_id=logged.model_id,
                run_id=run_id,
                pip_requirements=["onnxruntime"],
                save_as_external_data=False,
            )
            version = mlflow.register_model(
                info.model_uri, name, await_registration_for=0, tags=version_tags
            )
        store.record_model(name, job.id, artifact.name, mlflow_version=str(version.version))


def model_name(store: TrackedStore, job: Any, artifact: str) -> str:
    """The registry name the job's entry point gives ``artifact`` (``models:``, holding
    its parameters), else :func:`registered_model_name`."""
    text = store.get_entry_point(job.entry_point, job.entry_point_version).text
    template = parse_entry_point(text, f"{job.id} entry point").models.get(artifact)
    if template is None:
        return registered_model_name(job.experiment, artifact)
    where = f"{job.id} models.{artifact}"
    name = substitute(template, lambda ref: job.parameters.get(ref.parts[0]), where)
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise LabError(f"{where}: {name!r} is not a model name (letters, digits, . _ -)")
    return name


def registered_model_name(experiment: str, artifact: str) -> str:
    """The registry name of an artifact: one registered model per experiment and artifact,
    one version per job that produced it."""
    return f"{experiment}-{artifact}"


def model_version_map(client: Any, names: Sequence[str] | None = None) -> Mapping[str, str]:
    """``"name/version" -> job id`` for the registered models (all, or those named)."""
    found: dict[str, str] = {}
    filters: list[str | None] = [f"name = '{n}'" for n in names] if names else [None]
    for filter_string in filters:
        for version in client.search_model_versions(filter_string):
            found[f"{version.name}/{version.version}"] = version.tags.get("sealroom.job", "")
    return found
