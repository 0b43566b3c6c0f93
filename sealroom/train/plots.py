"""PNG plots of a run: confusion matrix, training curves, segmentation overlays.

Figures are built on matplotlib's Agg canvas directly (no pyplot global state), so
plotting is safe in a headless room and in threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sealroom.train.loop import EpochRecord


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], classes: Sequence[str] | None) -> bytes:
    """Counts per (true, predicted) class with the numbers written in the cells."""
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
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("Confusion matrix")
    if n <= 30:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(n):
            for j in range(n):
                colour = "white" if counts[i, j] > threshold else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    return _png(figure)


def training_curves_png(history: Sequence[EpochRecord]) -> bytes:
    """Training and validation loss per epoch (epochs without a released loss are skipped)."""
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    train = [(r.epoch, r.train_loss) for r in history if r.train_loss is not None]
    ax.plot([e for e, _ in train], [v for _, v in train], marker="o", label="train")
    val = [(r.epoch, r.val_loss) for r in history if r.val_loss is not None]
    if val:
        ax.plot([e for e, _ in val], [v for _, v in val], marker="o", label="validation")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss")
    ax.set_title("Training curves")
    ax.legend()
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


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
