"""docs/pipeline.md lists every part, field and registered name compose accepts."""

from __future__ import annotations

from pathlib import Path

from sealroom.pipeline.compose import PART_SCHEMAS
from sealroom.pipeline.reference import registry_names, render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def test_rendered_reference_names_every_part_field_and_registered_name() -> None:
    text = render_reference()
    for kind, model in PART_SCHEMAS.items():
        assert f"{kind}" in text
        for field in model.model_fields:
            assert f"`{field}`" in text
    for names in registry_names().values():
        for name in names:
            assert f"`{name}`" in text


def test_committed_doc_is_up_to_date_for_the_pipeline_registries() -> None:
    committed = DOC.read_text(encoding="utf-8")
    names = registry_names()
    for kind in ("optimizers", "schedulers", "losses", "layers", "architectures"):
        for name in names[kind]:
            assert f"| `{name}` |" in committed, f"regenerate docs/pipeline.md ({kind} {name})"
