"""The reference page for config writers (docs/pipeline.md), generated from schemas and registries.

Generating it keeps the page honest: every part, field and registered name it lists
is what compose accepts. Regenerate with ``python -m sealroom.pipeline.reference``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from sealroom.pipeline.checks import transform_registry
from sealroom.pipeline.registry import Registry
from sealroom.pipeline.schema import (
    ArchitectureModel,
    Component,
    DeclarativeModel,
    EarlyStopping,
    Hdf5Source,
    IdxSource,
    ImageFolderSource,
    LayerSpec,
    OnnxModel,
    PairedMaskSource,
    SplitConfig,
    TableSource,
)

RESERVED = {"params", "optimizer", "epochs", "steps_per_epoch"}
NESTED: list[type[BaseModel]] = [
    Component,
    SplitConfig,
    EarlyStopping,
    OnnxModel,
    DeclarativeModel,
    LayerSpec,
    ArchitectureModel,
    IdxSource,
    Hdf5Source,
    ImageFolderSource,
    PairedMaskSource,
    TableSource,
]


def registries() -> dict[str, Registry[Any]]:
    """Every registry a config name may resolve through."""
    from sealroom.train.components.architectures import ARCHITECTURES
    from sealroom.train.components.layers import LAYERS
    from sealroom.train.components.losses import LOSSES
    from sealroom.train.components.optimizers import OPTIMIZERS
    from sealroom.train.components.schedulers import SCHEDULERS
    from sealroom.train.metrics import METRICS  # the implementations: their docs and signatures

    return {
        "optimizers": OPTIMIZERS,
        "schedulers": SCHEDULERS,
        "losses": LOSSES,
        "layers": LAYERS,
        "architectures": ARCHITECTURES,
        "metrics": METRICS,
        "transforms": transform_registry(),
    }


def registry_names() -> dict[str, list[str]]:
    return {kind: reg.names() for kind, reg in registries().items()}


def _callable(entry: Any) -> Callable[..., Any] | None:
    target = getattr(entry, "build", entry)  # schedulers wrap their build function
    return target if callable(target) else None


def _signature(entry: Any) -> str:
    target = _callable(entry)
    if target is None:
        return ""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return ""
    shown = []
    for p in parameters:
        if p.name in RESERVED or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        shown.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(shown)


def _summary(entry: Any) -> str:
    doc = inspect.getdoc(_callable(entry) if not inspect.isclass(entry) else entry) or ""
    return doc.splitlines()[0] if doc else ""


def _type(annotation: Any) -> str:
    """A readable type without ``|`` (which would split a Markdown table cell)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return str(getattr(annotation, "__name__", annotation))


def _doc(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__") or ""
    return inspect.cleandoc(doc).splitlines()[0] if doc else ""


def _fields(model: type[BaseModel]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = "default: " + repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = f"default: {field.default!r}"
        default = default.replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(field.annotation)} | {default} |")
    return rows


def _table(title: str, model: type[BaseModel]) -> list[str]:
    doc = _doc(model)
    return [
        f"### {title}",
        "",
        *([doc, ""] if doc else []),
        "| field | type | |",
        "| --- | --- | --- |",
        *_fields(model),
        "",
    ]


def _onnx_rules() -> list[str]:
    """What an ONNX model may contain: the room checks it before converting it."""
    from sealroom.train.onnx_check import (
        ALLOWED_OPS,
        MAX_GRAPH_DEPTH,
        MAX_NODES,
        MAX_ONNX_BYTES,
    )

    return [
        "## ONNX models",
        "",
        "An ONNX model is data: before anything converts it the room refuses any tensor",
        "stored as external data (initializers, sparse initializers, node attributes,",
        "subgraphs, training graphs), model-local functions, operators outside the default",
        f"ONNX domain or the list below, files over {MAX_ONNX_BYTES:,} bytes, more than",
        f"{MAX_NODES:,} nodes and graphs nested more than {MAX_GRAPH_DEPTH} deep.",
        "`sealroom task predict` runs the same checks but the operator list (onnxruntime",
        "runs the model there, on the caller's machine).",
        "",
        "Operators: " + ", ".join(f"`{op}`" for op in sorted(ALLOWED_OPS)) + ".",
        "",
    ]


def render_reference() -> str:
    """The Markdown of docs/pipeline.md."""
    from sealroom.pipeline.compose import PART_SCHEMAS, REQUIRED_PARTS

    out = [
        "# Pipeline configs",
        "",
        "<!-- generated by `python -m sealroom.pipeline.reference`; do not edit by hand -->",
        "",
        "A scenario folder holds one file per config part (`.yaml`, `.yml` or `.json`).",
        "`sealroom pipeline compose DIR --out FILE` validates every part, resolves every",
        "name below against its registry and writes one pipeline document; the digest it",
        "prints (`sha256:` over RFC 8785 canonical JSON) is what contracts bind to.",
        "Errors are one line: `file: field.path: message`. Unknown keys are errors.",
        "",
        "The consumer signs the composed pipeline for one contract:",
        "`sealroom pipeline sign FILE --as CONSUMER --contract ID` (or `compose ... --sign-as",
        "CONSUMER --contract ID`) writes `FILE.sig`, an Ed25519 signature over",
        "`sealroom.pipeline.v1:<contract id>:<contract digest>:<pipeline digest>`.",
        "`sealroom run` sends it with every key request (`--pipeline-signature` for another",
        "path) and key services release no key to a pipeline its consumer did not sign for",
        "that contract, so the operator who starts the run cannot substitute one. A contract",
        "may also pin the digest (`constraints.pipeline_digest`; `sealroom policy check`",
        "reports a mismatch) and cap the runs (`constraints.max_runs`).",
        "",
        "Loss expressions are arithmetic only: numbers, component names, declared",
        "variables and auxiliary values (`pt`, or `<component>_pt`), unary `+ -`,",
        "binary `+ - * / **` and parentheses. Exponents are constants within ±16 or",
        "variables; no calls, attributes, subscripts, strings or names starting with `_`.",
        "Example: `alpha * (1 - pt)**gamma * ce` with `components: {ce: {name: cross_entropy}}`.",
        "",
        "A declarative model is a list of layers, each reading the previous one's output;",
        "a layer with `inputs` reads earlier layers by `id` (or `input`) instead, which makes",
        "a small graph: e.g. a residual block ends with `{type: add, inputs: [block_in, conv2]}`.",
        "Only `add`, `concat` and `multiply` take several inputs.",
        "",
        *_onnx_rules(),
        "## Config parts",
        "",
    ]
    for kind, model in PART_SCHEMAS.items():
        required = " (required)" if kind in REQUIRED_PARTS else ""
        title = "`dataset*.yaml` (one per provider)" if kind == "dataset" else f"`{kind}.yaml`"
        out += _table(title + required, model)
    out += ["## Nested objects", ""]
    for model in NESTED:
        out += _table(model.__name__, model)
    out += ["## Registered names", ""]
    for kind, registry in registries().items():
        out += [f"### {kind}", ""]
        out += ["| name | parameters | |", "| --- | --- | --- |"]
        for name in registry.names():
            entry = registry.get(name)
            aux = getattr(entry, "aux_names", ())
            note = _summary(entry) + (f" Exports: {', '.join(aux)}." if aux else "")
            if getattr(entry, "interval", None):
                note += f"Steps once per {entry.interval}."
            out.append(f"| `{name}` | {_signature(entry)} | {note} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render_reference())
