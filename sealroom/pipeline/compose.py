"""Load config parts (JSON or YAML), validate them and compose the pipeline document.

A scenario folder holds one file per part: ``pipeline`` (name, split), ``model``,
``dataset*`` (one per provider, in file-name order), ``loss``, ``train``, ``eval``,
``join`` and ``privacy``, each ``.yaml``, ``.yml`` or ``.json``. Other files are
ignored, except files named like a misspelt part (``trian.yaml``). Every problem is one
line, ``file: field.path: message``, and compose reports all of them at once.

The pipeline digest is SHA-256 over the RFC 8785 canonical JSON of the validated
document (defaults included), so it does not depend on key order, formatting or
whether a default was written out — only on what the room will execute.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import rfc8785
import yaml
from pydantic import BaseModel, ValidationError

from sealroom.errors import ConfigError, ConfigProblems
from sealroom.pipeline.checks import (
    check_dataset,
    check_eval,
    check_loss,
    check_model,
    check_pipeline,
    check_private_eval,
    check_private_model,
    check_train,
    located,
)
from sealroom.pipeline.problems import validation_problems, without_unknown_keys
from sealroom.pipeline.schema import (
    DatasetConfig,
    EvalConfig,
    JoinConfig,
    LossConfig,
    ModelPart,
    Pipeline,
    PipelinePart,
    PrivacyConfig,
    TrainConfig,
)

SUFFIXES = (".yaml", ".yml", ".json")
MAX_PART_BYTES = 1 << 20
PART_SCHEMAS: dict[str, type[BaseModel]] = {
    "pipeline": PipelinePart,
    "model": ModelPart,
    "dataset": DatasetConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "join": JoinConfig,
    "privacy": PrivacyConfig,
}
REQUIRED_PARTS = ("model", "dataset", "loss", "train")

M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------- reading documents


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe subset, minus aliases (no billion laughs) and duplicate keys (no shadowing)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.MarkedYAMLError(problem="aliases are not allowed", problem_mark=mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable keys are refused by the base class
            if key in seen:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 reads `1e-3` as a string; configs mean a number.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not allowed")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_document(path: Path) -> Any:
    """Parse one JSON or YAML file safely: no tags, aliases, duplicate keys, NaN or huge files."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_PART_BYTES:
            raise ConfigError(f"{name}: file is {size} bytes (at most {MAX_PART_BYTES})")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    if path.suffix == ".json":
        try:
            return json.loads(
                text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant
            )
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: JSON error at line {exc.lineno}: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{name}: JSON error: {exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError(f"{name}: YAML error{line}: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{name}: YAML error: {type(exc).__name__}") from None


# --------------------------------------------------------------------------- validation


def validate_part(schema: type[M], data: Any, name: str) -> M:
    """Validate parsed data against a part schema; ConfigProblems lists every error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigProblems(validation_problems(exc, schema, data, name)) from None


def part_kind(path: Path) -> str | None:
    """Which part a file holds, from its name (``dataset_hospital.yaml`` -> ``dataset``)."""
    if path.suffix not in SUFFIXES:
        return None
    stem = path.stem
    if stem.startswith("dataset"):
        return "dataset"
    return stem if stem in PART_SCHEMAS else None


def _near_part(path: Path) -> str:
    """`` (did you mean 'train.yaml'?)`` for a file named like a part but misspelt, else ''."""
    if path.suffix not in SUFFIXES:
        return ""
    close = difflib.get_close_matches(path.stem, list(PART_SCHEMAS), n=1, cutoff=0.8)
    return f" (did you mean '{close[0]}{path.suffix}'?)" if close else ""


def load_part(path: Path | str, schema: type[BaseModel] | None = None) -> BaseModel:
    """Read and validate one part; the schema is chosen from the file name unless given."""
    path = Path(path)
    if schema is None:
        kind = part_kind(path)
        if kind is None:
            known = ", ".join(f"{k}.yaml" for k in PART_SCHEMAS)
            hint = _near_part(path) or f" (expected one of {known})"
            raise ConfigError(f"{path.name}: not a config part{hint}")
        schema = PART_SCHEMAS[kind]
    return validate_part(schema, read_document(path), path.name)


# --------------------------------------------------------------------------- composing


class _Problems:
    """Collects every problem of every part; raised once, sorted by file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, exc: ConfigError) -> None:
        self.lines.extend(exc.problems if isinstance(exc, ConfigProblems) else [str(exc)])

    def load(self, path: Path) -> BaseModel | None:
        """The validated part, or None with its problems recorded. A part whose only errors
        are unknown keys is returned without them (``salvaged``), so that the registry
        names it holds are still checked; compose fails anyway."""
        kind = part_kind(path)
        try:
            data = read_document(path)
            if kind is None or not isinstance(data, dict):
                return load_part(path)
            schema = PART_SCHEMAS[kind]
            try:
                return schema.model_validate(data)
            except ValidationError as exc:
                self.lines += validation_problems(exc, schema, data, path.name)
                return without_unknown_keys(schema, data, exc)
        except ConfigError as exc:
            self.add(exc)
            return None

    def check(self, name: str, check: Callable[[], None]) -> None:
        try:
            with located(name):
                check()
        except ConfigError as exc:
            self.add(exc)

    def raise_any(self) -> None:
        if self.lines:
            raise ConfigProblems(sorted(self.lines))


def _default_name(directory: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "-", directory.resolve().name)[:64]
    if not re.match(r"^[A-Za-z]", name):
        raise ConfigError(f"{directory}: no pipeline.yaml, and the folder name is not a valid name")
    return name


def _part_files(directory: Path, problems: _Problems) -> dict[str, list[Path]]:
    """The part files of a folder by kind; misspelt part names, doubles and missing parts
    are problems (other files, e.g. contract.yaml, are not parts and are ignored)."""
    files: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        kind = part_kind(path)
        if kind is not None and path.is_file():
            files.setdefault(kind, []).append(path)
        elif kind is None and path.is_file() and _near_part(path):
            problems.add(ConfigError(f"{path.name}: not a config part{_near_part(path)}"))
    for kind, paths in files.items():
        if kind != "dataset" and len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.add(ConfigError(f"{directory}: several files for part {kind!r}: {names}"))
    missing = [k for k in REQUIRED_PARTS if k not in files]
    if missing:
        problems.add(
            ConfigError(f"{directory}: missing part(s): {', '.join(f'{k}.yaml' for k in missing)}")
        )
    return files


def _check_valid_parts(
    parts: dict[str, BaseModel | None],
    datasets: list[tuple[Path, BaseModel | None]],
    files: dict[str, list[Path]],
    problems: _Problems,
) -> None:
    """Registry checks of the parts that did validate, when others did not (so that a
    schema error in one file does not hide an unknown optimizer in another)."""
    private = isinstance(parts.get("privacy"), PrivacyConfig)
    for kind, part in parts.items():
        name = files[kind][0].name
        if isinstance(part, ModelPart):
            problems.check(name, partial(check_model, part))
            if private:
                problems.check(name, partial(check_private_model, part))
        elif isinstance(part, LossConfig):
            problems.check(name, partial(check_loss, part))
        elif isinstance(part, TrainConfig):
            problems.check(name, partial(check_train, part))
        elif isinstance(part, EvalConfig):
            problems.check(name, partial(check_eval, part))
            if private:
                problems.check(name, partial(check_private_eval, part))
    for path, dataset in datasets:
        if isinstance(dataset, DatasetConfig):
            problems.check(path.name, partial(check_dataset, dataset, private))


def compose(directory: Path | str) -> Pipeline:
    """Validate every part in ``directory``, resolve names against the registries, merge.

    Every problem of every part is collected and raised at once (ConfigProblems, one
    line each, sorted by file): schema errors, misspelt part files, unknown registry names.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a folder")
    problems = _Problems()
    files = _part_files(directory, problems)
    parts = {kind: problems.load(paths[0]) for kind, paths in files.items() if kind != "dataset"}
    datasets = [(p, problems.load(p)) for p in files.get("dataset", [])]
    if problems.lines:
        _check_valid_parts(parts, datasets, files, problems)
        problems.raise_any()

    header = parts.get("pipeline")
    document: dict[str, Any] = {
        "name": header.name if isinstance(header, PipelinePart) else _default_name(directory),
        "datasets": [d for _, d in datasets],
        "model": parts["model"],
        "loss": parts["loss"],
        "train": parts["train"],
    }
    if isinstance(header, PipelinePart):
        document["split"] = header.split
    for kind in ("eval", "join", "privacy"):
        if kind in parts:
            document[kind] = parts[kind]
    sources = {k: v[0].name for k, v in files.items()}
    try:
        pipeline = Pipeline.model_validate(document)
    except ValidationError as exc:  # cross-part rules, e.g. unique dataset ids
        where = ", ".join(p.name for p in files["dataset"])
        raise ConfigProblems(validation_problems(exc, Pipeline, document, where)) from None

    def locate(section: str) -> tuple[str, str]:
        if section.startswith("datasets["):
            return files["dataset"][int(section[9:-1])].name, ""
        return sources.get(section, section), ""

    check_pipeline(pipeline, locate)
    return pipeline


def load_pipeline(path: Path | str) -> Pipeline:
    """Read a composed pipeline document (JSON or YAML), or compose a folder of parts,
    and check it as compose does."""
    path = Path(path)
    if path.is_dir():
        return compose(path)
    pipeline = validate_part(Pipeline, read_document(path), path.name)
    check_pipeline(pipeline, lambda section: (path.name, section))
    return pipeline


# --------------------------------------------------------------------------- digest


def canonical_bytes(pipeline: Pipeline) -> bytes:
    """RFC 8785 canonical JSON of the validated document."""
    try:
        return rfc8785.dumps(pipeline.model_dump(mode="json"))
    except rfc8785.CanonicalizationError as exc:
        raise ConfigError(f"pipeline {pipeline.name}: cannot canonicalise: {exc}") from None


def pipeline_digest(pipeline: Pipeline) -> str:
    """``sha256:<hex>`` of the canonical JSON: what contracts and key releases bind to."""
    return "sha256:" + hashlib.sha256(canonical_bytes(pipeline)).hexdigest()


def dump_pipeline(pipeline: Pipeline) -> str:
    """Readable JSON of the composed document (same digest once loaded again)."""
    return json.dumps(pipeline.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
