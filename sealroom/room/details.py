"""Failure details, sealed to the consumer, for contracts that allow them.

A failure reason in the ledger is a category only (failures.py). A contract without privacy
terms may set ``constraints.failure_details``; then a failed run's folder keeps
``outputs/error.txt.sealed`` (the exception's class and message, sealed to the consumer like
any output) and ``failed.json``, a note without a receipt: the run failed, so the ledger
holds only its ``run.failed`` entry. The operator moves the folder into place unopened.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sealroom.crypto.identity import Party, PublicIdentity
from sealroom.errors import SealError
from sealroom.room.outputs import SealedOutput, check_sealed, open_outputs, seal_outputs

NOTE_FILE = "failed.json"
ERROR_FILE = "error.txt"
MAX_DETAILS = 4096


class FailureNote(BaseModel):
    """``failed.json``: which run, where it failed, and the sealed details' digests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    stage: str
    reason: str
    consumer: str
    note: str
    outputs: list[SealedOutput]
    outputs_key_sha256: str


def seal_details(
    staging: Path,
    run_id: str,
    stage: str,
    reason: str,
    exc: BaseException,
    consumer: PublicIdentity,
) -> None:
    """Seal the exception's text to the consumer in ``staging`` and write the note."""
    text = f"stage {stage}: {type(exc).__name__}: {exc}"[:MAX_DETAILS] + "\n"
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    sealed, key_sha = seal_outputs(
        {ERROR_FILE: text.encode("utf-8")},
        {ERROR_FILE: "error"},
        consumer.encryption_key,
        run_id,
        staging,
    )
    note = FailureNote(
        run_id=run_id,
        stage=stage,
        reason=reason,
        consumer=consumer.name,
        note=f"no receipt: the run failed; {ERROR_FILE} is sealed to {consumer.name}",
        outputs=sealed,
        outputs_key_sha256=key_sha,
    )
    (staging / NOTE_FILE).write_text(note.model_dump_json(indent=2) + "\n", encoding="utf-8")


def load_note(run_dir: Path) -> FailureNote | None:
    """The failure note of a failed run's folder, None if there is none."""
    path = run_dir / NOTE_FILE
    if not path.is_file():
        return None
    try:
        return FailureNote.model_validate_json(path.read_bytes())
    except ValidationError:
        raise SealError(f"{path}: not a failure note") from None


def open_details(run_dir: Path, note: FailureNote, consumer: Party) -> str:
    """The sealed failure details, for the consumer they are sealed to."""
    if [o.name for o in note.outputs] != [ERROR_FILE]:
        raise SealError(f"{run_dir / NOTE_FILE}: lists outputs other than {ERROR_FILE}")
    check_sealed(run_dir, note.outputs, note.outputs_key_sha256)
    files = open_outputs(run_dir, note.run_id, note.outputs, consumer)
    return files[ERROR_FILE].decode("utf-8", "replace")
