"""The STREAM construction for sealed packages (Hoang, Reyhanitabar, Rogaway, Vizár 2015).

A package's plaintext is cut into chunks of ``chunk_size`` bytes (the last may be
shorter, possibly empty) and each chunk is sealed with AES-256-GCM under the
package's data key. The 96-bit nonce is

    nonce_prefix (7 random bytes, in the manifest) || chunk index (4 bytes, big-endian)
    || final flag (1 byte: 1 on the last chunk, 0 otherwise)

and the associated data is a domain label plus the 16-byte package id. So a chunk
only decrypts at its own index, in its own package, and only the last chunk opens
with the final flag set: reordering, dropping the tail, appending chunks or
splicing chunks from another package all fail the GCM tag check.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealroom.errors import SealError

TAG_SIZE = 16
PREFIX_SIZE = 7
MAX_CHUNKS = 2**32
DOMAIN = b"sealroom.package.v1"


class ChunkError(SealError):
    """One chunk failed authentication; the message names it."""


class ChunkCipher:
    """Seals and opens the chunks of one package."""

    def __init__(self, data_key: bytes, package_id: bytes, nonce_prefix: bytes) -> None:
        if len(data_key) != 32:
            raise SealError("data key must be 32 bytes (AES-256)")
        if len(nonce_prefix) != PREFIX_SIZE or len(package_id) != 16:
            raise SealError("malformed package id or nonce prefix in the manifest")
        self._aead = AESGCM(data_key)
        self._prefix = nonce_prefix
        self._aad = DOMAIN + package_id

    def nonce(self, index: int, final: bool) -> bytes:
        if not 0 <= index < MAX_CHUNKS:
            raise SealError(f"chunk index {index} out of range")
        return self._prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")

    def seal(self, index: int, final: bool, plaintext: memoryview | bytes) -> bytes:
        return self._aead.encrypt(self.nonce(index, final), plaintext, self._aad)

    def open_into(
        self, index: int, final: bool, ciphertext: memoryview | bytes, out: memoryview
    ) -> int:
        """Decrypt chunk ``index`` into ``out`` (reused between chunks); returns its length."""
        size = len(ciphertext) - TAG_SIZE
        if size < 0:
            raise ChunkError(f"chunk {index} is shorter than its tag")
        try:
            return self._aead.decrypt_into(
                self.nonce(index, final), ciphertext, self._aad, out[:size]
            )
        except InvalidTag:
            raise ChunkError(f"chunk {index} failed authentication") from None
