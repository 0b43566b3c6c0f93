"""AMD's SEV-SNP root certificates (ARK, ASK, ASVK) per product family, pinned.

The PEM files in ``roots/`` are AMD's published chains (source in ``roots/README.md``).
A file on disk is easy to swap, so each ARK is also pinned here by its SHA-256
fingerprint: a root that is not AMD's is refused when the roots load, before any report
is judged. Tests inject their own :class:`FamilyRoots` instead of editing these.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from sealroom.attest.policy import SNP_FAMILIES
from sealroom.errors import AttestationError

# SHA-256 of the DER of AMD's ARK-<family> (identical in go-sev-guest and virtee/sev, and at
# https://kdsintf.amd.com/vcek/v1/<family>/cert_chain).
ARK_FINGERPRINTS = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}
AMD_RSA_BITS = 4096


@dataclass(frozen=True)
class FamilyRoots:
    """One family's trust anchor (ARK) and its two intermediates (ASK for VCEK, ASVK for VLEK)."""

    family: str
    ark: x509.Certificate
    ask: x509.Certificate
    asvk: x509.Certificate | None = None

    def intermediate(self, signing_key: str) -> x509.Certificate:
        if signing_key == "vcek":
            return self.ask
        if self.asvk is None:
            raise AttestationError(f"no ASVK among the {self.family} roots: VLEK cannot verify")
        return self.asvk


Roots = Mapping[str, FamilyRoots]


def _load(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AttestationError(f"{what} root certificate {path}: unreadable ({exc})") from None


def _amd_key(cert: x509.Certificate, what: str) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != AMD_RSA_BITS:
        raise AttestationError(f"{what} is not an RSA-{AMD_RSA_BITS} key as AMD's roots are")


def load_roots(folder: Path | None = None) -> dict[str, FamilyRoots]:
    """AMD's roots from ``folder`` (default: the shipped ones), each ARK checked against its pin."""
    base = folder if folder is not None else Path(str(resources.files(__package__) / "roots"))
    roots: dict[str, FamilyRoots] = {}
    for family in SNP_FAMILIES:
        stem = family.lower()
        ark = _load(base / f"{stem}_ark.pem", f"ARK-{family}")
        fingerprint = ark.fingerprint(hashes.SHA256()).hex()
        if fingerprint != ARK_FINGERPRINTS[family]:
            raise AttestationError(
                f"root file {base / f'{stem}_ark.pem'} has SHA-256 {fingerprint}, not AMD's "
                f"pinned ARK-{family}: refusing a swapped or edited root"
            )
        ask = _load(base / f"{stem}_ask.pem", f"ASK-{family}")
        asvk = _load(base / f"{stem}_asvk.pem", f"ASVK-{family}")
        for cert, what in (
            (ark, f"ARK-{family}"),
            (ask, f"ASK-{family}"),
            (asvk, f"ASVK-{family}"),
        ):
            _amd_key(cert, what)
        roots[family] = FamilyRoots(family=family, ark=ark, ask=ask, asvk=asvk)
    return roots


@functools.cache
def amd_roots() -> Mapping[str, FamilyRoots]:
    """The shipped roots, loaded and pinned once per process."""
    return load_roots()
