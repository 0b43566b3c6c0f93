"""Where the testbed keeps its state inside a workspace: ``<workspace>/lab/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @classmethod
    def of_workspace(cls, home: Path) -> LabPaths:
        return cls(home / "lab")

    def create(self) -> LabPaths:
        for folder in (self.root, self.artifacts, self.logs, self.mlflow_artifacts):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def db(self) -> Path:
        """The testbed's database: the source of truth for jobs across restarts."""
        return self.root / "lab.db"

    @property
    def artifacts(self) -> Path:
        """Committed artifacts: ``artifacts/<job id>/<attempt>/<file>``."""
        return self.root / "artifacts"

    @property
    def logs(self) -> Path:
        """Per-attempt logs: ``logs/<job id>/<attempt>.log``."""
        return self.root / "logs"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlruns"

    @property
    def default_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def server_file(self) -> Path:
        """``{"url": ..., "pid": ...}`` of the running ``sealroom lab start``."""
        return self.root / "server.json"

    @property
    def token_file(self) -> Path:
        """The bearer token the API asks for (mode 0600)."""
        return self.root / "token"
