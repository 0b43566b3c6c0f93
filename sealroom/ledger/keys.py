"""The ledger's own Ed25519 key, kept in the workspace's service key folder (mode 0600)."""

from __future__ import annotations

from pathlib import Path

from sealroom.crypto.signing import SigningKey

LEDGER_KEY_FILE = "ledger.key"


def ledger_key_path(keys_dir: Path) -> Path:
    return keys_dir / LEDGER_KEY_FILE


def load_or_create_ledger_key(keys_dir: Path) -> SigningKey:
    """Load the ledger key, creating it on first use (several processes may race for it)."""
    return SigningKey.load_or_create(ledger_key_path(keys_dir))
