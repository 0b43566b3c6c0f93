"""Vendor collateral cached in a workspace, so that verification never goes online.

SEV-SNP needs the VCEK (or VLEK) certificate of the chip that signed a report and AMD's
CRLs; TDX needs Intel's TCB info, QE identity and CRLs for the platform's FMSPC. An
attester may ship them with its evidence; a key owner who fetched them once (on a machine
with internet, from AMD KDS or Intel PCS) stores them here with ``sealroom attest
collateral add``. Nothing in this folder is a trust anchor: the vendors' root
certificates ship in the package, and every cached document must chain to them.

Layout under ``<workspace>/attest/collateral``::

    snp/<name>.pem      PEM certificates and CRLs (VCEK, VLEK, ASK, ASVK, CRLs)
    tdx/<fmspc>.json    dcap-qvl QuoteCollateralV3 JSON for one FMSPC (lower-case hex)
"""

from __future__ import annotations

import re
from pathlib import Path

from sealroom.errors import AttestationError
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
