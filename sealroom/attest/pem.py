"""PEM certificates and CRLs from untrusted text: one parser for the verifier and the cache.

Evidence certificates and cached collateral are both hostile input. Each block is found by
an ASCII-only pattern and loaded by its label; anything but a certificate or a CRL is for
the caller to refuse (a private key slipped into the cache, say). AMD issues every VCEK
with serial number 0, which cryptography parses but warns about; the chain check judges
those certificates, so that warning is silenced here and nowhere else.
"""

from __future__ import annotations

import re
import warnings

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

X509Document = x509.Certificate | x509.CertificateRevocationList

PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]*-----END \1-----", re.MULTILINE
)


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(label, whole block) for every PEM block in ``data``, in order."""
    return [(m.group(1).decode("ascii"), m.group(0)) for m in PEM_BLOCK.finditer(data)]


def text_outside_blocks(data: bytes) -> bytes:
    """What is left of ``data`` once its PEM blocks are taken out (stripped)."""
    return PEM_BLOCK.sub(b"", data).strip()


def load_block(label: str, block: bytes) -> X509Document | None:
    """The certificate or CRL in ``block``; None for any other label; ValueError if broken."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if label == "CERTIFICATE":
            return x509.load_pem_x509_certificate(block)
        if label == "X509 CRL":
            return x509.load_pem_x509_crl(block)
    return None
