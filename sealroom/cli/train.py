"""`sealroom train --local`: run a pipeline on cleartext folders ("deploy locally" mode)."""

from __future__ import annotations

import json
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


def _data_dirs(base: Path, ids: list[str], given: list[str]) -> dict[str, Path]:
    """Folders per dataset id: ``--data ID=DIR`` or ``<base>/data/<ID>``."""
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
        if not folder.is_dir():
            raise ConfigError(
                f"dataset {dataset_id!r}: folder {folder} not found (pass --data {dataset_id}=DIR)"
            )
    return dirs


def local_inputs(
    pipeline: Path, data: list[str], model_dir: Path | None, epochs: int | None
) -> tuple[Pipeline, dict[str, FileTree], FileTree]:
    """The pipeline (``--epochs`` applied) and its cleartext dataset and model folders."""
    from sealroom.data import DirectoryTree
    from sealroom.pipeline.compose import load_pipeline

    spec = load_pipeline(pipeline)
    if epochs is not None:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": epochs})})
    base = pipeline if pipeline.is_dir() else pipeline.parent
    dirs = _data_dirs(base, [d.id for d in spec.datasets], data)
    if model_dir is None:
        model_dir = base / "model" if (base / "model").is_dir() else base
    trees: dict[str, FileTree] = {key: DirectoryTree(folder) for key, folder in dirs.items()}
    return spec, trees, DirectoryTree(model_dir)


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
    json_out: bool = JSON_OPTION,
) -> None:
    """Train and evaluate a pipeline on cleartext data, writing outputs to --out.

    Dataset folders default to <scenario>/data/<dataset id>, the model folder to
    <scenario>/model, where <scenario> is the pipeline folder (or the file's folder).

    Example: sealroom train --local scenarios/mnist --out runs/mnist
    """
    if not local:
        raise fail("only --local is supported here; use `sealroom run` for a clean room", 2)
    with refusals():
        spec, outcome = run_local(pipeline, data, model_dir, epochs, max_samples, out, json_out)
    report_local(spec, outcome, out, json_out)


def run_local(
    pipeline: Path,
    data: list[str],
    model_dir: Path | None,
    epochs: int | None,
    max_samples: int | None,
    out: Path,
    quiet: bool,
) -> tuple[Pipeline, RunOutcome]:
    """Train on cleartext folders; DP-SGD when the pipeline asks, then aggregate outputs only.

    A private run writes nothing until its outputs are filtered: no per-example output
    (confusion matrix, samples) leaves even a local private run.
    """
    from sealroom.train.run import DirectorySink, MemorySink, OutputSink, run_pipeline

    spec, trees, model_tree = local_inputs(pipeline, data, model_dir, epochs)
    factory = None
    sink: OutputSink = DirectorySink(out)
    if spec.privacy is not None:
        from sealroom.privacy.trainer import DPTrainer

        factory = DPTrainer
        sink = MemorySink()
    with progress(transient=True) as bars:
        outcome = run_pipeline(
            spec,
            trees,
            model_tree,
            sink=sink,
            on_event=TrainBars(bars, quiet=quiet),
            trainer_factory=factory,
            max_samples=max_samples,
        )
    if isinstance(sink, MemorySink):
        from sealroom.privacy.release import aggregate_only

        outcome.outputs = aggregate_only(sink.files)
        for name, blob in outcome.outputs.items():
            DirectorySink(out).write(name, blob)
    return spec, outcome


def report_local(spec: Pipeline, outcome: RunOutcome, out: Path, json_out: bool) -> None:
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
