"""Build a data card from the provider's cleartext folder, its sealed package and a draft.

The provider writes the words (title, descriptions, label names, declared value ranges, the
sources a pipeline may read, the mock seed); everything else is computed, never typed: the
files and sizes come from the package's signed manifest (and the folder must hold exactly
those bytes, so the card describes the sealed data), and the record counts, shapes and
dtypes come from the real loaders. A declared range must hold for every value, else the
card is refused: a mock drawn from a range the data break would mislead. Statistics of the
records (label counts) are released only with Laplace noise and charged in the ledger
(:mod:`sealroom.data.card_stats`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError

from sealroom.crypto.manifest import Manifest
from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import DirectoryTree
from sealroom.data.loaders import LOADERS
from sealroom.errors import DataError
from sealroom.files import read_capped
from sealroom.pipeline.card import (
    ArraySpec,
    CardFile,
    CardSource,
    DataCard,
    MockSpec,
    TargetSpec,
    Text,
    ValueRange,
)
from sealroom.pipeline.declaration import DatasetDeclaration
from sealroom.pipeline.package_files import check_declaration_files, check_source_files
from sealroom.pipeline.schema import DataSource, Identifier, Strict

MAX_DRAFT_BYTES = 1 << 20


class CardDraftError(DataError):
    """The provider's card draft is malformed or disagrees with the data."""


class FeatureDraft(Strict):
    range: ValueRange | None = None


class TargetDraft(Strict):
    kind: Literal["class", "mask", "value"]
    classes: list[str] | None = None
    range: ValueRange | None = None


class SourceDraft(Strict):
    name: Identifier
    source: DataSource
    description: Text = ""
    features: FeatureDraft = FeatureDraft()
    target: TargetDraft | None = None


class StatisticDraft(Strict):
    name: str = Field(pattern=r"^label_counts$")  # the one statistic offered so far
    source: Identifier
    epsilon: float = Field(gt=0, le=10)


class CardDraft(Strict):
    """What the provider writes (YAML); see docs/data-cards.md."""

    dataset: Identifier
    title: str = Field("", max_length=200)
    description: Text = ""
    files: dict[str, Text] = Field(default_factory=dict)  # path -> description
    sources: list[SourceDraft] = Field(min_length=1)
    declaration: str | None = None  # a signed declaration file, relative to the draft
    statistics: list[StatisticDraft] = Field(default_factory=list)
    mock: MockSpec | None = None


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{field}: {first['msg'].removeprefix('Value error, ')}"


def read_draft(path: Path) -> CardDraft:
    """The provider's YAML draft, validated; one line naming the field otherwise."""
    import yaml

    raw = read_capped(path, MAX_DRAFT_BYTES, "a card draft", CardDraftError)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise CardDraftError(f"{path}: not a YAML card draft") from None
    if not isinstance(data, dict):
        raise CardDraftError(f"{path}: expected a mapping of fields")
    try:
        return CardDraft.model_validate(data)
    except ValidationError as exc:
        raise CardDraftError(f"{path}: {_first_problem(exc)}") from None


def check_folder_matches(folder: Path, manifest: Manifest) -> None:
    """CardDraftError unless ``folder`` holds every manifest file with the same bytes."""
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            raise CardDraftError(
                f"{folder}: no file {entry.path!r}, which the package holds; give the folder "
                "that was sealed"
            )
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if path.stat().st_size != entry.size or digest.hexdigest() != entry.sha256:
            raise CardDraftError(
                f"{folder / entry.path}: not the bytes the package sealed (size or SHA-256 "
                "differ); give the folder that was sealed"
            )


def _dtype(array: np.ndarray) -> str:
    return str(array.dtype)


def _check_range(values: np.ndarray, declared: ValueRange | None, where: str) -> None:
    if declared is None or values.size == 0:
        return
    low, high = float(values.min()), float(values.max())
    if low < declared.min or high > declared.max:
        raise CardDraftError(
            f"{where}: the data fall outside the declared range [{declared.min:g}, "
            f"{declared.max:g}] (they span [{low:g}, {high:g}]); declare a range that holds"
        )


def _target(data: ArrayDataset, draft: TargetDraft | None, where: str) -> TargetSpec | None:
    if draft is None:
        return None
    y = data.y
    classes = draft.classes
    if draft.kind in ("class", "mask"):
        if data.classes is not None:  # the loader names them (subfolders, string labels)
            if classes is not None and classes != data.classes:
                raise CardDraftError(
                    f"{where}.target.classes: the loader numbers the classes "
                    f"{', '.join(data.classes[:12])}{' …' if len(data.classes) > 12 else ''} "
                    "(class id = position); the draft's names differ — list them in that order"
                )
            classes = list(data.classes)
        if not classes:
            raise CardDraftError(f"{where}.target.classes: a {draft.kind} target needs its names")
        if y.size and (float(y.min()) < 0 or float(y.max()) >= len(classes)):
            raise CardDraftError(
                f"{where}.target.classes: labels run from {float(y.min()):g} to "
                f"{float(y.max()):g} but {len(classes)} class names are given (ids 0.."
                f"{len(classes) - 1})"
            )
    else:
        _check_range(y, draft.range, f"{where}.target.range")
    try:
        return TargetSpec(
            kind=draft.kind,
            dtype=_dtype(y),
            shape=list(y.shape[1:]),
            classes=classes,
            range=draft.range,
        )
    except ValidationError as exc:
        raise CardDraftError(f"{where}.target: {_first_problem(exc)}") from None


def describe_source(
    draft: SourceDraft, tree: DirectoryTree, dataset: str
) -> tuple[CardSource, ArrayDataset]:
    """A card source from the real loader's output (counts, shapes, dtypes), ranges checked."""
    where = f"sources.{draft.name}"
    loader = LOADERS.get(draft.source.format, where=f"{where}.source.format")
    data = loader(draft.source, tree, dataset)
    _check_range(data.x, draft.features.range, f"{where}.features.range")
    try:
        features = ArraySpec(
            shape=list(data.x.shape[1:]), dtype=_dtype(data.x), range=draft.features.range
        )
    except ValidationError as exc:
        raise CardDraftError(f"{where}.features: {_first_problem(exc)}") from None
    card_source = CardSource(
        name=draft.name,
        source=draft.source,
        records=len(data),
        features=features,
        target=_target(data, draft.target, where),
        description=draft.description,
    )
    return card_source, data


def build_card(
    draft: CardDraft,
    folder: Path,
    manifest: Manifest,
    package_digest: str,
    declaration: DatasetDeclaration | None = None,
) -> tuple[DataCard, dict[str, ArrayDataset]]:
    """The card (unsigned, no statistics) and each source's loaded data (for statistics).

    ``declaration`` is the verified signed declaration's content, when the draft names one.
    """
    check_folder_matches(folder, manifest)
    paths = [f.path for f in manifest.files]
    unknown = sorted(set(draft.files) - set(paths))
    if unknown:
        raise CardDraftError(f"files: {unknown[0]!r} is not a file of the package")
    for source in draft.sources:
        check_source_files(
            draft.dataset, package_digest, source.source, paths, f"card source {source.name}"
        )
    if declaration is not None:
        if declaration.dataset != draft.dataset:
            raise CardDraftError(
                f"declaration: it is for dataset {declaration.dataset}, not {draft.dataset}"
            )
        check_declaration_files(declaration, package_digest, paths)
    tree = DirectoryTree(folder)
    sources: list[CardSource] = []
    loaded: dict[str, ArrayDataset] = {}
    for source_draft in draft.sources:
        card_source, data = describe_source(source_draft, tree, draft.dataset)
        sources.append(card_source)
        loaded[source_draft.name] = data
    try:
        card = DataCard(
            dataset=draft.dataset,
            package_digest=package_digest,
            title=draft.title,
            description=draft.description,
            files=[
                CardFile(path=f.path, size=f.size, description=draft.files.get(f.path, ""))
                for f in manifest.files
            ],
            sources=sources,
            declaration=declaration,
            mock=draft.mock,
        )
    except ValidationError as exc:
        raise CardDraftError(f"card: {_first_problem(exc)}") from None
    return card, loaded
