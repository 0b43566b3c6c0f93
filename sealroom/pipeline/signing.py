"""The consumer signs a pipeline file for one contract: the ``.sig`` that ``sealroom run`` sends.

The signature itself (what is signed, how it is checked) lives in
:mod:`sealroom.contract.pipeline_signature`; this module joins it to pipeline files, the
contract store and the signer's keys.
"""

from __future__ import annotations

from pathlib import Path

from sealroom.contract.pipeline_signature import (
    PipelineSignature,
    save_pipeline_signature,
    sign_pipeline,
    signature_path,
)
from sealroom.contract.store import load_contract
from sealroom.crypto.identity import load_party
from sealroom.pipeline.compose import load_pipeline, pipeline_digest
from sealroom.workspace import Workspace


def sign_pipeline_file(
    ws: Workspace,
    pipeline_path: Path,
    contract_id: str,
    signer: str,
    out: Path | None = None,
) -> tuple[Path, PipelineSignature]:
    """Sign the pipeline at ``pipeline_path`` (file or parts folder) as ``signer`` under
    ``contract_id``; write the signature to ``out`` (default: the pipeline path + ``.sig``)."""
    digest = pipeline_digest(load_pipeline(pipeline_path))
    contract = load_contract(ws, contract_id).contract
    signature = sign_pipeline(contract, digest, load_party(ws, signer))
    path = out or signature_path(pipeline_path)
    save_pipeline_signature(path, signature)
    return path, signature
