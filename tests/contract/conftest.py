"""Three parties in one workspace and a helper that writes contract drafts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sealroom.crypto.identity import Party, create_party
from sealroom.workspace import Workspace

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "contract-template.yaml"

Draft = Callable[..., Path]


@pytest.fixture
def parties(workspace: Workspace) -> dict[str, Party]:
    return {
        "hospital": create_party(workspace, "hospital", "provider"),
        "lab": create_party(workspace, "lab", "consumer"),
        "operator": create_party(workspace, "operator", "operator"),
    }


def template() -> dict[str, Any]:
    data = yaml.safe_load(TEMPLATE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def draft(tmp_path: Path) -> Draft:
    """Write the template, with top-level overrides, as YAML (or JSON with suffix='.json')."""

    def write(suffix: str = ".yaml", **overrides: Any) -> Path:
        data = {**template(), **overrides}
        path = tmp_path / f"draft{suffix}"
        if suffix == ".json":
            import json

            path.write_text(json.dumps(data, default=str))
        else:
            path.write_text(yaml.safe_dump(data))
        return path

    return write
