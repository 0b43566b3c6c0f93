"""The SEV-SNP verifier: report + VCEK/VLEK + AMD's roots -> normalised Claims, offline.

Order: parse the report; find the VCEK/VLEK (supplied with the evidence, else cached in the
workspace); chain it to the shipped ARK of its family at ``now`` (CRLs when present); match
its chip, product and TCB to the report; verify the report's ECDSA P-384 signature; refuse
a debuggable guest. Policy terms (measurement, TCB floor, VMPL, host_data) are applied by
:func:`sealroom.attest.policy.check_hardware_policy` on the returned Claims.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sealroom.attest import collateral
from sealroom.attest.evidence import Claims, Evidence, binds, verification_time
from sealroom.attest.snp.chain import (
    ChainResult,
    Collateral,
    check_leaf_matches,
    common_name,
    parse_documents,
    product_family,
    verify_chain,
)
from sealroom.attest.snp.report import SnpReport, parse_report
from sealroom.attest.snp.trust import FamilyRoots, amd_roots
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

TEE_TYPE = "sev-snp"
log = logging.getLogger("sealroom.attest")


def verify_signature(report: SnpReport, result: ChainResult) -> None:
    """ECDSA P-384 / SHA-384 over bytes 0..0x29F with the chained VCEK/VLEK key."""
    key = result.leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError("the report's signing certificate has no ECDSA key")
    signature = encode_dss_signature(report.signature_r, report.signature_s)
    try:
        key.verify(signature, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(
            f"SEV-SNP report signature (offset 0x2a0) does not verify with the "
            f"{report.signing_key.upper()}"
        ) from None


def _verify_with(
    report: SnpReport,
    leaf_docs: Collateral,
    crls: Collateral,
    now: datetime,
    roots: Mapping[str, FamilyRoots],
) -> ChainResult:
    """The first leaf that verifies end to end; with one candidate, its exact refusal."""
    wanted = {"vcek": "SEV-VCEK", "vlek": "SEV-VLEK"}[report.signing_key]
    leaves = [c for c in leaf_docs.certificates if common_name(c.subject) == wanted]
    if not leaves:
        raise AttestationError(
            f"no {report.signing_key.upper()} certificate with the evidence or in the workspace "
            "collateral (sealroom attest collateral add)"
        )
    errors: list[str] = []
    for leaf in leaves:
        try:
            family = product_family(leaf, report.signing_key.upper())
            if family not in roots:
                raise AttestationError(f"no AMD roots for SEV-SNP family {family!r}")
            result = verify_chain(leaf, report.signing_key, roots[family], now, crls.crls)
            check_leaf_matches(report, result)
            verify_signature(report, result)
            return result
        except AttestationError as exc:
            errors.append(str(exc))
        except (ValueError, UnsupportedAlgorithm) as exc:  # a key or field cryptography rejects
            errors.append(f"the {report.signing_key.upper()} certificate is malformed ({exc})")
    if len(errors) == 1:
        raise AttestationError(errors[0])
    raise AttestationError(
        f"none of {len(errors)} {report.signing_key.upper()} certificates verifies the report "
        f"(first: {errors[0]})"
    )


def verify_snp_report(
    report: bytes,
    documents: list[str],
    now: datetime,
    roots: Mapping[str, FamilyRoots] | None = None,
) -> tuple[SnpReport, ChainResult]:
    """Signature, chain and TCB of a raw report against PEM ``documents``; debug not judged.

    The building block of :class:`SnpVerifier`, for callers (benchmarks, tools) that hold
    the documents themselves.
    """
    now = verification_time(now, "SEV-SNP")
    parsed = parse_report(report)
    docs = parse_documents(documents)
    result = _verify_with(parsed, docs, docs, now, roots if roots is not None else amd_roots())
    return parsed, result


def claims_of(report: SnpReport, result: ChainResult, now: datetime) -> Claims:
    return Claims(
        tee_type=TEE_TYPE,
        measurement=report.measurement.hex(),
        insecure=False,
        debug=report.debug,
        report_data=report.report_data,
        issued_at=now,
        platform=result.family,
        signing_key=report.signing_key,
        vmpl=report.vmpl,
        tcb=report.tcb(result.family).as_dict(),
        host_data=report.host_data.hex(),
    )


class SnpVerifier:
    """Verifies SEV-SNP evidence (payload = the raw 1184-byte report) against AMD's roots."""

    tee_type = TEE_TYPE

    def __init__(self, roots: Mapping[str, FamilyRoots] | None = None) -> None:
        self._roots = roots  # None: AMD's shipped roots, loaded (and pinned) on first use

    def verify(
        self, evidence: Evidence, ws: Workspace | None, now: datetime | None = None
    ) -> Claims:
        now = verification_time(now, "SEV-SNP")
        report = parse_report(evidence.payload)
        supplied = parse_documents(list(evidence.certificates))
        cached = parse_documents(collateral.snp_documents(ws))
        wanted = "SEV-VCEK" if report.signing_key == "vcek" else "SEV-VLEK"
        has_leaf = any(common_name(c.subject) == wanted for c in supplied.certificates)
        leaves = supplied if has_leaf else cached
        crls = Collateral((), supplied.crls + cached.crls)
        roots = self._roots if self._roots is not None else amd_roots()
        result = _verify_with(report, leaves, crls, now, roots)
        if not result.crl_checked:
            log.info("SEV-SNP: no %s CRL supplied or cached; revocation not checked", result.family)
        if report.debug:
            raise AttestationError(
                f"SEV-SNP guest policy 0x{report.policy:x} (offset 0x8) allows debugging: the "
                "host can read the guest's memory"
            )
        return claims_of(report, result, now)


def check_binding(claims: Claims, nonce: bytes, ephemeral_public_key_b64: str) -> None:
    """report_data must be SHA-512(nonce || key), as the key service requires of any evidence."""
    if not binds(claims, nonce, ephemeral_public_key_b64):
        raise AttestationError(
            "SEV-SNP report_data (offset 0x50) does not bind this nonce and ephemeral key"
        )
