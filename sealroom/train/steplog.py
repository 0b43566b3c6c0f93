"""Per-step training log lines, the way clean-room users read them.

``Epoch: 1 | Step: 50 | Train loss: 0.342 | Dice score: 0.823``: the loss and the
task's score averaged over the batches since the previous line. Both are summed on
tensors where the batch lives and read back once per line, so the loop does not wait
on the device every batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sealroom.train.metrics import binary_masks, class_predictions

SCORE_NAMES = {"classification": "Accuracy", "segmentation": "Dice score"}


def batch_score(output: Tensor, target: Tensor, task: str, threshold: float) -> tuple[Tensor, Any]:
    """Sum of the per-sample score and how many samples count (a tensor or an int).

    Classification: correct predictions. Segmentation: Dice per sample and channel,
    skipping those whose true mask is empty (undefined, as MONAI's ``ignore_empty``).
    No step here reads a value back to the host (no boolean indexing).
    """
    if task == "classification":
        correct = class_predictions(output, threshold) == target.reshape(len(output))
        return correct.sum(), len(output)
    pred, true = binary_masks(output, target, threshold)
    dims = tuple(range(2, pred.dim()))
    overlap = (pred * true).sum(dims)
    size = true.sum(dims)
    valid = size > 0
    dice = 2 * overlap / (pred.sum(dims) + size).clamp(min=1e-8)
    return (dice * valid).sum(), valid.sum()


class StepLog:
    """Accumulates loss and score between log lines; ``line`` formats and resets."""

    def __init__(self, task: str, threshold: float, device: torch.device) -> None:
        self.task, self.threshold = task, threshold
        self.score_name = SCORE_NAMES.get(task)
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.score = torch.zeros((), dtype=torch.float64, device=device)
        self.scored: Any = 0  # an int, or a tensor once a count comes as one
        self.samples = 0

    def update(self, loss: Tensor, output: Tensor | None, target: Tensor) -> None:
        """Add one batch; ``output`` may be None (a trainer that does not expose it)."""
        self.loss.add_(loss, alpha=len(target))
        self.samples += len(target)
        if output is not None and self.score_name is not None:
            total, count = batch_score(output, target, self.task, self.threshold)
            self.score.add_(total)
            self.scored = self.scored + count

    def line(self, epoch: int, step: int) -> str:
        loss = float(self.loss) / max(self.samples, 1)
        text = f"Epoch: {epoch} | Step: {step} | Train loss: {loss:.3f}"
        scored = float(self.scored)
        if self.score_name is not None and scored > 0:
            text += f" | {self.score_name}: {float(self.score) / scored:.3f}"
        self.loss.zero_()
        self.score.zero_()
        self.scored = self.samples = 0
        return text
