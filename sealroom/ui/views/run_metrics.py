"""Released metrics from the decrypted ``metrics.json`` and ``privacy_report.json`` a viewer
holds (hash-checked against the receipt by :mod:`sealroom.ui.views.run_receipt`): the
final numbers, the per-epoch curves, the confusion matrix and the ε trajectory."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel

MAX_EPOCHS = 10_000
MAX_CLASSES = 100


class Curve(BaseModel):
    """One metric per epoch: a line per split (train, val)."""

    metric: str
    lines: dict[str, list[tuple[float, float]]]


class Confusion(BaseModel):
    labels: list[str]
    matrix: list[list[int]]


class Metrics(BaseModel):
    final: list[tuple[str, float]] = []  # the evaluation's numbers
    facts: list[tuple[str, str]] = []  # split, samples, epochs, steps...
    curves: list[Curve] = []
    confusion: Confusion | None = None
    epsilon_curve: list[tuple[float, float]] = []  # (step, ε) of a private run
    privacy: list[tuple[str, str]] = []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _load(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        loaded = json.loads(data)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def released_metrics(files: dict[str, bytes]) -> Metrics | None:
    """The metrics view of the decrypted files, or None when the viewer holds none."""
    doc = _load(files.get("metrics.json"))
    report = _load(files.get("privacy_report.json"))
    if not doc and not report:
        return None
    metrics = Metrics()
    values = doc.get("metrics")
    if isinstance(values, dict):
        numbers = {str(k): _number(v) for k, v in values.items()}
        metrics.final = [(k, v) for k, v in sorted(numbers.items()) if v is not None]
    for key in ("split", "task", "checkpoint", "weights_epoch", "steps", "fit_seconds"):
        if isinstance(doc.get(key), str | int | float) and not isinstance(doc.get(key), bool):
            metrics.facts.append((key, str(doc[key])))
    samples = doc.get("samples")
    if isinstance(samples, dict):
        for split, count in sorted(samples.items()):
            if _number(count) is not None:
                metrics.facts.append((f"{split} samples", str(count)))
    metrics.curves = _curves(doc.get("history"))
    metrics.confusion = _confusion(doc.get("confusion_matrix"))
    metrics.epsilon_curve, metrics.privacy = _privacy(report)
    return metrics


def _curves(history: Any) -> list[Curve]:
    if not isinstance(history, list):
        return []
    lines: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for entry in history[:MAX_EPOCHS]:
        if not isinstance(entry, dict) or _number(entry.get("epoch")) is None:
            continue
        epoch = float(entry["epoch"])
        for split in ("train", "val"):
            values = entry.get(split)
            if not isinstance(values, dict):
                continue
            for metric, value in values.items():
                number = _number(value)
                if number is not None:
                    lines.setdefault(str(metric), {}).setdefault(split, []).append((epoch, number))
    return [Curve(metric=m, lines=lines[m]) for m in sorted(lines)]


def _confusion(value: Any) -> Confusion | None:
    if not isinstance(value, dict):
        return None
    labels, matrix = value.get("labels"), value.get("matrix")
    if not isinstance(labels, list) or not isinstance(matrix, list):
        return None
    if not 0 < len(labels) <= MAX_CLASSES or len(matrix) != len(labels):
        return None
    rows: list[list[int]] = []
    for row in matrix:
        if not isinstance(row, list) or len(row) != len(labels):
            return None
        cells = [_number(c) for c in row]
        if any(c is None for c in cells):
            return None
        rows.append([round(c) for c in cells if c is not None])
    return Confusion(labels=[str(label) for label in labels], matrix=rows)


def _privacy(report: dict[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[str, str]]]:
    curve: list[tuple[float, float]] = []
    trajectory = report.get("epsilon_trajectory")
    if isinstance(trajectory, list):
        for point in trajectory[:MAX_EPOCHS]:
            if isinstance(point, list) and len(point) == 2:
                x, y = _number(point[0]), _number(point[1])
                if x is not None and y is not None:
                    curve.append((x, y))
    facts = []
    for key in (
        "epsilon_spent",
        "epsilon_target",
        "delta",
        "noise_multiplier",
        "accountant",
        "sampling",
        "batch_size",
        "epochs",
        "max_grad_norm",
    ):
        value = report.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            facts.append((key, f"{value:.4g}" if isinstance(value, float) else str(value)))
    return curve, facts
