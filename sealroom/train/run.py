"""run_pipeline: the one entry point that loads data, trains, evaluates and exports.

Both ``sealroom train --local`` (cleartext folders) and the clean room (decrypted
bytes in memory) call it; they differ only in the FileTrees they pass and in which
outputs they release (``RunOutcome.kinds`` tells the room what each file is).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sealroom.data import (
    ArrayDataset,
    FileTree,
    Splits,
    join_datasets,
    load_dataset,
    load_splits,
    split_dataset,
)
from sealroom.errors import DataError, PrivacyError, TrainingError
from sealroom.files import write_atomic
from sealroom.pipeline.compose import pipeline_digest
from sealroom.pipeline.schema import Pipeline
from sealroom.train.classes import (
    check_class_names,
    class_labels,
    model_classes,
    per_class,
    per_class_fields,
    wants_class_report,
)
from sealroom.train.export import export_onnx, export_safetensors
from sealroom.train.loop import CheckpointSink, EpochRecord, EventCallback, Trainer, TrainResult
from sealroom.train.metrics import binary_masks
from sealroom.train.models import build_model
from sealroom.train.plots import (
    confusion_matrix_png,
    per_class_png,
    segmentation_overlays_png,
    training_curves_png,
)

# What each output is, in the words a contract's ``released_outputs`` uses.
OUTPUT_KINDS = {
    "trained_model.onnx": "model",
    "trained_model.safetensors": "model",
    "metrics.json": "metrics",
    "training_log.txt": "metrics",
    "confusion_matrix.png": "plots",
    "training_curves.png": "plots",
    "per_class.png": "plots",
    "segmentation_samples.png": "samples",
    "privacy_report.json": "privacy_report",
}


def output_kind(name: str) -> str:
    """The release category of an output file; checkpoints are model weights."""
    if name.startswith("checkpoints/"):
        return "model"
    return OUTPUT_KINDS.get(name, "other")


class OutputSink(Protocol):
    """Where a run writes files as they appear (checkpoints during training, results at the end)."""

    def write(self, name: str, data: bytes) -> None: ...


class MemorySink:
    """Keeps outputs in memory, e.g. for the room to seal them."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write(self, name: str, data: bytes) -> None:
        self.files[name] = data


class DirectorySink:
    """Writes outputs under a folder, each file atomically (temp file then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, name: str, data: bytes) -> None:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise TrainingError(f"output name {name!r} leaves the output folder")
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)


TrainerFactory = Callable[..., Trainer]


@dataclass
class RunOutcome:
    """Final metrics, the output files by name, and the log lines of the run."""

    metrics: dict[str, Any]
    outputs: dict[str, bytes]
    log: list[str] = field(default_factory=list)
    result: TrainResult | None = None
    onnx_max_abs_diff: float | None = None

    @property
    def kinds(self) -> dict[str, str]:
        return {name: output_kind(name) for name in self.outputs}


def prepare_splits(
    pipeline: Pipeline, trees: Mapping[str, FileTree], max_samples: int | None = None
) -> Splits:
    """Load, join and split the pipeline's data; ``max_samples`` keeps the first N (quick runs)."""
    if max_samples is None:
        return load_splits(pipeline.datasets, pipeline.join, pipeline.split, trees)
    missing = [d.id for d in pipeline.datasets if d.id not in trees]
    if missing:
        raise DataError(f"no files given for dataset {missing[0]!r}")
    loaded = [load_dataset(d, trees[d.id]) for d in pipeline.datasets]
    joined = join_datasets(loaded, pipeline.join)
    if len(joined) > max_samples:
        joined = joined.subset(np.arange(max_samples))
    return split_dataset(joined, pipeline.split)


def run_pipeline(
    pipeline: Pipeline,
    dataset_trees: Mapping[str, FileTree],
    model_tree: FileTree,
    *,
    sink: OutputSink | None = None,
    on_event: EventCallback | None = None,
    trainer_factory: TrainerFactory | None = None,
    device: str | None = None,
    max_samples: int | None = None,
    splits: Splits | None = None,
) -> RunOutcome:
    """Train and evaluate ``pipeline``; every output is also written to ``sink`` as it appears.

    A pipeline with ``privacy`` must be given the DP trainer as ``trainer_factory``: the
    plain trainer refuses it, so no non-private model is ever made from private data.
    ``splits`` (the providers' declared splits, in the room) replaces the pipeline's split.
    """
    if pipeline.privacy is not None and trainer_factory is None:
        raise PrivacyError("pipeline sets privacy but no differentially private trainer was given")
    if pipeline.train.num_threads:
        torch.set_num_threads(pipeline.train.num_threads)
    if splits is None:
        splits = prepare_splits(pipeline, dataset_trees, max_samples)
    torch.manual_seed(pipeline.train.seed)  # initial weights of declarative/architecture models
    model = build_model(pipeline.model, model_tree)
    if pipeline.eval.class_names is not None and len(splits.train):
        check_class_names(pipeline.eval.class_names, model_classes(model, splits.train.x[0]))
    out = sink if sink is not None else MemorySink()
    write_checkpoint: CheckpointSink = out.write
    factory = trainer_factory or Trainer
    trainer = factory(pipeline, model, splits, device, on_event, write_checkpoint)
    result = trainer.fit()

    split = "test" if len(splits.test) else "val" if len(splits.val) else "train"
    names = list(pipeline.eval.metrics)
    exact = trainer.releases_exact_statistics
    classification = pipeline.eval.task == "classification"
    class_report = classification and wants_class_report(names, exact)
    # Exact runs draw and report the matrix from the same pass as the metrics; a private
    # run has it only where the consumer asked for it (a noisy, charged release).
    extra = exact and classification and "confusion_matrix" not in names
    extra = extra and (class_report or pipeline.eval.plots)
    metrics: dict[str, Any] = {}
    if trainer.can_evaluate():
        metrics = trainer.evaluate(split, [*names, "confusion_matrix"] if extra else names)
    matrix = metrics.pop("confusion_matrix", None) if extra else metrics.get("confusion_matrix")
    name = {"test": "Test", "val": "Validation", "train": "Training"}[split]
    for key, value in metrics.items():
        if isinstance(value, float):
            trainer.log(f"{name} {key}: {value:.4f}")

    final = trainer.plain_model()
    outputs: dict[str, bytes] = {}
    check = _onnx_check_batch(pipeline, splits, split, trainer.releases_exact_statistics)
    exported = export_onnx(final, pipeline.model.input_shape, check_batch=check)
    trainer.log(f"ONNX export checked with onnxruntime: max abs diff {exported.max_abs_diff:.2e}")
    outputs["trained_model.onnx"] = exported.data
    outputs["trained_model.safetensors"] = export_safetensors(
        final, metadata={"pipeline": pipeline.name}
    )
    classes: dict[str, Any] = {}
    if classification and matrix:
        labels = class_labels(pipeline.eval.class_names, splits.train.classes, len(matrix))
        classes["class_names"] = labels
        if class_report:
            classes["per_class"] = per_class(matrix, labels, per_class_fields(names))
        if "confusion_matrix" in names:
            classes["confusion_matrix"] = {"labels": labels, "matrix": matrix}
    elif classification and pipeline.eval.class_names is not None:
        classes["class_names"] = list(pipeline.eval.class_names)
    if pipeline.eval.plots:
        outputs.update(_plots(pipeline, trainer, result, matrix, classes, splits, split))
    outputs.update(trainer.extra_outputs())
    report = {
        "pipeline": pipeline.name,
        "pipeline_digest": pipeline_digest(pipeline),
        "task": pipeline.eval.task,
        "split": split,
        "samples": result.samples,
        "metrics": metrics,
        "history": [_history_entry(record) for record in result.history],
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "checkpoint": pipeline.train.checkpoint,
        "weights_epoch": result.weights_epoch,
        **classes,
        "steps": result.steps,
        "fit_seconds": round(result.fit_seconds, 3),
        "onnx_max_abs_diff": exported.max_abs_diff,
    }
    outputs["metrics.json"] = json.dumps(report, indent=2, sort_keys=True).encode()
    outputs["training_log.txt"] = ("\n".join(trainer.lines) + "\n").encode()
    for file_name, data in outputs.items():
        out.write(file_name, data)
    return RunOutcome(metrics, outputs, list(trainer.lines), result, exported.max_abs_diff)


def _onnx_check_batch(pipeline: Pipeline, splits: Splits, split: str, exact: bool) -> torch.Tensor:
    """Eight records to compare PyTorch and onnxruntime on; synthetic under privacy.

    The released ``onnx_max_abs_diff`` is computed from these inputs, so under privacy they
    must not be private records: seeded uniform values of ``input_shape`` in the data's
    dtype (zeros for integer data) instead.
    """
    data = splits.parts()[split].x
    if exact:
        return torch.from_numpy(np.ascontiguousarray(data[:8]))
    shape = (8, *pipeline.model.input_shape)
    dtype = torch.from_numpy(np.zeros(1, dtype=data.dtype)).dtype
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=generator, dtype=torch.float32).to(dtype)


def _history_entry(record: EpochRecord) -> dict[str, Any]:
    """One epoch in ``metrics.json``: counters, and the train / val statistics released."""
    entry: dict[str, Any] = {
        "epoch": record.epoch,
        "seconds": record.seconds,
        "steps": record.steps,
    }
    for part, values in (("train", record.train), ("val", record.val)):
        if values:
            entry[part] = dict(values)
    return entry


def _plots(
    pipeline: Pipeline,
    trainer: Trainer,
    result: TrainResult,
    matrix: list[list[int]] | None,
    classes: Mapping[str, Any],
    splits: Splits,
    split: str,
) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    if any(record.train or record.val for record in result.history):
        plots["training_curves.png"] = training_curves_png(result.history, result.best_epoch)
    task = pipeline.eval.task
    exact = trainer.releases_exact_statistics  # else: only what evaluate released, noisy
    if task == "classification":
        if matrix:
            plots["confusion_matrix.png"] = confusion_matrix_png(matrix, classes["class_names"])
        if classes.get("per_class"):
            plots["per_class.png"] = per_class_png(classes["per_class"])
    elif task == "segmentation" and pipeline.eval.samples and exact:
        data = splits.parts()[split]
        count = min(pipeline.eval.samples, len(data))
        plots["segmentation_samples.png"] = _overlays(trainer.plain_model(), data, count, pipeline)
    return plots


def _overlays(model: nn.Module, data: ArrayDataset, count: int, pipeline: Pipeline) -> bytes:
    x = torch.from_numpy(np.ascontiguousarray(data.x[:count]))
    y = torch.from_numpy(np.ascontiguousarray(data.y[:count]))
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        output = model(x.to(device)).cpu()
    pred, true = binary_masks(output, y, pipeline.eval.threshold)
    # Foreground: the last channel of one-hot masks, the only channel of binary ones.
    return segmentation_overlays_png(data.x[:count], true[:, -1].numpy(), pred[:, -1].numpy())
