"""docs/contract-template.yaml names only components the registries hold: a user who copies
it gets a contract whose constraints a pipeline can meet (it once said ``f1_macro``, which
no registry knows, and left out ``loss``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from sealroom.train.components.losses import LOSSES
from sealroom.train.components.optimizers import OPTIMIZERS
from sealroom.train.metrics import METRICS

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "contract-template.yaml"


def test_the_templates_constraints_name_registered_components() -> None:
    constraints = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))["constraints"]
    for field, registry in (("metrics", METRICS), ("losses", LOSSES), ("optimizers", OPTIMIZERS)):
        unknown = [name for name in constraints[field] if name not in registry]
        assert unknown == [], f"contract-template.yaml constraints.{field}: {unknown}"
    assert "loss" in constraints["metrics"]
