"""The training loop: seeded, lean per batch, with hooks a wrapper (DP) overrides instead of flags.

Per-batch work is one gather of in-memory tensors, forward, backward and step; the
loss (and the step log's score) is summed on tensors and read back once per log line
or epoch, and progress events are throttled in time. A subclass replaces
``make_optimizer`` / ``make_train_loader`` / ``setup`` / ``after_step`` (Opacus wraps
model, optimizer and loader in ``setup``) without any ``if private:`` branch here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import TensorDataset

from sealroom.data import Splits
from sealroom.errors import TrainingError
from sealroom.pipeline.schema import Pipeline
from sealroom.train.components.losses import build_loss
from sealroom.train.components.optimizers import build_optimizer
from sealroom.train.components.schedulers import Scheduled, build_scheduler
from sealroom.train.epochs import (
    Curve,
    EpochMonitor,
    EpochRecord,
    TrainCurves,
    TrainResult,
    scalar_metrics,
)
from sealroom.train.metrics import MetricContext, evaluate
from sealroom.train.steplog import StepLog

EventKind = Literal["log", "epoch", "batch", "checkpoint"]
PROGRESS_INTERVAL_S = 0.2  # at most five batch events a second: rich redraws are not free
EVAL_BATCH = 1024


@dataclass(frozen=True)
class TrainEvent:
    """Progress the room or the CLI may forward: a log line, an epoch or batch update."""

    kind: EventKind
    message: str = ""
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    step: int = 0
    values: Mapping[str, float] = field(default_factory=dict)


EventCallback = Callable[[TrainEvent], None]
CheckpointSink = Callable[[str, bytes], None]


class TensorBatches:
    """Mini-batches of in-memory tensors: one index gather per batch, no per-sample Python."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n, bs = len(self.x), self.batch_size
        if not self.shuffle:
            for start in range(0, n, bs):
                yield self.x[start : start + bs], self.y[start : start + bs]
            return
        order = torch.randperm(n, generator=self.generator).to(self.x.device)
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def _tensor(array: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


class Trainer:
    """Fits ``model`` on ``splits.train`` as ``pipeline.train`` says; see the module docstring."""

    # Whether outputs may carry exact statistics of the data (a DP trainer: no; run_pipeline
    # then makes no plot or check from records beyond what ``evaluate`` released).
    releases_exact_statistics = True

    def __init__(
        self,
        pipeline: Pipeline,
        model: nn.Module,
        splits: Splits,
        device: torch.device | str | None = None,
        on_event: EventCallback | None = None,
        checkpoint_sink: CheckpointSink | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.cfg = pipeline.train
        self.device = torch.device(device) if device else resolve_device(self.cfg.device)
        self.model = model.to(self.device)
        self.splits = splits
        self.on_event = on_event
        self.checkpoint_sink = checkpoint_sink
        self.loss_fn = self.make_loss().to(self.device)
        self.metric_ctx = MetricContext(pipeline.eval.task, pipeline.eval.threshold)
        self.tensors = {
            name: (_tensor(part.x, self.device), _tensor(part.y, self.device))
            for name, part in splits.parts().items()
        }
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.optimizer: Optimizer | None = None
        self.scheduler: Scheduled | None = None
        self.train_loader: Iterable[tuple[Tensor, Tensor]] = ()
        self.step = 0
        self.lines: list[str] = []
        # The last batch's detached output, for the step log's score; a subclass whose
        # train_step does not set it gets loss-only step lines.
        self.last_output: Tensor | None = None

    # ------------------------------------------------------------------ hooks

    def train_dataset(self) -> TensorDataset:
        """The training split as a TensorDataset (what Opacus' DPDataLoader samples from)."""
        return TensorDataset(*self.tensors["train"])

    def make_loss(self) -> nn.Module:
        """The training loss (a scalar per batch); called once, from ``__init__``."""
        return build_loss(self.pipeline.loss)

    def make_optimizer(self) -> Optimizer:
        return build_optimizer(self.cfg.optimizer, self.model.parameters(), "train.optimizer")

    def make_train_loader(self) -> Iterable[tuple[Tensor, Tensor]]:
        x, y = self.tensors["train"]
        return TensorBatches(x, y, self.cfg.batch_size, shuffle=True, generator=self.generator)

    def make_scheduler(self, optimizer: Optimizer, steps_per_epoch: int) -> Scheduled | None:
        if self.cfg.scheduler is None:
            return None
        return build_scheduler(
            self.cfg.scheduler, optimizer, self.cfg.epochs, steps_per_epoch, "train.scheduler"
        )

    def setup(self) -> None:
        """Build optimizer, loader and scheduler; a DP subclass wraps them here (super first)."""
        self.optimizer = self.make_optimizer()
        self.train_loader = self.make_train_loader()
        steps = len(self.train_loader) if isinstance(self.train_loader, Sized) else 1
        self.scheduler = self.make_scheduler(self.optimizer, max(1, steps))

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimisation step; returns the detached batch loss."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        output = self.model(x)
        loss = self.loss_fn(output, y)
        loss.backward()
        self.optimizer.step()
        self.last_output = output.detach()
        return loss.detach()

    def after_step(self) -> None:
        """Called after every optimisation step (``self.step`` already counts it)."""

    def make_step_log(self) -> StepLog | None:
        """The per-step log of training-batch statistics; None releases no such lines (DP)."""
        return StepLog(self.metric_ctx.task, self.metric_ctx.threshold, self.device)

    def make_train_curves(self) -> TrainCurves | None:
        """Per-epoch training-split metrics from the training batches; None releases none (DP)."""
        return TrainCurves(self.pipeline.eval.metrics, self.metric_ctx)

    def validation_names(self) -> list[str]:
        """The metrics evaluated on the validation split after each epoch."""
        return scalar_metrics(["loss", *self.pipeline.eval.metrics])

    def validation_statistics(self) -> Curve:
        """This epoch's validation metrics, or none (``eval.per_epoch``, an empty split)."""
        if not self.pipeline.validates_each_epoch() or not len(self.splits.val):
            return {}
        values = self.evaluate("val", self.validation_names())
        return {k: float(v) if isinstance(v, int | float) else None for k, v in values.items()}

    def epoch_statistics(
        self, epoch: int, loss_sum: Tensor, seen: int, curves: TrainCurves | None
    ) -> tuple[Curve, Curve]:
        """``(train, val)`` statistics of the epoch by metric; refuses a diverged run.

        A DP trainer overrides this to release no training statistic (they are exact
        statistics of private records) and validation ones only as charged releases.
        """
        train_loss = float(loss_sum) / max(seen, 1)
        if not np.isfinite(train_loss):
            raise TrainingError(f"epoch {epoch}: training loss is {train_loss} (diverged)")
        train: Curve = {"loss": train_loss, **(curves.compute() if curves is not None else {})}
        return train, self.validation_statistics()

    def epoch_event_values(self, record: EpochRecord) -> dict[str, float]:
        """What the epoch's progress event carries (a DP trainer: nothing)."""
        return record.values()

    def after_epoch(self, record: EpochRecord) -> None:
        """Called after each epoch's validation."""

    def plain_model(self) -> nn.Module:
        """The model to evaluate and export (a DP wrapper returns the module it wraps)."""
        return self.model

    def extra_outputs(self) -> dict[str, bytes]:
        """Further files a subclass releases (e.g. a privacy report)."""
        return {}

    # ------------------------------------------------------------------ running

    def log(self, message: str) -> None:
        self.lines.append(message)
        self.emit(TrainEvent("log", message=message))

    def emit(self, event: TrainEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def batches(self, split: str) -> TensorBatches:
        x, y = self.tensors[split]
        return TensorBatches(x, y, max(EVAL_BATCH, self.cfg.batch_size))

    def can_evaluate(self) -> bool:
        """Whether ``evaluate`` may release metrics now (a DP trainer: releases left)."""
        return True

    def evaluate(self, split: str, names: list[str] | None = None) -> dict[str, Any]:
        """Metrics on ``split`` (default: the pipeline's eval metrics)."""
        metric_names = names if names is not None else list(self.pipeline.eval.metrics)
        return evaluate(
            self.plain_model(), self.batches(split), self.loss_fn, metric_names, self.metric_ctx
        )

    def checkpoint(self) -> None:
        if self.checkpoint_sink is None:
            return
        state = {
            k: v.detach().cpu().contiguous() for k, v in self.plain_model().state_dict().items()
        }
        name = f"checkpoints/step-{self.step:07d}.safetensors"
        self.checkpoint_sink(name, save_safetensors(state, metadata={"step": str(self.step)}))
        self.emit(TrainEvent("checkpoint", message=name, step=self.step))

    def fit(self) -> TrainResult:
        """Train for ``epochs``; logs sample counts and one line per epoch."""
        sizes = self.splits.sizes()
        if sizes["train"] == 0:
            raise TrainingError("split: the training split is empty")
        self.log(f"Training samples: {sizes['train']}")
        self.log(f"Validation samples: {sizes['val']}")
        self.log(f"Test samples: {sizes['test']}")
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        torch.manual_seed(self.cfg.seed)
        deterministic = torch.are_deterministic_algorithms_enabled()
        fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also NaN-fills every new tensor, a debugging aid that costs a
        # pass over each allocation; a correct program never reads that memory.
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        monitor = self.make_monitor()
        started, cpu_started = time.perf_counter(), time.process_time()
        history: list[EpochRecord] = []
        stopped = False
        try:
            self.setup()
            for epoch in range(1, self.cfg.epochs + 1):
                history.append(self._epoch(epoch))
                if monitor is None:
                    continue
                if monitor.observe(epoch, history[-1].val, self.plain_model()):
                    stopped = epoch < self.cfg.epochs
                    break
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        result = TrainResult(history, self.step, wall, sizes, cpu, weights_epoch=len(history))
        if monitor is not None:
            self._finish(monitor, result, stopped)
        return result

    def make_monitor(self) -> EpochMonitor | None:
        """Best-epoch tracker for early stopping and ``checkpoint: best``; needs a val split."""
        stopping, best = self.cfg.early_stopping, self.cfg.checkpoint == "best"
        if stopping is None and not best:
            return None
        if not len(self.splits.val):
            what = "train.early_stopping" if stopping is not None else "train.checkpoint: best"
            raise TrainingError(f"{what}: the validation split is empty; give split.val > 0")
        metric = stopping.metric if stopping is not None else "loss"
        return EpochMonitor(stopping, metric, keep_weights=best)

    def _finish(self, monitor: EpochMonitor, result: TrainResult, stopped: bool) -> None:
        """Log the best epoch and early stop; restore the best weights for ``checkpoint: best``."""
        result.best_epoch, result.stopped_early = monitor.best_epoch, stopped
        stopping = monitor.stopping
        if stopped and stopping is not None:
            self.log(
                f"Early stopping: no val {monitor.metric} improvement over {stopping.min_delta:g} "
                f"in {stopping.patience} epochs; stopped after epoch {len(result.history)}"
            )
        if monitor.best_epoch is not None and monitor.best_value is not None:
            self.log(
                f"Best epoch: {monitor.best_epoch} | Val {monitor.metric}: {monitor.best_value:.4f}"
            )
        if self.cfg.checkpoint == "best" and monitor.restore(self.plain_model()):
            assert monitor.best_epoch is not None
            result.weights_epoch = monitor.best_epoch
            self.log(
                f"Checkpoint best: testing and exporting the weights of epoch {monitor.best_epoch}"
            )

    def _epoch(self, epoch: int) -> EpochRecord:
        epochs, every, log_every = self.cfg.epochs, self.cfg.checkpoint_every, self.cfg.log_every
        loader = self.train_loader
        batches = len(loader) if isinstance(loader, Sized) else 0
        scheduled = self.scheduler
        per_batch = scheduled is not None and scheduled.interval == "batch"
        self.emit(TrainEvent("epoch", epoch=epoch, epochs=epochs, batches=batches))
        began = last = time.perf_counter()
        total = torch.zeros((), device=self.device)
        seen = 0
        steps = self.make_step_log()
        curves = self.make_train_curves()
        self.model.train()
        for i, (x, y) in enumerate(loader, start=1):
            loss = self.train_step(x, y)
            total.add_(loss, alpha=len(x))
            seen += len(x)
            self.step += 1
            if steps is not None:
                steps.update(loss, self.last_output, y)
                if self.step % log_every == 0:
                    self.log(steps.line(epoch, self.step))
            if curves is not None:
                curves.update(self.last_output, y, loss)
            self.last_output = None
            if per_batch:
                assert scheduled is not None
                scheduled.scheduler.step()
            self.after_step()
            if every and self.step % every == 0:
                self.checkpoint()
            now = time.perf_counter()
            if now - last >= PROGRESS_INTERVAL_S:
                last = now
                self.emit(TrainEvent("batch", epoch=epoch, epochs=epochs, batch=i, batches=batches))
        if scheduled is not None and not per_batch:
            scheduled.scheduler.step()
        train, val = self.epoch_statistics(epoch, total, seen, curves)
        record = EpochRecord(epoch, train, val, time.perf_counter() - began, self.step)
        self.log(record.line())
        self.emit(
            TrainEvent(
                "batch",
                epoch=epoch,
                epochs=epochs,
                batch=batches,
                batches=batches,
                values=self.epoch_event_values(record),
            )
        )
        self.after_epoch(record)
        return record
