"""Shared fixtures: every test gets its own empty workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.workspace import ENV_VAR, Workspace


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    home = tmp_path / "ws"
    monkeypatch.setenv(ENV_VAR, str(home))
    return Workspace.create(home)
