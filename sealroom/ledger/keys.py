"""The ledger's own Ed25519 key, kept in the workspace's service key folder (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sealroom.crypto.signing import SigningKey

LEDGER_KEY_FILE = "ledger.key"


def ledger_key_path(keys_dir: Path) -> Path:
    return keys_dir / LEDGER_KEY_FILE


def load_or_create_ledger_key(keys_dir: Path) -> SigningKey:
    """Load the ledger key, creating it on first use.

    Several processes may open a fresh ledger at once, so the key is written to a temporary
    file and hard-linked into place: exactly one process wins, the others load its key.
    """
    path = ledger_key_path(keys_dir)
    if path.exists():
        return SigningKey.load(path)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=keys_dir) as tmp:
        candidate = Path(tmp) / LEDGER_KEY_FILE
        SigningKey.generate().save(candidate)
        os.chmod(candidate, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(candidate, path)
    return SigningKey.load(path)
