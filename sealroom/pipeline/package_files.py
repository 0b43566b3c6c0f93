"""Which file names a data source reads, and whether a package holds them.

A package's signed manifest (and its card) lists every file path in the clear, so a
pipeline that names a file the package does not hold can be refused *before* any key is
released — by the room, by ``pipeline compose --package`` and by a card — with one line
that names the dataset, the package, the files it does hold and the nearest name.
Folder sources (``image_folder`` root, ``paired_masks`` images and masks) need at least one
file under the folder. Paths are compared as the loaders' file trees address them
(:func:`sealroom.data.files.normalize_relpath`: ``./a//b`` is ``a/b``).
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Iterable, Sequence

from sealroom.errors import DataError
from sealroom.pipeline.declaration import DatasetDeclaration, SourcePart
from sealroom.pipeline.schema import (
    DataSource,
    Hdf5Source,
    IdxSource,
    ImageFolderSource,
    PairedMaskSource,
    TableSource,
)

LISTED = 4  # files a message lists before "…"


class MissingFileError(DataError):
    """A data source names a file or folder that its package does not hold."""


def source_paths(source: DataSource) -> list[tuple[str, str]]:
    """``(kind, path)`` for each name the source reads: kind ``file`` or ``folder``."""
    if isinstance(source, IdxSource):
        return [("file", source.images), ("file", source.labels)]
    if isinstance(source, Hdf5Source | TableSource):
        return [("file", source.file)]
    if isinstance(source, ImageFolderSource):
        return [("folder", source.root)]
    if isinstance(source, PairedMaskSource):
        return [("folder", source.images), ("folder", source.masks)]
    raise AssertionError(f"unknown source {source!r}")  # the union is closed


def _normal(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/"))


def _folder(path: str) -> str:
    norm = _normal(path)
    return "" if norm == "." else norm.rstrip("/") + "/"


def missing_paths(source: DataSource, paths: Iterable[str]) -> list[tuple[str, str]]:
    """The ``(kind, name)`` pairs of ``source`` that ``paths`` (a package's files) lack."""
    held = {_normal(p) for p in paths}
    missing = []
    for kind, name in source_paths(source):
        if kind == "file":
            present = _normal(name) in held
        else:
            prefix = _folder(name)
            present = any(p.startswith(prefix) for p in held)
        if not present:
            missing.append((kind, name))
    return missing


def nearest(name: str, paths: Sequence[str]) -> str | None:
    """The package path a mistyped ``name`` most likely meant (``x`` → ``x.gz`` first)."""
    for candidate in (name + ".gz", name.removesuffix(".gz")):
        if candidate != name and candidate in paths:
            return candidate
    close = difflib.get_close_matches(name, list(paths), n=1, cutoff=0.6)
    return close[0] if close else None


def _folders(paths: Sequence[str]) -> list[str]:
    found = {p.rsplit("/", 1)[0] for p in paths if "/" in p}
    return sorted(found)


def holdings(paths: Sequence[str]) -> str:
    """``a, b, c, d, … (12 files)``: what a message says the package holds."""
    if not paths:
        return "no files"
    shown = ", ".join(paths[:LISTED])
    if len(paths) > LISTED:
        shown += f", … ({len(paths)} files)"
    return shown


def check_source_files(
    dataset: str, package_digest: str, source: DataSource, paths: Sequence[str], what: str = ""
) -> None:
    """MissingFileError (one line) unless the package's ``paths`` hold every name ``source``
    reads; ``what`` says whose source it is (e.g. "the declaration's test source")."""
    missing = missing_paths(source, paths)
    if not missing:
        return
    kind, name = missing[0]
    ordered = sorted(_normal(p) for p in paths)
    where = f"dataset {dataset} (package {package_digest[:19]}…)"
    if what:
        where += f", {what}"
    if kind == "file":
        guess = nearest(_normal(name), ordered)
        problem = f"no file '{name}' in the package"
    else:
        folders = _folders(ordered)
        guess = nearest(_normal(name).rstrip("/"), folders)
        problem = f"no file under folder '{name}' in the package"
    hint = f" (did you mean '{guess}'?)" if guess else ""
    raise MissingFileError(f"{where}: {problem}; it holds {holdings(ordered)}{hint}")


def check_declaration_files(
    declaration: DatasetDeclaration, package_digest: str, paths: Sequence[str]
) -> None:
    """MissingFileError unless every source the provider's declaration names (train, and a
    held-out split read from its own files) is in the package."""
    parts = (("train", declaration.train), ("val", declaration.val), ("test", declaration.test))
    for split, part in parts:
        if isinstance(part, SourcePart):
            what = f"the provider's declared {split} source"
            check_source_files(declaration.dataset, package_digest, part.source, paths, what)
