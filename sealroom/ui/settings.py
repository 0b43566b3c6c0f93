"""What one dashboard serves: the workspace, the token for actions, and optional sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sealroom.workspace import Workspace

DEFAULT_PORT = 8765


@dataclass(frozen=True)
class UiSettings:
    """``outputs`` are folders where the viewer keeps decrypted run outputs (a run's own
    outputs are shown only when their hashes match its receipt)."""

    ws: Workspace
    token: str
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    outputs: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
