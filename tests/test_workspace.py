from pathlib import Path

import pytest

from sealroom.errors import WorkspaceError
from sealroom.workspace import Workspace


def test_find_without_init_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="sealroom init"):
        Workspace.find(tmp_path / "nope")


def test_create_twice_is_refused(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "ws")
    with pytest.raises(WorkspaceError, match="already exists"):
        Workspace.create(tmp_path / "ws")


def test_workspace_is_private_to_its_owner(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    assert (ws.home.stat().st_mode & 0o777) == 0o700
