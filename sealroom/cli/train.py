"""`sealroom train --local`: run a pipeline on cleartext folders ("deploy locally" mode)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    EpochBars,
    console,
    emit_json,
    err_console,
    fail,
    progress,
    refusals,
)
from sealroom.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress

    from sealroom.pipeline.schema import Pipeline


if TYPE_CHECKING:
    from sealroom.data import FileTree
    from sealroom.train.loop import TrainEvent
    from sealroom.train.run import RunOutcome

DATA_HELP = "Dataset folder as ID=DIR (repeatable); default <scenario>/data/<ID>."


def _data_dirs(base: Path, ids: list[str], given: list[str], mock: bool = False) -> dict[str, Path]:
    """Folders per dataset id: ``--data ID=DIR`` or ``<base>/data/<ID>`` (with ``mock``: a
    sealed package folder or a card file, checked when it is opened)."""
    dirs: dict[str, Path] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--data {item!r}: expected ID=DIR")
        if key not in ids:
            raise ConfigError(
                f"--data {key}: the pipeline has no dataset {key!r} ({', '.join(ids)})"
            )
        dirs[key] = Path(value)
    for dataset_id in ids:
        folder = dirs.setdefault(dataset_id, base / "data" / dataset_id)
        if mock and not folder.exists():
            raise ConfigError(
                f"dataset {dataset_id!r}: {folder} not found (pass --data {dataset_id}=X.sealed "
                "or a card.json)"
            )
        if not mock and not folder.is_dir():
            raise ConfigError(
                f"dataset {dataset_id!r}: folder {folder} not found (pass --data {dataset_id}=DIR)"
            )
    return dirs


def local_inputs(
    pipeline: Path, data: list[str], model_dir: Path | None, epochs: int | None
) -> tuple[Pipeline, dict[str, FileTree], FileTree]:
    """The pipeline (``--epochs`` applied) and its cleartext dataset and model folders."""
    from sealroom.data import DirectoryTree

    spec, base = _load_spec(pipeline, epochs)
    dirs = _data_dirs(base, [d.id for d in spec.datasets], data)
    trees: dict[str, FileTree] = {key: DirectoryTree(folder) for key, folder in dirs.items()}
    return spec, trees, _model_tree(base, model_dir)


def _load_spec(pipeline: Path, epochs: int | None) -> tuple[Pipeline, Path]:
    """The pipeline (``--epochs`` applied) and the scenario folder its paths default under."""
    from sealroom.pipeline.compose import load_pipeline

    spec = load_pipeline(pipeline)
    if epochs is not None:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": epochs})})
    return spec, pipeline if pipeline.is_dir() else pipeline.parent


def _model_tree(base: Path, model_dir: Path | None) -> FileTree:
    from sealroom.data import DirectoryTree

    if model_dir is None:
        model_dir = base / "model" if (base / "model").is_dir() else base
    return DirectoryTree(model_dir)


class TrainBars:
    """Epoch and batch progress bars driven by the trainer's events."""

    def __init__(self, bars: Progress, quiet: bool) -> None:
        self.quiet = quiet
        self.epoch_bars = EpochBars(bars)

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "log":
            (err_console if self.quiet else console).print(event.message, highlight=False)
        elif event.kind == "epoch":
            self.epoch_bars.epoch(event.epoch, event.epochs, event.batches)
        elif event.kind == "batch":
            self.epoch_bars.batch(event.epoch, event.batch, event.batches)


def train_command(
    pipeline: Path = typer.Argument(
        ..., help="Composed pipeline file, or a folder of config parts."
    ),
    local: bool = typer.Option(False, "--local", help="Run on cleartext folders on this machine."),
    data: list[str] = typer.Option([], "--data", help=DATA_HELP),
    model_dir: Path = typer.Option(None, "--model-dir", help="Folder with the model files."),
    out: Path = typer.Option(..., "--out", help="Folder for the trained model, metrics, plots."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override train.epochs (local only)."),
    max_samples: int = typer.Option(
        None, "--max-samples", min=3, help="Use only the first N samples (a quick check)."
    ),
    mock: bool = typer.Option(
        False, "--mock", help="Train on mock data drawn from each dataset's card (--data ID=PKG)."
    ),
    declaration: list[Path] = typer.Option(
        [], "--declaration", help="A provider's signed declaration: split as it declares."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train and evaluate a pipeline on cleartext data, writing outputs to --out.

    Dataset folders default to <scenario>/data/<dataset id>, the model folder to
    <scenario>/model, where <scenario> is the pipeline folder (or the file's folder).

    With --mock each --data ID=PATH is a sealed package folder or its signed card.json:
    the pipeline runs on mock data drawn from the card (docs/mock-data.md).

    Example: sealroom train --local scenarios/mnist --out runs/mnist
    Example: sealroom train --local scenarios/mnist --mock --data mnist=mnist.sealed --out runs/m
    """
    if not local:
        raise fail("only --local is supported here; use `sealroom run` for a clean room", 2)
    with refusals():
        spec, outcome = run_local(
            pipeline, data, model_dir, epochs, max_samples, out, json_out, mock, declaration
        )
    report_local(spec, outcome, out, json_out, mock)


def run_local(
    pipeline: Path,
    data: list[str],
    model_dir: Path | None,
    epochs: int | None,
    max_samples: int | None,
    out: Path,
    quiet: bool,
    mock: bool = False,
    declaration_files: Sequence[Path] = (),
) -> tuple[Pipeline, RunOutcome]:
    """Train on cleartext folders; DP-SGD when the pipeline asks, then aggregate outputs only.

    A private run writes nothing until its outputs are filtered: no per-example output
    (confusion matrix, samples) leaves even a local private run. With ``mock`` the data are
    drawn from the datasets' cards and every output is marked MOCK DATA; declarations (the
    cards' or ``declaration_files``) split as in the room.
    """
    from sealroom.cli.train_mock import (
        LocalData,
        declarations_from,
        declared_splits,
        mock_data,
        say_loudly,
    )
    from sealroom.train.mock_outputs import MockMarkingSink, mark_outputs
    from sealroom.train.run import DirectorySink, MemorySink, OutputSink, run_pipeline

    declared = declarations_from(declaration_files)
    with ExitStack() as stack:
        if mock:
            spec, base = _load_spec(pipeline, epochs)
            paths = _data_dirs(base, [d.id for d in spec.datasets], data, mock=True)
            local = stack.enter_context(mock_data(spec, paths, declared))
            model_tree = _model_tree(base, model_dir)
        else:
            spec, trees, model_tree = local_inputs(pipeline, data, model_dir, epochs)
            local = LocalData(trees, declared)
        factory = None
        final: OutputSink = MockMarkingSink(DirectorySink(out)) if mock else DirectorySink(out)
        sink: OutputSink = final
        if spec.privacy is not None:
            from sealroom.privacy.trainer import DPTrainer

            factory = DPTrainer
            sink = MemorySink()
        splits = declared_splits(spec, local)
        if splits is not None and max_samples is not None:
            say_loudly(
                "--max-samples is ignored: the declared splits decide which records are used"
            )
        with progress(transient=True) as bars:
            outcome = run_pipeline(
                spec,
                local.trees,
                model_tree,
                sink=sink,
                on_event=TrainBars(bars, quiet=quiet),
                trainer_factory=factory,
                max_samples=max_samples,
                splits=splits,
            )
    if isinstance(sink, MemorySink):
        from sealroom.privacy.release import aggregate_only

        outcome.outputs = aggregate_only(sink.files)
        for name, blob in outcome.outputs.items():
            final.write(name, blob)
    if mock:
        outcome.outputs = mark_outputs(outcome.outputs)
    return spec, outcome


def report_local(
    spec: Pipeline, outcome: RunOutcome, out: Path, json_out: bool, mock: bool = False
) -> None:
    """Print a local run's metrics (and ε spent with n, batch, noise, epochs when private)."""
    report = outcome.outputs.get("privacy_report.json")
    privacy = json.loads(report) if report else None
    if json_out:
        emit_json(
            {
                "pipeline": spec.name,
                "out": str(out),
                "metrics": outcome.metrics,
                "outputs": sorted(outcome.outputs),
                "onnx_max_abs_diff": outcome.onnx_max_abs_diff,
                "privacy": privacy and {k: v for k, v in privacy.items() if k != "statement"},
                "mock": mock,
            }
        )
        return
    if privacy:
        console.print(
            f"[bold]ε spent {privacy['epsilon_spent']:.3f}[/] (δ {privacy['delta']:g}) — "
            f"n {privacy['n_train']}, batch size {privacy['batch_size']}, noise multiplier "
            f"{privacy['noise_multiplier']:.4f}, epochs {privacy['epochs']}, "
            f"{privacy['steps']} steps, {privacy['accountant']} accountant",
            highlight=False,
        )
    console.print(f"outputs written to [bold]{out}[/]: {', '.join(sorted(outcome.outputs))}")
    if mock:
        console.print(
            "[bold red]MOCK DATA[/]: these outputs come from random records drawn from the "
            "data cards; they say nothing about the real data"
        )
