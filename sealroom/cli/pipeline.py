"""`sealroom pipeline`: compose, sign, print the schema, show a pipeline, list registries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, fail, refusals

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sealroom.pipeline.schema import PrivacyConfig


app = typer.Typer(
    name="pipeline",
    help="Compose and inspect pipeline configs (the consumer's side).",
    no_args_is_help=True,
)


@app.command()
def compose(
    directory: Path = typer.Argument(..., help="Folder with model.yaml, dataset*.yaml, loss.yaml…"),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the composed pipeline JSON."),
    sign_as: str = typer.Option(
        None, "--sign-as", help="Also sign it as this consumer (needs --contract)."
    ),
    contract: str = typer.Option(None, "--contract", help="Contract id to sign it under."),
    package: list[str] = typer.Option(
        [],
        "--package",
        help="DATASET_ID=X.sealed: check the file names the dataset reads against that "
        "package's signed manifest and card (repeatable).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Validate the config parts in DIRECTORY and write one pipeline document; print its digest.

    Example: sealroom pipeline compose scenarios/mnist --out mnist.pipeline.json
    --sign-as lab --contract mnist-demo --package mnist=mnist.sealed
    """
    from sealroom.pipeline.compose import compose as compose_dir
    from sealroom.pipeline.compose import dump_pipeline, pipeline_digest
    from sealroom.pipeline.signing import sign_pipeline_file

    if (sign_as is None) != (contract is None):
        raise fail("--sign-as and --contract go together", code=2)
    with refusals():
        if package:
            from sealroom.pipeline.package_check import parse_package_options

            wanted = parse_package_options(package)
        pipeline = compose_dir(directory)
        digest = pipeline_digest(pipeline)
        if package:
            from sealroom.pipeline.package_check import check_pipeline_packages
            from sealroom.workspace import Workspace

            check_pipeline_packages(Workspace.find(), pipeline, wanted)
    from sealroom.files import write_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, dump_pipeline(pipeline).encode("utf-8"))  # never half a document
    sig_path: Path | None = None
    if sign_as is not None:
        from sealroom.workspace import Workspace

        with refusals():
            sig_path, _ = sign_pipeline_file(Workspace.find(), out, contract, sign_as)
    if json_out:
        signed = {"signature": str(sig_path)} if sig_path else {}
        emit_json({"name": pipeline.name, "digest": digest, "out": str(out), **signed})
    else:
        console.print(f"composed [bold]{pipeline.name}[/] -> {out}", highlight=False)
        console.print(digest, highlight=False, soft_wrap=True)
        if sig_path is not None:
            console.print(f"signed by {sign_as} for contract {contract} -> {sig_path}")


@app.command()
def sign(
    pipeline: Path = typer.Argument(..., help="A composed pipeline (or a parts folder)."),
    signer: str = typer.Option(..., "--as", help="The contract's consumer, who signs."),
    contract: str = typer.Option(..., "--contract", help="Contract id the run will be under."),
    out: Path = typer.Option(None, "--out", "-o", help="Signature file (default: PIPELINE.sig)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Sign a pipeline as the contract's consumer: key services release keys only to a
    pipeline its consumer signed for that contract, so an operator cannot substitute one.

    Example: sealroom pipeline sign mnist.pipeline.json --as lab --contract mnist-demo
    """
    from sealroom.pipeline.signing import sign_pipeline_file
    from sealroom.workspace import Workspace

    with refusals():
        path, signature = sign_pipeline_file(Workspace.find(), pipeline, contract, signer, out)
    if json_out:
        emit_json({"file": str(path), **signature.model_dump(mode="json")})
    else:
        console.print(
            f"pipeline {signature.pipeline_digest} signed by [bold]{signer}[/] "
            f"for contract {contract} -> {path}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def schema(
    part: str = typer.Option(
        None, "--part", help="One part (model, dataset, loss, train, eval, join, privacy)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Accepted like everywhere; the schema is JSON either way."
    ),
) -> None:
    """Print the JSON Schema of the composed pipeline document, or of one config part.

    Example: sealroom pipeline schema --part train
    """
    from sealroom.pipeline.compose import PART_SCHEMAS
    from sealroom.pipeline.schema import Pipeline

    del json_out  # the output is JSON with or without it
    model: type[BaseModel]
    if part is None:
        model = Pipeline
    elif part in PART_SCHEMAS:
        model = PART_SCHEMAS[part]
    else:
        raise fail(f"unknown part {part!r} (known: {', '.join(PART_SCHEMAS)})", code=2)
    emit_json(model.model_json_schema())


@app.command()
def show(
    file: Path = typer.Argument(..., help="A composed pipeline (JSON or YAML)."),
    json_out: bool = typer.Option(False, "--json", help="Print the document and its digest."),
) -> None:
    """Validate a composed pipeline and summarise it, with its digest.

    Example: sealroom pipeline show mnist.pipeline.json
    """
    from sealroom.pipeline.compose import load_pipeline, pipeline_digest

    with refusals():
        pipeline = load_pipeline(file)
        digest = pipeline_digest(pipeline)
    if json_out:
        emit_json({"digest": digest, "pipeline": pipeline.model_dump(mode="json")})
        return
    model = pipeline.model.model
    described = getattr(model, "name", None) or getattr(model, "file", None) or "layers"
    rows = [
        ("name", pipeline.name),
        ("digest", digest),
        ("datasets", ", ".join(f"{d.id} ({d.source.format})" for d in pipeline.datasets)),
        ("join", pipeline.join.kind),
        ("split", f"{pipeline.split.train}/{pipeline.split.val}/{pipeline.split.test}"),
        ("model", f"{model.format}: {described}"),
        ("loss", pipeline.loss.expression),
        ("optimizer", pipeline.train.optimizer.name),
        ("scheduler", pipeline.train.scheduler.name if pipeline.train.scheduler else "none"),
        ("epochs", str(pipeline.train.epochs)),
        ("metrics", ", ".join(pipeline.eval.metrics)),
        ("privacy", _privacy(pipeline.privacy)),
    ]
    for key, value in rows:
        console.print(f"[bold]{key:>10}[/]  {value}", highlight=False, soft_wrap=True)


def _privacy(privacy: PrivacyConfig | None) -> str:
    if privacy is None:
        return "none"
    return f"ε={privacy.epsilon} δ={privacy.delta} (clip {privacy.max_grad_norm})"


@app.command()
def registries(
    json_out: bool = JSON_OPTION,
) -> None:
    """List the names each registry accepts (optimizers, losses, layers, …).

    Example: sealroom pipeline registries --json
    """
    from sealroom.pipeline.reference import registry_names

    names = registry_names()
    if json_out:
        emit_json(names)
        return
    for kind, entries in names.items():
        console.print(f"[bold]{kind}[/]: {', '.join(entries)}", highlight=False)
