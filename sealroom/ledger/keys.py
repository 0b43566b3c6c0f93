"""The ledger's own Ed25519 key, kept in the workspace's service key folder (mode 0600),
and its public half beside it (``ledger.pub``), for readers that must not touch the key."""

from __future__ import annotations

from pathlib import Path

from sealroom.crypto.signing import SigningKey, raw_public_key
from sealroom.files import write_atomic

LEDGER_KEY_FILE = "ledger.key"
LEDGER_PUBLIC_FILE = "ledger.pub"


def ledger_key_path(keys_dir: Path) -> Path:
    return keys_dir / LEDGER_KEY_FILE


def load_or_create_ledger_key(keys_dir: Path) -> SigningKey:
    """Load the ledger key, creating it on first use (several processes may race for it),
    and make sure its public half is written beside it."""
    key = SigningKey.load_or_create(ledger_key_path(keys_dir))
    public = keys_dir / LEDGER_PUBLIC_FILE
    if read_ledger_public_key(keys_dir) != key.public_b64:
        write_atomic(public, (key.public_b64 + "\n").encode("ascii"))
    return key


def read_ledger_public_key(keys_dir: Path) -> str | None:
    """The public key ``ledger.pub`` holds (base64, raw 32 bytes); None when it is absent or
    not a key. A dashboard reads this, never ``ledger.key``."""
    try:
        text = (keys_dir / LEDGER_PUBLIC_FILE).read_text(encoding="ascii").strip()
        return raw_public_key(text)
    except (OSError, ValueError):
        return None
