"""`train --local --mock` and `--declaration`: the inputs of a local run on mock data or
declared splits (kept beside train.py so that the plain local run reads as before).

With ``--mock`` each ``--data ID=PATH`` is a sealed package folder or a signed card; the
pipeline's file names are checked against the card as the room checks them, the mock is
written to a private temporary folder removed afterwards, and every line and output says
MOCK DATA. A declaration (the card's, or ``--declaration FILE``, which wins) replaces the
pipeline's split exactly as in the room (:func:`sealroom.data.load_declared_splits`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sealroom.cli.console import err_console

if TYPE_CHECKING:
    from sealroom.data import FileTree, Splits
    from sealroom.data.mock_card import OpenedCard
    from sealroom.pipeline.declaration import DatasetDeclaration
    from sealroom.pipeline.schema import Pipeline


@dataclass
class LocalData:
    """Dataset trees for a local run and the declarations that split them (may be empty)."""

    trees: dict[str, FileTree]
    declarations: dict[str, DatasetDeclaration] = field(default_factory=dict)
    mock: bool = False


def say_loudly(text: str, style: str = "bold yellow") -> None:
    """A warning on stderr (stdout stays clean for --json)."""
    err_console.print(f"[{style}]{text}[/]", highlight=False, soft_wrap=True)


def say_card(opened: OpenedCard, dataset: str) -> None:
    """How far the card was checked: quietly when verified, loudly otherwise."""
    if opened.trust == "verified":
        err_console.print(f"card of dataset {dataset}: {opened.note}", highlight=False)
    elif opened.trust == "signature":
        say_loudly(
            f"CARD NOT CHECKED AGAINST ITS PACKAGE {opened.path} (dataset {dataset}): {opened.note}"
        )
    else:
        say_loudly(f"UNVERIFIED CARD {opened.path} (dataset {dataset}): {opened.note}")


def declarations_from(files: Sequence[Path]) -> dict[str, DatasetDeclaration]:
    """``--declaration`` files by dataset id, each signature checked where the workspace can."""
    from sealroom.data.mock_card import open_declaration
    from sealroom.errors import ConfigError

    found: dict[str, DatasetDeclaration] = {}
    for path in files:
        opened = open_declaration(path)
        dataset = opened.declaration.dataset
        if dataset in found:
            raise ConfigError(f"--declaration {path}: a second declaration of dataset {dataset}")
        if opened.trust == "unverified":
            say_loudly(f"UNVERIFIED DECLARATION {path}: {opened.note}")
        found[dataset] = opened.declaration
    return found


def split_note(declarations: dict[str, DatasetDeclaration]) -> None:
    """Say how each declared dataset is split (the room prints the same description)."""
    for declaration in declarations.values():
        err_console.print(f"declared splits: {declaration.describe()}", highlight=False)


@contextmanager
def mock_data(
    spec: Pipeline, paths: dict[str, Path], declared: dict[str, DatasetDeclaration]
) -> Iterator[LocalData]:
    """Mock trees for the pipeline's datasets from their cards; removed on leaving."""
    from sealroom.data.mock import mock_records
    from sealroom.data.mock_card import BANNER, check_pipeline_files, mock_trees, open_card

    cards = {}
    declarations = dict(declared)
    for cfg in spec.datasets:
        opened = open_card(paths[cfg.id])
        card = opened.card
        say_card(opened, cfg.id)
        if card.declaration is not None and cfg.id not in declarations:
            declarations[cfg.id] = card.declaration
        check_pipeline_files(cfg, card, declarations.get(cfg.id))  # before any banner
        counts = ", ".join(f"{s.name} {mock_records(card, s):,}" for s in card.sources)
        say_loudly(
            f"{BANNER}: dataset {cfg.id} is random records drawn from its card "
            f"({counts} records); results say nothing about the real data",
            "bold red",
        )
        cards[cfg.id] = card
    with mock_trees(spec.datasets, cards, declarations) as trees:
        yield LocalData(trees, declarations, mock=True)


def _on_mock(declaration: DatasetDeclaration) -> DatasetDeclaration:
    """The declaration with its minimum held-out size lifted: the minimum is the provider's
    rule for the real records (the room checks it there), and a mock holds fewer."""
    if declaration.min_size > 1:
        err_console.print(
            f"dataset {declaration.dataset}: the provider's minimum of {declaration.min_size:,} "
            "records per held-out split applies to the real data (checked in the room), "
            "not to the mock",
            highlight=False,
        )
    return declaration.model_copy(update={"min_size": 1})


def declared_splits(spec: Pipeline, data: LocalData) -> Splits | None:
    """The declared train/val/test (as the room makes them), or None for the pipeline's split."""
    if not data.declarations:
        return None
    from sealroom.data.declaration import load_declared_splits

    split_note(data.declarations)
    declarations = data.declarations
    if data.mock:
        declarations = {k: _on_mock(d) for k, d in declarations.items()}
    return load_declared_splits(declarations, spec.datasets, spec.join, data.trees)
