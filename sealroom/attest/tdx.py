"""Intel TDX quotes verified offline with dcap-qvl, anchored at Intel's root shipped here.

A TDX quote (DCAP v4 or v5) is a TD report (MRTD, RTMR0..3, report_data, TD attributes)
signed by the platform's Quoting Enclave, whose key is certified by a PCK certificate that
chains to the Intel SGX Root CA. dcap-qvl checks those signatures, the chain and the CRLs,
and matches the platform's TCB against Intel's signed TCB info and QE identity
(collateral). The collateral comes with the evidence or from the workspace cache; nothing is
fetched. What the room may be trusted with (MRTD, RTMRs, TCB status, advisories) is the
release policy's call (:func:`sealroom.attest.policy.check_hardware_policy`); a debug TD is
refused here outright, since its host can read and change its memory.
"""

from __future__ import annotations

from datetime import datetime

from sealroom.attest.evidence import Claims, Evidence, verification_time
from sealroom.attest.tdx_quote import (
    TdReport,
    dcap_reason,
    explain,
    intel_root_der,
    load_collateral,
    parse_tdx_quote,
    quote_fmspc,
)
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

TEE_TYPE = "tdx"
# dcap-qvl's TCB statuses a verified quote may carry into claims; the policy picks among
# them. "Revoked" (and anything unknown) is refused by the verifier itself.
CARRIED_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
)


class TdxVerifier:
    """Verifies a raw DCAP TDX quote (``evidence.payload``) into normalised Claims.

    ``root_ca_der`` replaces the shipped Intel root (tests with a self-made chain); by
    default the shipped PEM is loaded once and must match the pinned fingerprint.
    """

    tee_type = TEE_TYPE

    def __init__(self, root_ca_der: bytes | None = None) -> None:
        self._root = root_ca_der

    def root_ca_der(self) -> bytes:
        if self._root is None:
            self._root = intel_root_der()
        return self._root

    def verify(
        self, evidence: Evidence, ws: Workspace | None, now: datetime | None = None
    ) -> Claims:
        import dcap_qvl

        if evidence.tee_type != TEE_TYPE:
            raise AttestationError(f"TDX verifier given {evidence.tee_type!r} evidence")
        moment = verification_time(now, "TDX")
        quote = parse_tdx_quote(evidence.payload, self.root_ca_der())
        fmspc = quote_fmspc(quote)
        collateral, where = load_collateral(evidence.collateral, ws, fmspc)
        try:
            verified = dcap_qvl.verify_with_root_ca(
                evidence.payload, collateral, self.root_ca_der(), int(moment.timestamp())
            )
        except ValueError as exc:
            raise AttestationError(
                explain(dcap_reason(exc), fmspc, where, moment.isoformat())
            ) from None
        status = str(verified.status)
        if status not in CARRIED_STATUSES:
            raise AttestationError(
                f"TDX platform FMSPC {fmspc} has TCB status {status}: refused whatever the policy"
            )
        report = TdReport.of(quote)
        if report.debug:
            raise AttestationError(
                "TDX quote is from a debug TD (TD_ATTRIBUTES.DEBUG set): the host can read "
                "and change its memory"
            )
        return Claims(
            tee_type=TEE_TYPE,
            measurement=report.mr_td.hex(),
            insecure=False,
            debug=False,
            report_data=report.report_data,
            issued_at=moment,
            platform="TDX",
            signing_key="pck",
            tcb_status=status,
            advisory_ids=[str(a) for a in verified.advisory_ids],
            rtmrs=[r.hex() for r in report.rtmrs],
        )
