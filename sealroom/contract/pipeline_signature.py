"""The consumer's signature on the pipeline it wants run under one contract.

Without it, whoever starts ``sealroom run`` picks the pipeline: any document the contract's
constraints allow would do, so an operator could substitute its own. The consumer signs

    "sealroom.pipeline.v1:" || contract_id || ":" || contract_digest || ":" || pipeline_digest

with the signing key the contract pins for it. Binding the contract (id and digest of its
canonical bytes) keeps a signature from being replayed under another contract, or under
another contract that happens to reuse the id; binding the pipeline digest (the
``sealroom pipeline compose`` digest) keeps it from covering another pipeline. None of the
three parts can contain ':' (ids and digests are pattern-checked), so the message is
unambiguous. This module works on digest strings only: the contract package never imports
the pipeline package.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.contract.canonical import contract_digest
from sealroom.contract.schema import DIGEST_PATTERN, ID_PATTERN, NAME_PATTERN, Contract
from sealroom.crypto.identity import Party
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import SignatureError
from sealroom.files import read_capped, write_atomic

DOMAIN = "sealroom.pipeline.v1"
SIGNATURE_SUFFIX = ".sig"
MAX_SIGNATURE_FILE_BYTES = 64 << 10


class PipelineSignatureError(SignatureError):
    """A pipeline signature is missing, malformed, by the wrong party or for something else."""


class PipelineSignature(BaseModel):
    """A consumer's Ed25519 signature over one pipeline digest under one contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: str = Field(pattern=ID_PATTERN)
    contract_digest: str = Field(pattern=DIGEST_PATTERN)
    pipeline_digest: str = Field(pattern=DIGEST_PATTERN)
    signer: str = Field(pattern=NAME_PATTERN)
    signature: str = Field(max_length=200)  # base64 Ed25519 (88 characters)


def signed_message(contract_id: str, contract_sha: str, pipeline_digest: str) -> bytes:
    """The domain-separated bytes a pipeline signature covers."""
    return f"{DOMAIN}:{contract_id}:{contract_sha}:{pipeline_digest}".encode("ascii")


def sign_pipeline(contract: Contract, pipeline_digest: str, signer: Party) -> PipelineSignature:
    """``signer`` (who must be the contract's consumer) signs ``pipeline_digest``."""
    if signer.name != contract.consumer:
        raise PipelineSignatureError(
            f"contract {contract.id}: only its consumer {contract.consumer!r} signs pipelines, "
            f"not {signer.name!r}"
        )
    digest = contract_digest(contract)
    signature = signer.sign(signed_message(contract.id, digest, pipeline_digest))
    return PipelineSignature(
        contract_id=contract.id,
        contract_digest=digest,
        pipeline_digest=pipeline_digest,
        signer=signer.name,
        signature=b64(signature),
    )


def verify_pipeline_signature(
    signature: PipelineSignature | None, contract: Contract, pipeline_digest: str
) -> None:
    """PipelineSignatureError unless the contract's consumer signed this pipeline under it."""
    where = f"contract {contract.id}"
    if signature is None:
        raise PipelineSignatureError(
            f"{where}: the pipeline carries no signature from the consumer "
            f"{contract.consumer!r} (it signs with `sealroom pipeline sign`)"
        )
    if signature.signer != contract.consumer:
        raise PipelineSignatureError(
            f"{where}: pipeline signed by {signature.signer!r}, "
            f"not by the contract's consumer {contract.consumer!r}"
        )
    if signature.contract_id != contract.id:
        raise PipelineSignatureError(
            f"{where}: the pipeline signature is for contract {signature.contract_id}"
        )
    digest = contract_digest(contract)
    if signature.contract_digest != digest:
        raise PipelineSignatureError(
            f"{where}: the pipeline signature is for another contract of that id "
            f"({signature.contract_digest}, not {digest})"
        )
    if signature.pipeline_digest != pipeline_digest:
        raise PipelineSignatureError(
            f"{where}: the pipeline signature covers {signature.pipeline_digest}, "
            f"not this pipeline ({pipeline_digest})"
        )
    key = contract.party(contract.consumer).signing_key
    try:
        raw = unb64(signature.signature, f"pipeline signature of {signature.signer!r}")
        verify_signature(
            key, raw, signed_message(contract.id, digest, pipeline_digest), signature.signer
        )
    except SignatureError:
        raise PipelineSignatureError(
            f"{where}: the pipeline signature from {signature.signer!r} does not verify "
            "with the signing key the contract lists for it"
        ) from None


def signature_path(pipeline_path: Path) -> Path:
    """Where a pipeline's signature lives by default: beside it, with ``.sig`` appended."""
    return Path(f"{pipeline_path}{SIGNATURE_SUFFIX}")


def save_pipeline_signature(path: Path, signature: PipelineSignature) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (signature.model_dump_json(indent=2) + "\n").encode("utf-8"))


def load_pipeline_signature(path: Path) -> PipelineSignature:
    """Read a ``.sig`` file; PipelineSignatureError (naming the file) if it is not one."""
    raw = read_capped(
        path, MAX_SIGNATURE_FILE_BYTES, "the pipeline signature", PipelineSignatureError
    )
    try:
        return PipelineSignature.model_validate(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PipelineSignatureError(f"{path}: not a JSON pipeline signature") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "document"
        raise PipelineSignatureError(f"{path}: {field}: {first['msg']}") from None
