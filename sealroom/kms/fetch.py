"""The room's side of the release protocol, for any key service (embedded or HTTP)."""

from __future__ import annotations

from sealroom.attest.evidence import Attester, make_report_data
from sealroom.contract.pipeline_signature import PipelineSignature
from sealroom.crypto.hpke import generate_ephemeral, open_sealed
from sealroom.kms.models import ReleaseRequest, release_info
from sealroom.kms.service import KeyServiceAPI
from sealroom.pipeline.schema import Pipeline


def fetch_data_key(
    service: KeyServiceAPI,
    attester: Attester,
    *,
    contract_id: str,
    package_digest: str,
    pipeline: Pipeline,
    pipeline_digest: str,
    pipeline_signature: PipelineSignature | None = None,
    run_id: str | None = None,
) -> bytes:
    """Nonce, fresh ephemeral key, evidence binding both, release, open: the plain data key.

    The ephemeral private key never leaves this function; KeyReleaseDenied propagates.
    """
    nonce = service.request_nonce()
    private_key, public_b64 = generate_ephemeral()
    evidence = attester.attest(make_report_data(nonce, public_b64))
    sealed = service.release(
        ReleaseRequest(
            evidence=evidence,
            nonce=nonce,
            ephemeral_public_key=public_b64,
            contract_id=contract_id,
            pipeline_digest=pipeline_digest,
            package_digest=package_digest,
            pipeline=pipeline.model_dump(mode="json"),
            pipeline_signature=pipeline_signature,
            run_id=run_id,
        )
    )
    return open_sealed(private_key, sealed, release_info(package_digest))
