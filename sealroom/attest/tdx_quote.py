"""Helpers of the TDX verifier: Intel's pinned root, the quote's framing, dcap-qvl's errors.

dcap-qvl parses and verifies; this module adds what it leaves to the caller: a trust anchor
checked against a pinned fingerprint, a refusal of any slack in the unsigned framing, the
collateral lookup (with a rollback check against the workspace cache), and one-line
messages for the library's multi-line errors.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealroom.attest import collateral
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

if TYPE_CHECKING:
    from dcap_qvl import Quote, QuoteCollateralV3

INTEL_ROOT_FILE = (
    Path(__file__).parent / "intel" / "Intel_SGX_Provisioning_Certification_RootCA.pem"
)
# SHA-256 of the DER Intel SGX Root CA (see intel/README.md for where it comes from).
INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"

TEE_TYPE_TDX = 0x81
HEADER_SIZE = 48
TD_REPORT10_SIZE = 584
# TD attributes, little-endian u64 (Intel TDX module ABI, TDREPORT.TD_ATTRIBUTES)
TD_ATTR_DEBUG = 1 << 0


def intel_root_der(path: Path | None = None) -> bytes:
    """The shipped Intel SGX Root CA as DER, refused unless its fingerprint is the pinned one."""
    path = path or INTEL_ROOT_FILE
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AttestationError(f"{path}: unreadable Intel root certificate ({exc})") from None
    der = cert.public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).hexdigest()
    if digest != INTEL_ROOT_SHA256:
        raise AttestationError(
            f"{path}: root certificate SHA-256 is {digest}, not Intel's pinned "
            f"{INTEL_ROOT_SHA256}: the package's trust anchor was replaced"
        )
    return der


def _u(fmt: str, raw: bytes, offset: int) -> int:
    try:
        return int(struct.unpack_from(fmt, raw, offset)[0])
    except struct.error:
        raise AttestationError(f"TDX quote is truncated ({len(raw)} bytes)") from None


def check_framing(raw: bytes) -> list[x509.Certificate]:
    """Refuse a quote whose unsigned framing is not exactly what its signed parts need.

    dcap-qvl tolerates some slack outside the signed bytes: a signature-data length one
    byte too long, another outer certification-data type, whitespace or a stray byte in
    the PEM chain, data after the quote. None of it is signed, so none of it can forge a
    claim, but sealroom wants every flipped bit refused: the sizes must add up, the types
    must be QE report (6) holding a PCK chain (5), the chain must be canonical PEM, and only
    zero padding may follow the quote (the published v4 sample carries 70 zero bytes).
    """
    version = _u("<H", raw, 0)
    if version == 4:
        body_end = HEADER_SIZE + TD_REPORT10_SIZE
    elif version == 5:
        body_end = HEADER_SIZE + 6 + _u("<I", raw, HEADER_SIZE + 2)
    else:
        raise AttestationError(f"TDX quote version {version} is not supported (4 or 5)")
    sig_size = _u("<I", raw, body_end)
    sig = body_end + 4  # ECDSA signature (64), attestation key (64), certification data
    outer_type, outer_size = _u("<H", raw, sig + 128), _u("<I", raw, sig + 130)
    qe = sig + 134  # QE report (384), its signature (64), authentication data, PCK chain
    auth = _u("<H", raw, qe + 448)
    pck = qe + 450 + auth
    inner_type, inner_size = _u("<H", raw, pck), _u("<I", raw, pck + 2)
    end = pck + 6 + inner_size
    if outer_type != 6 or inner_type != 5:
        raise AttestationError(
            f"TDX quote certification data types are {outer_type}/{inner_type}, expected 6/5 "
            "(QE report holding a PCK certificate chain)"
        )
    if sig_size != 134 + outer_size or outer_size != 450 + auth + 6 + inner_size:
        raise AttestationError(
            f"TDX quote signature data sizes do not add up (signature data {sig_size}, "
            f"certification data {outer_size}, PCK chain {inner_size} bytes)"
        )
    if len(raw) < end:
        raise AttestationError(f"TDX quote is truncated: {len(raw)} of {end} bytes")
    if raw[end:].strip(b"\0"):
        raise AttestationError(f"TDX quote has unsigned non-zero bytes after offset {end}")
    chain = raw[pck + 6 : end]
    try:
        certs = x509.load_pem_x509_certificates(chain.removesuffix(b"\0"))
    except ValueError as exc:
        reason = " ".join(str(exc).split())
        raise AttestationError(f"TDX quote PCK certificate chain is not PEM ({reason})") from None
    if b"".join(c.public_bytes(Encoding.PEM) for c in certs) != chain.removesuffix(b"\0"):
        raise AttestationError(
            f"TDX quote PCK certificate chain at offset {pck + 6} is not canonical PEM"
        )
    return certs


def parse_tdx_quote(raw: bytes, root_der: bytes) -> Quote:
    """dcap-qvl's parse of a TDX quote; SGX quotes, other versions and stray bytes refused.

    dcap-qvl anchors the chain at its given root and skips the root certificate the quote
    carries, so a quote with an altered copy of the root would pass; sealroom requires that
    copy to be byte for byte the root it trusts.
    """
    import dcap_qvl

    try:
        quote = dcap_qvl.parse_quote(raw)
    except ValueError as exc:
        raise AttestationError(f"TDX quote does not parse: {dcap_reason(exc)}") from None
    if quote.header.tee_type != TEE_TYPE_TDX or not quote.is_tdx():
        raise AttestationError(
            f"quote is for TEE type {quote.header.tee_type:#x} ({quote.quote_type()}), "
            f"not TDX ({TEE_TYPE_TDX:#x})"
        )
    chain = check_framing(raw)
    carried = chain[-1].public_bytes(Encoding.DER) if chain else b""
    if carried != root_der:
        raise AttestationError(
            f"TDX quote PCK chain ends in {hashlib.sha256(carried).hexdigest()}, "
            f"not the trusted Intel root {hashlib.sha256(root_der).hexdigest()}"
        )
    return quote


def quote_fmspc(quote: Quote) -> str:
    """The platform's FMSPC (12 hex digits) from the PCK certificate inside the quote."""
    extension = quote.pck_extension()
    if extension is None:
        raise AttestationError(
            "TDX quote carries no readable PCK certificate (certification data type 5 expected)"
        )
    return bytes(extension.fmspc).hex()


def load_collateral(text: str, ws: Workspace | None, fmspc: str) -> tuple[QuoteCollateralV3, str]:
    """The collateral to verify with and where it came from: the evidence's, else the cache.

    Collateral in the evidence is Intel-signed, but an attester may pick an older document
    that is still inside its validity window and rates its platform better; where the
    workspace caches newer collateral for the FMSPC, the older one is refused.
    """
    cached = collateral.tdx_collateral(ws, fmspc)
    cache_name = f"workspace collateral tdx/{fmspc}.json"
    if not text:
        if cached is None:
            where = (
                "there is no workspace to look in"
                if ws is None
                else f"the workspace has no {collateral.collateral_dir(ws) / 'tdx' / fmspc}.json"
            )
            raise AttestationError(
                f"no TDX collateral for FMSPC {fmspc}: the evidence carries none and {where} "
                "(fetch it from Intel PCS once, then: sealroom attest collateral add)"
            )
        return _parse_collateral(cached, cache_name), cache_name
    supplied = _parse_collateral(text, "the evidence")
    if cached is not None:
        ours = _evaluation_number(_parse_collateral(cached, cache_name), cache_name)
        theirs = _evaluation_number(supplied, "the evidence")
        if theirs < ours:
            raise AttestationError(
                f"TDX collateral in the evidence has TCB evaluation data number {theirs}, "
                f"older than the {ours} of the {cache_name}: refused as a rollback"
            )
    return supplied, "the evidence"


def _parse_collateral(text: str, where: str) -> QuoteCollateralV3:
    import dcap_qvl

    try:
        return dcap_qvl.QuoteCollateralV3.from_json(text)
    except ValueError as exc:
        raise AttestationError(
            f"TDX collateral in {where} is not dcap-qvl QuoteCollateralV3 JSON: {dcap_reason(exc)}"
        ) from None


def _evaluation_number(doc: QuoteCollateralV3, where: str) -> int:
    try:
        number = json.loads(doc.tcb_info)["tcbEvaluationDataNumber"]
    except (ValueError, TypeError, KeyError):
        number = None
    if not isinstance(number, int) or isinstance(number, bool):
        raise AttestationError(f"TDX collateral in {where}: TCB info has no evaluation number")
    return number


def dcap_reason(exc: BaseException) -> str:
    """dcap-qvl's error text (``msg\\n\\nCaused by:\\n    cause``) as ``msg (cause)``."""
    head, _, causes = str(exc).partition("Caused by:")
    parts = [" ".join(head.split())]
    parts += [" ".join(c.split()) for c in causes.strip().splitlines() if c.strip()]
    text = parts[0].removeprefix("Verification failed: ")
    return f"{text} ({'; '.join(parts[1:])})" if len(parts) > 1 else text


def explain(reason: str, fmspc: str, where: str, moment: str) -> str:
    """A refusal line that says what dcap-qvl's reason means for the person reading it."""
    lowered = reason.lower()
    if "expired" in lowered or "in the future" in lowered:
        return (
            f"TDX collateral from {where} is not valid at {moment}: {reason} "
            "(fetch current collateral from Intel PCS: sealroom attest collateral add)"
        )
    if "fmspc mismatch" in lowered:
        return f"TDX collateral from {where} is for another platform than FMSPC {fmspc}: {reason}"
    if "no matching tcb level" in lowered:
        return (
            f"the platform's TCB (FMSPC {fmspc}) is below every level Intel's TCB info "
            f"lists: {reason}"
        )
    if "signature" in lowered:
        return f"TDX quote or collateral signature does not verify: {reason}"
    if "root ca" in lowered or "crl" in lowered or "cert" in lowered:
        return f"TDX certificate chain to Intel's root does not verify: {reason}"
    return f"TDX quote does not verify: {reason}"


@dataclass(frozen=True)
class TdReport:
    """The TD report fields sealroom reads, as bytes (dcap-qvl's names)."""

    mr_td: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    td_attributes: int

    @classmethod
    def of(cls, quote: Quote) -> TdReport:
        import dcap_qvl

        report = quote.report
        # dcap-qvl's report classes do not inherit at run time, so name all three
        if not isinstance(
            report, (dcap_qvl.TdReport10, dcap_qvl.TdReport15, dcap_qvl.TdReport15Ex)
        ):
            raise AttestationError("TDX quote carries no TD report")
        return cls(
            mr_td=bytes(report.mr_td),
            rtmrs=(
                bytes(report.rt_mr0),
                bytes(report.rt_mr1),
                bytes(report.rt_mr2),
                bytes(report.rt_mr3),
            ),
            report_data=bytes(report.report_data),
            td_attributes=int.from_bytes(bytes(report.td_attributes), "little"),
        )

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes & TD_ATTR_DEBUG)
