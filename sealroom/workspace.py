"""The workspace: one folder ($SEALROOM_HOME, default ./.sealroom) holding all local state."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sealroom.errors import WorkspaceError

ENV_VAR = "SEALROOM_HOME"
DEFAULT_DIR = ".sealroom"
MARKER = "workspace.json"
SUBDIRS = ("parties", "packages", "contracts", "runs", "objects", "keys")


def default_home() -> Path:
    return Path(os.environ.get(ENV_VAR, DEFAULT_DIR)).expanduser()


@dataclass(frozen=True)
class Workspace:
    """Paths inside a workspace; created by ``sealroom init``, found by every other command."""

    home: Path

    @classmethod
    def create(cls, home: Path | None = None) -> Workspace:
        home = (home or default_home()).resolve()
        if (home / MARKER).exists():
            raise WorkspaceError(f"a workspace already exists at {home}")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        for sub in SUBDIRS:
            (home / sub).mkdir(exist_ok=True, mode=0o700)
        (home / MARKER).write_text(json.dumps({"format": 1}) + "\n")
        return cls(home)

    @classmethod
    def find(cls, home: Path | None = None) -> Workspace:
        home = (home or default_home()).resolve()
        if not (home / MARKER).exists():
            raise WorkspaceError(
                f"no sealroom workspace at {home}; run `sealroom init` "
                f"(or set ${ENV_VAR} to an existing one)"
            )
        return cls(home)

    @property
    def parties(self) -> Path:
        return self.home / "parties"

    @property
    def packages(self) -> Path:
        return self.home / "packages"

    @property
    def contracts(self) -> Path:
        return self.home / "contracts"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def objects(self) -> Path:
        return self.home / "objects"

    @property
    def keys(self) -> Path:
        """Service keys (ledger signing key, attestation key, KMS root key)."""
        return self.home / "keys"

    @property
    def ledger_db(self) -> Path:
        return self.home / "ledger.db"

    @property
    def kms_db(self) -> Path:
        return self.home / "kms.db"
