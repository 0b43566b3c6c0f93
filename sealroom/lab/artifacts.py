"""Committed artifacts on disk: ``artifacts/<job>/<attempt>/<filename>``, each recorded
with its sha256 in the lab database.

A commit is atomic: files go to a temporary folder beside the destination, are fsynced,
and the folder is renamed into place inside the one transaction that records the
artifacts and marks the attempt and the job succeeded. If the job is no longer running
that attempt (cancelled, timed out, superseded by a newer attempt), nothing is committed
and the temporary folder is removed. A crash leaves either nothing recorded (an orphan
folder at most, never read) or everything.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from sqlite3 import Connection

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.paths import LabPaths
from sealroom.lab.store import LabStore
from sealroom.lab.store_records import ArtifactRecord

KINDS = frozenset({"onnx", "npz", "json", "csv", "png", "text"})
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TMP_PREFIX = ".tmp-"

# Inside the commit transaction: return False to refuse the commit (the job moved on).
Finish = Callable[[Connection, list[ArtifactRecord]], bool]


def check_blobs(job_id: str, blobs: dict[str, ArtifactBlob]) -> None:
    """Refuse names, kinds and file names that could escape or clash, naming the artifact."""
    filenames: set[str] = set()
    for key, blob in blobs.items():
        where = f"job {job_id}: artifact {key!r}"
        if key != blob.name or _NAME.match(blob.name) is None:
            raise LabError(f"{where}: not a valid artifact name")
        if blob.kind not in KINDS:
            raise LabError(f"{where}: kind {blob.kind!r} is not one of {', '.join(sorted(KINDS))}")
        if _FILENAME.match(blob.filename) is None or ".." in blob.filename:
            raise LabError(f"{where}: file name {blob.filename!r} is not a plain file name")
        if blob.filename in filenames:
            raise LabError(f"{where}: file name {blob.filename!r} is used twice")
        if not isinstance(blob.data, bytes):
            raise LabError(f"{where}: data is not bytes")
        filenames.add(blob.filename)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    """Writes and reads committed artifacts under ``paths.artifacts``."""

    def __init__(self, paths: LabPaths) -> None:
        self.root = paths.artifacts

    def attempt_dir(self, job_id: str, attempt: int) -> Path:
        return self.root / job_id / str(attempt)

    def commit(
        self,
        job_id: str,
        attempt: int,
        blobs: dict[str, ArtifactBlob],
        *,
        store: LabStore,
        finish: Finish,
    ) -> bool:
        """Write, fsync and rename the attempt's files and record them with ``finish`` in one
        transaction. Returns False (nothing kept) when ``finish`` refuses."""
        check_blobs(job_id, blobs)
        job_dir = self.root / job_id
        job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{attempt}-", dir=job_dir))
        final = self.attempt_dir(job_id, attempt)
        try:
            records = []
            for blob in sorted(blobs.values(), key=lambda b: b.name):
                path = tmp / blob.filename
                with path.open("xb") as handle:
                    handle.write(blob.data)
                    handle.flush()
                    os.fsync(handle.fileno())
                records.append(
                    ArtifactRecord(
                        job_id,
                        attempt,
                        blob.name,
                        blob.kind,
                        blob.filename,
                        hashlib.sha256(blob.data).hexdigest(),
                        len(blob.data),
                        f"{job_id}/{attempt}/{blob.filename}",
                    )
                )
            _fsync_dir(tmp)
            with store.transaction() as conn:
                if not finish(conn, records):
                    return False
                if final.exists():  # an orphan of a crash between rename and commit
                    shutil.rmtree(final)
                os.replace(tmp, final)
                _fsync_dir(job_dir)
                conn.executemany(
                    "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.job_id, r.attempt, r.name, r.kind, r.filename, r.sha256, r.size, r.path)
                        for r in records
                    ],
                )
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def read(self, record: ArtifactRecord) -> ArtifactBlob:
        """The committed bytes, checked against the recorded sha256."""
        path = (self.root / record.path).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise LabError(f"job {record.job_id}: artifact {record.name!r} path escapes the store")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LabError(
                f"job {record.job_id}: artifact {record.name!r} is unreadable: {exc.strerror}"
            ) from None
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise LabError(
                f"job {record.job_id}: artifact {record.name!r} does not match its recorded sha256"
            )
        return ArtifactBlob(record.name, record.kind, record.filename, data)

    def sweep(self) -> int:
        """Remove temporary folders a crash left behind; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for job_dir in self.root.iterdir():
            if not job_dir.is_dir():
                continue
            for child in job_dir.iterdir():
                if child.name.startswith(TMP_PREFIX):
                    shutil.rmtree(child, ignore_errors=True)
                    removed += 1
        return removed
