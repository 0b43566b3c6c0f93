"""Private key files: created 0600 from the first byte, never printed; encrypted at rest when
a passphrase is given (party keys), plain PKCS#8 PEM otherwise (service keys, legacy files).

Encrypted file construction (``SEALROOM ENCRYPTED PRIVATE KEY``, version 1)::

    key  = scrypt(passphrase, salt, n=2**log2_n, r, p, 32 bytes)      (RFC 7914)
    blob = "SRK1" || log2_n || r || p || salt[16] || nonce[12]
           || AES-256-GCM(key, nonce, PKCS#8 DER of the private key, aad=header)

The header (everything before the ciphertext) is the GCM associated data, so the scrypt
cost cannot be lowered nor the salt swapped without the tag failing. Invariant: the file
never holds the private key in the clear; without the passphrase it is 16+12 random bytes
and a ciphertext. PKCS#8's own ``BestAvailableEncryption`` is not used because it derives
with PBKDF2 at 2,048 iterations, which a stolen file does not survive.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sealroom.crypto.passphrase import PassphraseError, WrongPassphrase
from sealroom.errors import IdentityError

PrivateKey = Ed25519PrivateKey | X25519PrivateKey

MAGIC = b"SRK1"
BEGIN = b"-----BEGIN SEALROOM ENCRYPTED PRIVATE KEY-----"
END = b"-----END SEALROOM ENCRYPTED PRIVATE KEY-----"
SCRYPT_LOG2_N = 15  # 32 MiB and ~0.1 s per derivation: per load, not per signature
SCRYPT_R = 8
SCRYPT_P = 1
_LOG2_N_RANGE = range(14, 19)  # a file may not ask for a cheap or a 1 GiB derivation
_HEADER = struct.Struct(">4sBBB16s12s")

# Derived keys by (passphrase digest, header): loading the same file twice in one process
# costs one scrypt. The process holds the opened private keys anyway.
_derived: dict[tuple[bytes, bytes], bytes] = {}
_CACHE_LIMIT = 256


def write_private_key(path: Path, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Write ``key`` so that no other user can ever read it, not even briefly; encrypted
    under ``passphrase`` when one is given."""
    der_or_pem = key.private_bytes(
        serialization.Encoding.DER if passphrase else serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    data = _encrypt(der_or_pem, passphrase) if passphrase else der_or_pem
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` holds an encrypted key (False for plain PEM or a missing file)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(BEGIN)) == BEGIN
    except OSError:
        return False


def read_private_key(
    path: Path,
    kind: type[PrivateKey],
    passphrase: Callable[[], bytes] | None = None,
) -> PrivateKey:
    """Load a private key of the expected type; refuse anything else by file name.

    ``passphrase`` is asked for only when the file is encrypted.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"{path}: private key file is missing") from None
    if data.startswith(BEGIN):
        if passphrase is None:
            raise PassphraseError(f"{path}: the private key is encrypted; no passphrase given")
        der = _decrypt(path, data, passphrase())
        load = serialization.load_der_private_key
    else:
        der, load = data, serialization.load_pem_private_key
    try:
        key = load(der, password=None)
    except (ValueError, TypeError):
        raise IdentityError(f"{path}: not a PEM private key") from None
    if not isinstance(key, kind):
        raise IdentityError(f"{path}: expected an {kind.__name__.removesuffix('PrivateKey')} key")
    return key


def _encrypt(der: bytes, passphrase: bytes) -> bytes:
    header = _HEADER.pack(
        MAGIC, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, secrets.token_bytes(16), secrets.token_bytes(12)
    )
    nonce = header[-12:]
    blob = header + AESGCM(_derive(passphrase, header)).encrypt(nonce, der, header)
    body = base64.encodebytes(blob)  # 76-column lines
    return BEGIN + b"\n" + body + END + b"\n"


def _decrypt(path: Path, data: bytes, passphrase: bytes) -> bytes:
    body = data[len(BEGIN) :].strip()
    if not body.endswith(END):
        raise IdentityError(f"{path}: truncated encrypted private key")
    try:
        blob = base64.b64decode(b"".join(body[: -len(END)].split()), validate=True)
    except (binascii.Error, ValueError):
        raise IdentityError(f"{path}: encrypted private key is not base64") from None
    if len(blob) <= _HEADER.size + 16:
        raise IdentityError(f"{path}: encrypted private key is too short")
    header, ciphertext = blob[: _HEADER.size], blob[_HEADER.size :]
    magic, log2_n, r, p, _salt, nonce = _HEADER.unpack(header)
    if magic != MAGIC:
        raise IdentityError(f"{path}: unknown encrypted key format {magic!r}")
    if log2_n not in _LOG2_N_RANGE or not 1 <= r <= 16 or not 1 <= p <= 4:
        raise IdentityError(f"{path}: scrypt parameters out of range (n=2^{log2_n}, r={r}, p={p})")
    try:
        return AESGCM(_derive(passphrase, header)).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise WrongPassphrase(f"{path}: wrong passphrase (or the file was altered)") from None


def _derive(passphrase: bytes, header: bytes) -> bytes:
    cache_key = (hashlib.sha256(passphrase).digest(), header)
    if cache_key not in _derived:
        if len(_derived) >= _CACHE_LIMIT:  # wrong guesses must not grow a long-lived process
            _derived.clear()
        _magic, log2_n, r, p, salt, _nonce = _HEADER.unpack(header)
        kdf = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
        _derived[cache_key] = kdf.derive(passphrase)
    return _derived[cache_key]


def create_once(path: Path, write: Callable[[Path], object]) -> None:
    """Create the key file ``path`` exactly once, even when processes race for it.

    ``write`` fills a private temporary file that is hard-linked into place: one process
    wins, the others keep its file, and nobody ever reads a half-written key.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        candidate = Path(tmp) / path.name
        write(candidate)
        os.chmod(candidate, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(candidate, path)
