"""`sealroom task train|predict|score`: the steps of a run as separate commands.

``train`` is ``sealroom train --local`` (DP-SGD when the pipeline has a privacy
section); ``predict`` runs an ONNX model (onnxruntime) over a dataset and writes the
outputs as ``.npy`` or ``.csv``; ``score`` turns predictions and labels into metrics
with the training metrics registry. Files are arrays, never pickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, progress, refusals
from sealroom.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

app = typer.Typer(help="Train, predict and score as separate steps.", no_args_is_help=True)

ARRAY_SUFFIXES = (".npy", ".csv")


@app.command()
def train(
    pipeline: Path = typer.Argument(..., help="Composed pipeline file, or a folder of parts."),
    out: Path = typer.Option(..., "--out", help="Folder for the model, metrics, privacy report."),
    data: list[str] = typer.Option([], "--data", help="Dataset folder as ID=DIR (repeatable)."),
    model_dir: Path = typer.Option(None, "--model-dir", help="Folder with the model files."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override train.epochs."),
    max_samples: int = typer.Option(None, "--max-samples", min=3, help="First N samples only."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train a pipeline on cleartext folders; DP-SGD when the pipeline asks for privacy.

    Example: sealroom task train scenarios/dp-mnist --data mnist=data/mnist --out runs/dp
    """
    from sealroom.cli.train import report_local, run_local

    with refusals():
        spec, outcome = run_local(pipeline, data, model_dir, epochs, max_samples, out, json_out)
    report_local(spec, outcome, out, json_out)


def _dataset(dataset: Path, data: Path | None, max_samples: int | None) -> Any:
    """Load the dataset a dataset part (or a folder holding ``dataset.yaml``) describes."""
    import numpy as np

    from sealroom.data import DirectoryTree, load_dataset
    from sealroom.pipeline.compose import load_part
    from sealroom.pipeline.schema import DatasetConfig

    part = dataset / "dataset.yaml" if dataset.is_dir() else dataset
    if not part.is_file():
        raise ConfigError(f"{part}: no dataset config found")
    cfg = load_part(part, DatasetConfig)
    assert isinstance(cfg, DatasetConfig)
    folder = data if data is not None else part.parent / "data" / cfg.id
    if not folder.is_dir():
        raise ConfigError(f"dataset {cfg.id!r}: folder {folder} not found (pass --data DIR)")
    loaded = load_dataset(cfg, DirectoryTree(folder))
    if max_samples is not None and len(loaded) > max_samples:
        loaded = loaded.subset(np.arange(max_samples))
    return loaded


def _write_array(path: Path, array: np.ndarray, prefix: str) -> None:
    import numpy as np

    if path.suffix not in ARRAY_SUFFIXES:
        raise ConfigError(f"{path}: write predictions as .npy or .csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array, allow_pickle=False)
        return
    flat = array.reshape(len(array), -1)
    header = ",".join(f"{prefix}_{i}" for i in range(flat.shape[1]))
    np.savetxt(path, flat, delimiter=",", header=header, comments="", fmt="%.8g")


def read_array(path: Path) -> np.ndarray:
    """A .npy (no pickles) or a .csv with one header row."""
    import numpy as np

    if path.suffix == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a plain .npy array ({exc})") from None
    if path.suffix == ".csv":
        try:
            return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"{path}: not a numeric CSV with one header row ({exc})") from None
    raise DataError(f"{path}: expected a .npy or .csv file")


@app.command()
def predict(
    model: Path = typer.Argument(..., help="ONNX model file."),
    dataset: Path = typer.Option(..., "--dataset", help="dataset.yaml, or a folder holding it."),
    out: Path = typer.Option(..., "--out", help="Predictions file: .npy or .csv."),
    data: Path = typer.Option(None, "--data", help="Data folder (default <folder>/data/<id>)."),
    labels_out: Path = typer.Option(None, "--labels-out", help="Also write the labels here."),
    batch_size: int = typer.Option(1024, "--batch-size", min=1),
    max_samples: int = typer.Option(None, "--max-samples", min=1, help="First N samples only."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run an ONNX model over a dataset with onnxruntime and write its outputs.

    Example: sealroom task predict runs/dp/trained_model.onnx --dataset scenarios/dp-mnist
    --data data/mnist --out preds.npy --labels-out labels.npy
    """
    import numpy as np

    with refusals():
        import onnxruntime as ort

        from sealroom.train.onnx_check import MAX_ONNX_BYTES, check_onnx

        if not model.is_file():
            raise ConfigError(f"{model}: model file not found")
        # Bytes, not the path: onnxruntime would resolve external data next to the file.
        # The model is checked as data first (no external tensors, bounded size).
        if model.stat().st_size > MAX_ONNX_BYTES:
            raise ConfigError(f"{model}: larger than {MAX_ONNX_BYTES:,} bytes")
        onnx_bytes = model.read_bytes()
        check_onnx(onnx_bytes, str(model), operators=False)
        try:
            session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"{model}: not a loadable ONNX model ({exc})") from None
        ds = _dataset(dataset, data, max_samples)
        name = session.get_inputs()[0].name
        outputs = []
        with progress(transient=True) as bars:
            task = bars.add_task("predicting", total=len(ds))
            for start in range(0, len(ds), batch_size):
                chunk = np.ascontiguousarray(ds.x[start : start + batch_size], dtype=np.float32)
                outputs.append(session.run(None, {name: chunk})[0])
                bars.update(task, advance=len(chunk))
        predictions = np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
        _write_array(out, predictions, "output")
        if labels_out is not None:
            _write_array(labels_out, np.asarray(ds.y), "label")
    summary = {
        "model": str(model),
        "dataset": ds.name,
        "samples": len(ds),
        "predictions": str(out),
        "shape": list(predictions.shape),
        "labels": str(labels_out) if labels_out else None,
    }
    if json_out:
        emit_json(summary)
    else:
        from sealroom.errors import plural

        n = plural(len(ds), "prediction")
        console.print(f"wrote {n} {list(predictions.shape)} to [bold]{out}[/]")


@app.command()
def score(
    predictions: Path = typer.Argument(..., help="Model outputs (.npy or .csv), as predict wrote."),
    labels: Path = typer.Option(None, "--labels", help="Labels (.npy or .csv)."),
    dataset: Path = typer.Option(None, "--dataset", help="Or: read labels from this dataset."),
    data: Path = typer.Option(None, "--data", help="Data folder for --dataset."),
    task: str = typer.Option(
        "classification", "--task", help="classification|regression|segmentation."
    ),
    metrics: str = typer.Option(
        "loss,accuracy,f1,precision,recall", "--metrics", help="Comma-separated."
    ),
    threshold: float = typer.Option(0.5, "--threshold", help="Binary decision threshold."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Compute metrics from predictions and labels with the training metrics registry.

    Example: sealroom task score preds.npy --labels labels.npy --metrics accuracy,f1 --json
    """
    import numpy as np

    with refusals():
        import torch

        from sealroom.train.metrics import MetricContext, build_metrics

        output = torch.from_numpy(read_array(predictions).astype(np.float32))
        if labels is not None:
            target_np = read_array(labels)
        elif dataset is not None:
            target_np = np.asarray(_dataset(dataset, data, len(output)).y)
        else:
            raise ConfigError("score: pass --labels FILE or --dataset CONFIG")
        if len(target_np) != len(output):
            raise DataError(f"{len(output)} predictions but {len(target_np)} labels")
        if task == "classification":
            target = torch.from_numpy(target_np.reshape(len(target_np)).astype(np.int64))
            loss = _classification_loss(output, target)
        else:
            target = torch.from_numpy(target_np.astype(np.float32)).reshape(output.shape)
            loss = torch.nn.functional.mse_loss(output, target)
        names = [m.strip() for m in metrics.split(",") if m.strip()]
        built = build_metrics(names, MetricContext(task, threshold))
        for metric in built.values():
            metric.update(output, target, loss)
        values = {name: metric.compute() for name, metric in built.items()}
    if json_out:
        emit_json({"samples": len(output), "task": task, "metrics": values})
        return
    for name, value in values.items():
        text = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        console.print(f"{name}: {text}", highlight=False)


def _classification_loss(output: Any, target: Any) -> Any:
    import torch.nn.functional as F

    if output.dim() == 1 or output.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(output.reshape(-1), target.float())
    return F.cross_entropy(output, target)
