"""The pipeline half of a training key release: the document the room sends is the one the
contract allows.

Its digest matches the request, the contract's pin (if any) names it, the consumer signed it
for this contract, and the contract policy (Rego) allows it for the package asked for.
"""

from __future__ import annotations

from sealroom.attest.evidence import Claims
from sealroom.contract.pipeline_signature import (
    PipelineSignatureError,
    verify_pipeline_signature,
)
from sealroom.contract.schema import Contract
from sealroom.errors import ConfigError
from sealroom.kms.denied import Denied
from sealroom.kms.models import ReleaseRequest
from sealroom.pipeline.compose import pipeline_digest, validate_part
from sealroom.pipeline.schema import Pipeline
from sealroom.policy.pipeline_check import check_pipeline


def checked_pipeline(request: ReleaseRequest, contract: Contract, claims: Claims) -> Pipeline:
    """The request's pipeline document, validated; Denied with the first thing wrong."""
    if request.pipeline is None:
        raise Denied("the request carries no pipeline document to check")
    try:
        pipeline = validate_part(Pipeline, request.pipeline, "release request pipeline")
    except ConfigError as exc:
        raise Denied(f"pipeline document is invalid: {exc}") from None
    digest = pipeline_digest(pipeline)
    if digest != request.pipeline_digest:
        raise Denied(
            f"pipeline digest mismatch: the request names {request.pipeline_digest} "
            f"but the pipeline sent hashes to {digest}"
        )
    _check_pins(request, contract, digest)
    packages = {
        d.id: d.package_digest
        for d in contract.datasets
        if d.package_digest == request.package_digest
    }
    decision = check_pipeline(contract, pipeline, packages=packages)
    if not decision.allow:
        raise Denied(
            "pipeline violates the contract: " + "; ".join(decision.violations),
            measurement=claims.measurement,
        )
    return pipeline


def _check_pins(request: ReleaseRequest, contract: Contract, digest: str) -> None:
    """The pipeline is the one the contract pins (if any) and its consumer signed."""
    pinned = contract.constraints.pipeline_digest
    if pinned is not None and digest != pinned:
        raise Denied(f"contract {contract.id} pins pipeline {pinned}; this pipeline is {digest}")
    try:
        verify_pipeline_signature(request.pipeline_signature, contract, digest)
    except PipelineSignatureError as exc:
        raise Denied(str(exc)) from None
