"""The data card: what a provider publishes about a sealed dataset, so a consumer can write
and test a pipeline without seeing a record.

A card names the package it describes (by digest), every file in it, the sources a
pipeline may read (each written exactly as a pipeline's ``source:`` block), and for each
source the record count, one record's shape, dtype and *declared* value range, and the
label names. It may carry the provider's dataset declaration (the splits, e.g. t10k held
out as test) and statistics fitted to the real records — those only as differentially
private releases, each charged to the dataset's budget. Mock data are generated from the
declared schema and ranges alone (:mod:`sealroom.data.mock`), so a mock reveals nothing
that the card does not say.

The provider signs the RFC 8785 canonical JSON of the card under the domain label
``sealroom.data-card.v1`` (:mod:`sealroom.pipeline.card_signing`); the signed card travels
inside the package folder as ``card.json``. This module is the schema only.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sealroom.crypto.manifest import REFUSED_CATEGORIES
from sealroom.pipeline.declaration import DatasetDeclaration, SourcePart
from sealroom.pipeline.package_files import missing_paths
from sealroom.pipeline.schema import DataSource, Identifier, RelativePath, Seed, Strict

CARD_FILE = "card.json"
MAX_TEXT = 4000
MAX_DIMS = 8
MAX_CLASSES = 10_000

Dtype = Literal[
    "bool", "uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64"
]
Dim = Annotated[int, Field(ge=1, le=1 << 20)]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


def _printable(value: str) -> str:
    """Card text is shown on other parties' terminals: no control or invisible characters
    (escape sequences, bidirectional overrides) but line breaks and tabs."""
    bad = next(
        (c for c in value if c not in "\n\t" and unicodedata.category(c) in REFUSED_CATEGORIES),
        None,
    )
    if bad is not None:
        raise ValueError(f"holds the control or invisible character U+{ord(bad):04X}")
    return value


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_printable)]
Label = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]


class ValueRange(Strict):
    """Bounds the provider declares for every value (not fitted: no statistic of the data)."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ArraySpec(Strict):
    """One record's features as the loader yields them: shape (without the batch axis) and dtype.

    E.g. MNIST IDX files hold uint8 pixels 0..255; the idx loader yields float32
    ``[1, 28, 28]`` records in [0, 1] (pixels divided by 255), and that is what the card says.
    """

    shape: list[Dim] = Field(max_length=MAX_DIMS)
    dtype: Dtype
    range: ValueRange | None = None


class TargetSpec(Strict):
    """One record's target: a class id, a per-pixel class mask, or a real value."""

    kind: Literal["class", "mask", "value"]
    dtype: Dtype
    shape: list[Dim] = Field(default_factory=list, max_length=MAX_DIMS)  # [] for a scalar
    classes: list[Label] | None = Field(
        None, max_length=MAX_CLASSES
    )  # label names; index = class id
    range: ValueRange | None = None  # for kind "value"

    @model_validator(mode="after")
    def _consistent(self) -> TargetSpec:
        if self.kind in ("class", "mask") and not self.classes:
            raise ValueError(f"a {self.kind} target needs its class names (classes: [...])")
        if self.kind == "value" and self.classes:
            raise ValueError("a value target has no classes")
        if self.classes and len(set(self.classes)) != len(self.classes):
            raise ValueError("class names repeat")
        return self


class CardSource(Strict):
    """One source a pipeline may read, as its ``source:`` block, with what a record looks like."""

    name: Identifier  # e.g. "train", "t10k"
    source: DataSource
    records: int = Field(ge=0)
    features: ArraySpec
    target: TargetSpec | None = None
    description: Text = ""


class CardFile(Strict):
    """A file of the package (the manifest's path and size), with the provider's words on it."""

    path: RelativePath
    size: int = Field(ge=0)
    description: Text = ""


class FittedStatistic(Strict):
    """A statistic of the real records, released under differential privacy and charged."""

    name: Identifier  # e.g. "label_counts"
    source: Identifier  # the CardSource it was computed on
    mechanism: Literal["gaussian", "laplace"]
    epsilon: float = Field(gt=0)
    delta: float = Field(ge=0, lt=1)
    values: list[float] = Field(max_length=MAX_CLASSES)
    charge: str | None = None  # the ledger entry that charged the budget


class MockSpec(Strict):
    """Whether and how mock data may be generated from this card."""

    seed: Seed = 0
    records: int | None = Field(None, ge=1, le=1_000_000)  # per source; None: the card's count


class DataCard(Strict):
    """Everything a provider publishes about one sealed dataset."""

    version: Literal[1] = 1
    dataset: Identifier
    package_digest: Digest
    title: Annotated[str, Field(max_length=200), AfterValidator(_printable)] = ""
    description: Text = ""
    files: list[CardFile]
    sources: list[CardSource] = Field(min_length=1)
    declaration: DatasetDeclaration | None = None
    statistics: list[FittedStatistic] = Field(default_factory=list)
    mock: MockSpec | None = None  # None: the provider offers no mock data

    @model_validator(mode="after")
    def _consistent(self) -> DataCard:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("two sources share a name")
        if self.declaration is not None and self.declaration.dataset != self.dataset:
            raise ValueError(
                f"the declaration is for dataset {self.declaration.dataset}, not {self.dataset}"
            )
        for stat in self.statistics:
            if stat.source not in names:
                raise ValueError(f"statistic {stat.name} names no source of the card")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("a file is listed twice")
        blocks = [(f"source {s.name}", s.source) for s in self.sources]
        if (d := self.declaration) is not None:
            for split, part in (("train", d.train), ("val", d.val), ("test", d.test)):
                if isinstance(part, SourcePart):
                    blocks.append((f"declaration {split}", part.source))
        for what, block in blocks:
            missing = missing_paths(block, paths)
            if missing:
                kind, name = missing[0]
                raise ValueError(f"{what} reads {kind} {name!r}, which is not among the files")
        return self

    def source(self, name: str) -> CardSource:
        """The source called ``name``; KeyError if none."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)
