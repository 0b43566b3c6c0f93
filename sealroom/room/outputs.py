"""Outputs leave the room sealed to the consumer: one fresh data key per run, HPKE-wrapped.

Layout of ``runs/<run id>/``: ``outputs.key`` (the run's AES-256 key, HPKE-sealed to the
consumer's X25519 key with info ``b"sealroom run outputs" + run id``) and
``outputs/<name>.sealed`` (AES-256-GCM: 12-byte nonce || ciphertext, the associated data
binding run id and output name, so a file cannot be swapped between runs or names).
The receipt lists each output's plaintext and sealed SHA-256, so any edit is named.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict

from sealroom.crypto.hpke import seal_to
from sealroom.crypto.identity import Party
from sealroom.errors import SealError, WrongKeyError

KEY_FILE = "outputs.key"
OUTPUT_DIR = "outputs"
SUFFIX = ".sealed"
NONCE_BYTES = 12


class SealedOutput(BaseModel):
    """One released output as the receipt lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    size: int
    sha256: str  # of the plaintext the consumer will get
    sealed_sha256: str  # of the file on disk


def key_info(run_id: str) -> bytes:
    return b"sealroom run outputs" + run_id.encode("ascii")


def _aad(run_id: str, name: str) -> bytes:
    return b"sealroom run output\0" + run_id.encode("ascii") + b"\0" + name.encode("utf-8")


def _sealed_path(run_dir: Path, name: str) -> Path:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise SealError(f"output name {name!r} leaves the run folder")
    return run_dir.joinpath(OUTPUT_DIR, *parts).with_name(parts[-1] + SUFFIX)


def seal_outputs(
    files: dict[str, bytes],
    kinds: dict[str, str],
    consumer_key_b64: str,
    run_id: str,
    run_dir: Path,
) -> tuple[list[SealedOutput], str]:
    """Seal every file under ``run_dir``; returns their receipt entries and the key file's hash."""
    data_key = secrets.token_bytes(32)
    aead = AESGCM(data_key)
    sealed: list[SealedOutput] = []
    for name in sorted(files):
        data = files[name]
        nonce = secrets.token_bytes(NONCE_BYTES)
        blob = nonce + aead.encrypt(nonce, data, _aad(run_id, name))
        path = _sealed_path(run_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        sealed.append(
            SealedOutput(
                name=name,
                kind=kinds.get(name, "other"),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                sealed_sha256=hashlib.sha256(blob).hexdigest(),
            )
        )
    wrapped = seal_to(consumer_key_b64, data_key, key_info(run_id))
    (run_dir / KEY_FILE).write_bytes(wrapped)
    del data_key, aead
    return sealed, hashlib.sha256(wrapped).hexdigest()


def check_sealed(run_dir: Path, outputs: list[SealedOutput], key_sha256: str) -> None:
    """SealError naming the first sealed file that is missing or differs from the receipt."""
    key_path = run_dir / KEY_FILE
    if not key_path.exists():
        raise SealError(f"{key_path}: missing")
    if hashlib.sha256(key_path.read_bytes()).hexdigest() != key_sha256:
        raise SealError(f"{key_path}: does not match the digest in the run receipt")
    for output in outputs:
        path = _sealed_path(run_dir, output.name)
        if not path.exists():
            raise SealError(f"{path}: missing (the receipt lists output {output.name})")
        if hashlib.sha256(path.read_bytes()).hexdigest() != output.sealed_sha256:
            raise SealError(f"{path}: does not match the digest in the run receipt (edited)")


def open_outputs(
    run_dir: Path, run_id: str, outputs: list[SealedOutput], consumer: Party
) -> dict[str, bytes]:
    """Decrypt every output with the consumer's private key; each checked against the receipt."""
    try:
        data_key = consumer.decrypt_key((run_dir / KEY_FILE).read_bytes(), key_info(run_id))
    except WrongKeyError:
        raise WrongKeyError(
            f"{run_dir / KEY_FILE}: the outputs are sealed to another party, not {consumer.name}"
        ) from None
    aead = AESGCM(data_key)
    files: dict[str, bytes] = {}
    for output in outputs:
        path = _sealed_path(run_dir, output.name)
        blob = path.read_bytes()
        try:
            data = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(run_id, output.name))
        except InvalidTag:
            raise SealError(f"{path}: does not decrypt (edited or from another run)") from None
        if hashlib.sha256(data).hexdigest() != output.sha256:
            raise SealError(f"{path}: plaintext does not match the digest in the run receipt")
        files[output.name] = data
    return files
