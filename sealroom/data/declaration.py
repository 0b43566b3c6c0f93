"""Provider-declared splits: the declaration (see :mod:`sealroom.pipeline.declaration`) applied
to the data: the training source loaded with the pipeline's transforms, held-out files read
whole, held-out fractions drawn with the provider's seed, the provider's minimum enforced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree
from sealroom.data.join import join_datasets
from sealroom.data.split import Splits, split_dataset
from sealroom.errors import DataError
from sealroom.pipeline.declaration import (
    DatasetDeclaration,
    DeclarationError,
    FractionPart,
    HeldOut,
    SignedDeclaration,
    SourcePart,
    check_declared_sources,
    check_signature,
    declaration_digest,
    load_signed_declaration,
    parse_declaration,
    read_declaration_draft,
    save_declaration,
    sign_declaration,
    verify_declaration,
)
from sealroom.pipeline.schema import DatasetConfig, JoinConfig, SplitConfig

__all__ = [
    "DatasetDeclaration",
    "DeclarationError",
    "SignedDeclaration",
    "check_declared_sources",
    "check_signature",
    "declaration_digest",
    "load_declared_splits",
    "load_signed_declaration",
    "parse_declaration",
    "read_declaration_draft",
    "save_declaration",
    "sign_declaration",
    "verify_declaration",
]


def _fraction(part: HeldOut | None) -> float:
    return part.fraction if isinstance(part, FractionPart) else 0.0


def _by_fraction(data: ArrayDataset, declaration: DatasetDeclaration) -> Splits:
    """Split ``data`` by the declared fractions and seed (train only, if none)."""
    val, test = _fraction(declaration.val), _fraction(declaration.test)
    if val == 0 and test == 0:
        empty = data.subset(np.arange(0))
        return Splits(train=data, val=empty, test=empty)
    config = SplitConfig(
        train=1.0 - val - test,
        val=val,
        test=test,
        seed=declaration.seed,
        group_by=declaration.group_by,
    )
    return split_dataset(data, config)


def _declared_dataset(
    cfg: DatasetConfig, declaration: DatasetDeclaration, tree: FileTree
) -> Splits:
    """One provider's splits: fractions of the training source, held-out files read whole."""
    from sealroom.data.loaders import load_dataset

    parts = _by_fraction(load_dataset(cfg, tree), declaration).parts()
    for name, part in (("val", declaration.val), ("test", declaration.test)):
        if isinstance(part, SourcePart):
            held = load_dataset(cfg.model_copy(update={"source": part.source}), tree)
            train = parts["train"]
            if held.sample_shape != train.sample_shape or held.y.shape[1:] != train.y.shape[1:]:
                raise DataError(
                    f"dataset {cfg.id}: the declared {name} file's samples "
                    f"{held.sample_shape} do not match the training samples {train.sample_shape}"
                )
            parts[name] = held.subset(np.arange(len(held)), name=f"{cfg.id}/{name}")
    splits = Splits(**parts)
    _check_min_size(splits, declaration, f"dataset {cfg.id}", "the provider's")
    return splits


def _check_min_size(
    splits: Splits, declaration: DatasetDeclaration, where: str, whose: str
) -> None:
    """Each declared held-out split holds at least the declared minimum of records."""
    for name, part in (("val", declaration.val), ("test", declaration.test)):
        size = len(splits.parts()[name])
        if part is not None and size < declaration.min_size:
            raise DataError(
                f"{where}: the declared {name} split holds {size} records, fewer than "
                f"{whose} minimum of {declaration.min_size}"
            )


def _key_join_splits(
    declarations: Mapping[str, DatasetDeclaration],
    datasets: Sequence[DatasetConfig],
    join: JoinConfig,
    trees: Mapping[str, FileTree],
) -> Splits:
    """A key join is split after joining, so every provider must declare the same split."""
    from sealroom.data.loaders import load_dataset

    def terms(d: DatasetDeclaration) -> tuple[Any, ...]:
        return (d.val, d.test, d.seed, d.min_size, d.group_by)

    first = declarations[datasets[0].id]
    for cfg in datasets:
        declaration = declarations[cfg.id]
        held = [p for p in (declaration.val, declaration.test) if isinstance(p, SourcePart)]
        if held or terms(declaration) != terms(first):
            raise DataError(
                f"dataset {cfg.id}: a key join needs every provider to declare the same "
                "held-out fractions, seed and minimum size (no held-out files)"
            )
    joined = join_datasets([load_dataset(d, trees[d.id]) for d in datasets], join)
    splits = _by_fraction(joined, first)
    _check_min_size(splits, first, "key join", "the providers'")
    return splits


def load_declared_splits(
    declarations: Mapping[str, DatasetDeclaration],
    datasets: Sequence[DatasetConfig],
    join: JoinConfig,
    trees: Mapping[str, FileTree],
) -> Splits:
    """Train/val/test as the providers declared them; the pipeline's ``split`` plays no part.

    Each dataset is loaded from its declared training source (with the pipeline's
    transforms), its held-out splits read from the declared files or drawn by the declared
    fractions and seed; a union join then unites the splits dataset by dataset, so a
    provider's held-out records stay held out.
    """
    check_declared_sources(declarations, datasets)
    missing = [d.id for d in datasets if d.id not in trees]
    if missing:
        raise DataError(f"no files given for dataset {missing[0]!r}")
    if join.kind == "key":
        return _key_join_splits(declarations, datasets, join, trees)
    per_dataset = [_declared_dataset(d, declarations[d.id], trees[d.id]) for d in datasets]
    if len(per_dataset) == 1:
        return per_dataset[0]
    joined = {
        name: join_datasets([s.parts()[name] for s in per_dataset], join)
        for name in ("train", "val", "test")
    }
    return Splits(**joined)
