"""PNG plots of a run: confusion matrix, per-class bars, training curves, segmentation overlays.

Figures are built on matplotlib's Agg canvas directly (no pyplot global state), so
plotting is safe in a headless room and in threads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sealroom.train.epochs import EpochRecord


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], classes: Sequence[str] | None) -> bytes:
    """Counts per (true, predicted) class with the numbers written in the cells."""
    return _png(confusion_matrix_figure(matrix, classes))


def confusion_matrix_figure(
    matrix: Sequence[Sequence[int]], classes: Sequence[str] | None
) -> Figure:
    """The confusion matrix with class-name axis labels (ids where no names fit)."""
    counts = np.asarray(matrix, dtype=np.int64)
    n = counts.shape[0]
    labels = (
        list(classes) if classes is not None and len(classes) == n else [str(i) for i in range(n)]
    )
    size = max(4.0, 0.5 * n + 2)
    figure = Figure(figsize=(size, size))
    ax = figure.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title("Confusion matrix")
    if n <= 30:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(n):
            for j in range(n):
                colour = "white" if counts[i, j] > threshold else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    return figure


def training_curves_png(history: Sequence[EpochRecord], best_epoch: int | None = None) -> bytes:
    """One panel per metric, train and validation per epoch (see ``training_curves_figure``)."""
    return _png(training_curves_figure(history, best_epoch))


def training_curves_figure(history: Sequence[EpochRecord], best_epoch: int | None = None) -> Figure:
    """One panel per metric: its train and validation values per epoch (integer epoch ticks).

    Epochs without a released value are skipped; ``best_epoch`` is marked with a dashed line.
    """
    names = list(dict.fromkeys(k for r in history for k in (*r.train, *r.val)))
    cols = min(3, max(len(names), 1))
    rows = max(1, math.ceil(len(names) / cols))
    figure = Figure(figsize=(4.2 * cols, 3.2 * rows))
    for i, name in enumerate(names):
        ax = figure.add_subplot(rows, cols, i + 1)
        for part, label in (("train", "train"), ("val", "validation")):
            points = [
                (r.epoch, v) for r in history if (v := getattr(r, part).get(name)) is not None
            ]
            if points:
                ax.plot([e for e, _ in points], [v for _, v in points], marker="o", label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="best epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Epoch")
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle("Training curves")
    figure.tight_layout()
    return figure


def per_class_png(report: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Precision, recall and F1 of each class (those reported) as grouped bars, by class name."""
    return _png(per_class_figure(report))


def per_class_figure(report: Mapping[str, Mapping[str, Any]]) -> Figure:
    """The bars of ``per_class_png``: one group per class, labelled with its name."""
    labels = list(report)
    n = len(labels)
    figure = Figure(figsize=(max(6.0, 0.6 * n * 1.5 + 2), 4))
    ax = figure.add_subplot()
    x = np.arange(n)
    width = 0.27
    keys = [k for k in ("precision", "recall", "f1") if any(k in r for r in report.values())]
    for k, key in enumerate(keys):
        values = [float(report[label].get(key, 0.0)) for label in labels]
        ax.bar(x + (k - (len(keys) - 1) / 2) * width, values, width, label=key)
    ax.set_xticks(x, labels, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_ylim(0, 1.2)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("Class")
    ax.set_ylabel("Score")
    ax.set_title("Per-class precision, recall and F1")
    ax.legend(fontsize=8, loc="upper center", ncols=3)
    ax.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def segmentation_overlays_png(
    images: np.ndarray, true_masks: np.ndarray, pred_masks: np.ndarray
) -> bytes:
    """One row per sample: the slice, the true mask over it, the predicted mask over it."""
    n = len(images)
    figure = Figure(figsize=(9, 3 * max(n, 1)))
    for row in range(n):
        image = _plane(images[row])
        panels = (
            ("Slice", None),
            ("True mask", true_masks[row]),
            ("Predicted mask", pred_masks[row]),
        )
        for col, (title, mask) in enumerate(panels):
            ax = figure.add_subplot(n, 3, row * 3 + col + 1)
            ax.imshow(image, cmap="gray")
            if mask is not None:
                plane = _plane(mask)
                ax.imshow(np.ma.masked_where(plane <= 0.5, plane), cmap="autumn", alpha=0.5)
            ax.set_title(title)
            ax.axis("off")
    figure.tight_layout()
    return _png(figure)


def _plane(array: np.ndarray) -> np.ndarray:
    """A 2-D plane of a ``[C, H, W]`` sample: its first channel (e.g. one MRI modality)."""
    while array.ndim > 2:
        array = array[0]
    return array
