"""Vendor collateral cached in a workspace, so that verification never goes online.

SEV-SNP needs the VCEK (or VLEK) certificate of the chip that signed a report and AMD's
CRLs; TDX needs Intel's TCB info, QE identity and CRLs for the platform's FMSPC. An
attester may ship them with its evidence; a key owner who fetched them once (on a machine
with internet, from AMD KDS or Intel PCS) stores them here with ``sealroom attest
collateral add``. Nothing in this folder is a trust anchor: the vendors' root
certificates ship in the package, and every cached document must chain to them.

``add_document`` validates what goes in (certificates and CRLs parse; TDX JSON has every
QuoteCollateralV3 field and its TCB info names the FMSPC it is filed under) and writes it
atomically; a private key or any other PEM block is refused.

Layout under ``<workspace>/attest/collateral``::

    snp/<name>.pem      PEM certificates and CRLs (VCEK, VLEK, ASK, ASVK, CRLs)
    tdx/<fmspc>.json    dcap-qvl QuoteCollateralV3 JSON for one FMSPC (lower-case hex)
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning
from pydantic import BaseModel, ConfigDict, Field

from sealroom.attest.pem import X509Document, load_block, pem_blocks, text_outside_blocks
from sealroom.errors import AttestationError
from sealroom.files import write_atomic
from sealroom.workspace import Workspace

MAX_DOCUMENT_BYTES = 1 << 20
_FMSPC = re.compile(r"^[0-9a-f]{12}$")


def collateral_dir(ws: Workspace) -> Path:
    return ws.home / "attest" / "collateral"


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise AttestationError(f"{path}: collateral larger than {MAX_DOCUMENT_BYTES} bytes")
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise AttestationError(f"{path}: unreadable collateral ({exc})") from None


def snp_documents(ws: Workspace | None) -> list[str]:
    """Every cached SEV-SNP PEM document (certificates and CRLs), in name order.

    ``ws`` None (a check made without a workspace, e.g. of a receipt): nothing is cached.
    """
    if ws is None:
        return []
    folder = collateral_dir(ws) / "snp"
    if not folder.is_dir():
        return []
    return [_read(path) for path in sorted(folder.glob("*.pem")) if path.is_file()]


def tdx_collateral(ws: Workspace | None, fmspc: str) -> str | None:
    """The cached TDX collateral JSON for ``fmspc`` (12 hex digits), or None (also when
    there is no workspace to look in)."""
    fmspc = fmspc.lower()
    if not _FMSPC.match(fmspc):
        raise AttestationError(f"FMSPC {fmspc!r} is not 6 bytes of hex")
    if ws is None:
        return None
    path = collateral_dir(ws) / "tdx" / f"{fmspc}.json"
    return _read(path) if path.is_file() else None


# --------------------------------------------------------------------------- adding


class CollateralEntry(BaseModel):
    """One cached document, as `attest collateral list` shows it."""

    model_config = ConfigDict(frozen=True)

    tee_type: str  # "sev-snp" or "tdx"
    path: str  # relative to the collateral folder
    kind: str  # e.g. "certificate", "crl", "certificate + crl", "collateral"
    subjects: list[str] = Field(default_factory=list)  # SEV-SNP: subjects / CRL issuers
    fmspc: str = ""  # TDX
    not_after: datetime | None = None  # the earliest expiry (certificate or nextUpdate)


TDX_KEYS = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)


def _x509_objects(data: bytes, where: str) -> list[X509Document]:
    """Certificates and CRLs in PEM (any number of blocks) or one DER object (AMD KDS serves
    VCEKs and CRLs as DER); AttestationError for anything else, keys included."""
    if b"-----BEGIN" not in data:
        with warnings.catch_warnings():  # AMD's VCEKs carry serial 0 (see attest/pem.py)
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            for load in (x509.load_der_x509_certificate, x509.load_der_x509_crl):
                try:
                    return [load(data)]
                except ValueError:
                    continue
        raise AttestationError(f"{where}: neither PEM nor a DER certificate or CRL")
    if text_outside_blocks(data):
        raise AttestationError(f"{where}: text outside the PEM blocks; refusing a mixed file")
    objects: list[X509Document] = []
    for index, (label, block) in enumerate(pem_blocks(data)):
        try:
            loaded = load_block(label, block)
        except ValueError as exc:
            raise AttestationError(
                f"{where}: PEM block {index} ({label}) does not parse ({exc})"
            ) from None
        if loaded is None:
            raise AttestationError(
                f"{where}: PEM block {index} is a {label}, not a certificate or CRL"
            )
        objects.append(loaded)
    return objects


def _describe(objects: list[X509Document]) -> CollateralEntry:
    kinds, subjects, expiries = [], [], []
    for obj in objects:
        if isinstance(obj, x509.Certificate):
            kinds.append("certificate")
            subjects.append(obj.subject.rfc4514_string())
            expiries.append(obj.not_valid_after_utc)
        else:
            kinds.append("crl")
            subjects.append(f"CRL of {obj.issuer.rfc4514_string()}")
            if obj.next_update_utc is not None:
                expiries.append(obj.next_update_utc)
    kind = " + ".join(sorted(set(kinds)))
    return CollateralEntry(
        tee_type="sev-snp",
        path="",
        kind=kind,
        subjects=subjects,
        not_after=min(expiries) if expiries else None,
    )


def _tdx_fmspc(text: str, where: str) -> tuple[str, datetime | None]:
    """The FMSPC the collateral is for (from its TCB info) and its nextUpdate."""
    import dcap_qvl

    try:
        document = json.loads(text)
    except ValueError:
        raise AttestationError(f"{where}: not JSON") from None
    if not isinstance(document, dict):
        raise AttestationError(f"{where}: not a JSON object")
    missing = [key for key in TDX_KEYS if not isinstance(document.get(key), str)]
    if missing:
        raise AttestationError(
            f"{where}: not dcap-qvl QuoteCollateralV3 JSON (missing {', '.join(missing)})"
        )
    extra = sorted(set(document) - set(TDX_KEYS))
    if extra:
        raise AttestationError(f"{where}: unexpected keys {', '.join(extra)}")
    try:
        dcap_qvl.QuoteCollateralV3.from_json(text)
        tcb_info = json.loads(document["tcb_info"])
        fmspc = str(tcb_info["fmspc"]).lower()
        tee = tcb_info.get("id")
        next_update = tcb_info.get("nextUpdate")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AttestationError(f"{where}: tcb_info does not parse ({exc})") from None
    if tee != "TDX":
        raise AttestationError(f"{where}: TCB info is for {tee}, not TDX")
    if not _FMSPC.match(fmspc):
        raise AttestationError(f"{where}: tcb_info fmspc {fmspc!r} is not 6 bytes of hex")
    try:
        expiry = datetime.fromisoformat(next_update) if isinstance(next_update, str) else None
    except ValueError:
        raise AttestationError(
            f"{where}: tcb_info nextUpdate {next_update!r} is not a date"
        ) from None
    return fmspc, expiry


def add_documents(ws: Workspace, paths: list[Path]) -> list[CollateralEntry]:
    """Check every file first, then store them all: one bad file stores none."""
    prepared = [_prepare(ws, path) for path in paths]
    for target, stored, _ in prepared:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, stored)
    return [entry for _, _, entry in prepared]


def add_document(ws: Workspace, path: Path) -> CollateralEntry:
    """Validate one file and store it under the cache (atomically); where it went.

    PEM or DER certificates and CRLs go to ``snp/<sha256 prefix>.pem`` (re-encoded as PEM);
    a TDX QuoteCollateralV3 JSON replaces ``tdx/<fmspc>.json``. Anything else is refused.
    """
    [entry] = add_documents(ws, [path])
    return entry


def _prepare(ws: Workspace, path: Path) -> tuple[Path, bytes, CollateralEntry]:
    """Where ``path`` goes, the bytes stored there and its description; AttestationError
    if it is not a document the cache takes."""
    try:
        if not path.is_file():
            raise AttestationError(f"{path}: no such file")
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise AttestationError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise AttestationError(f"{path}: cannot read ({exc.strerror})") from None
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise AttestationError(f"{path}: collateral JSON must be ASCII") from None
        fmspc, expiry = _tdx_fmspc(text, str(path))
        target = collateral_dir(ws) / "tdx" / f"{fmspc}.json"
        stored, entry = (
            text.encode("ascii"),
            CollateralEntry(
                tee_type="tdx", path="", kind="collateral", fmspc=fmspc, not_after=expiry
            ),
        )
    else:
        objects = _x509_objects(data, str(path))
        if not objects:
            raise AttestationError(f"{path}: no certificate or CRL in it")
        stored = b"".join(obj.public_bytes(serialization.Encoding.PEM) for obj in objects)
        target = collateral_dir(ws) / "snp" / f"{hashlib.sha256(stored).hexdigest()[:16]}.pem"
        entry = _describe(objects)
    relative = str(target.relative_to(collateral_dir(ws)))
    return target, stored, entry.model_copy(update={"path": relative})


def list_collateral(ws: Workspace) -> list[CollateralEntry]:
    """Every cached document, described (SEV-SNP first, then TDX, each in name order)."""
    root = collateral_dir(ws)
    entries: list[CollateralEntry] = []
    for path in sorted((root / "snp").glob("*.pem")) if (root / "snp").is_dir() else []:
        entry = _describe(_x509_objects(_read(path).encode("ascii"), str(path)))
        entries.append(entry.model_copy(update={"path": str(path.relative_to(root))}))
    for path in sorted((root / "tdx").glob("*.json")) if (root / "tdx").is_dir() else []:
        fmspc, expiry = _tdx_fmspc(_read(path), str(path))
        entries.append(
            CollateralEntry(
                tee_type="tdx",
                path=str(path.relative_to(root)),
                kind="collateral",
                fmspc=fmspc,
                not_after=expiry,
            )
        )
    return entries
