"""DPTrainer: the training loop with DP-SGD (Opacus), wrapped around the plain Trainer.

It overrides hooks only (``setup``, ``make_train_loader``, ``train_step``, ``after_step``,
``after_epoch``, ``plain_model``, ``extra_outputs``): per-sample gradients from Opacus'
grad-sample modules (hooks, functorch, expanded weights or ghost clipping) or sealroom's
fused clipping (:mod:`sealroom.privacy.fused`), flat clipping to
``max_grad_norm``, Gaussian noise from :mod:`sealroom.privacy.noise`, Poisson sampling over
the in-memory training tensors, and the accountant the pipeline names. The sampler hands
out at most ``plan.max_steps`` batches, so training stops before the accountant would pass
the reserved ε; a failed run can still report what it spent (``spent_epsilon``).

Nothing computed from private records leaves unnoised: no training loss or accuracy, no
step-log line, no train curve (log, events, history and plots carry counters and ε only).
``evaluate`` releases metrics through the Gaussian mechanism of
:mod:`sealroom.privacy.evaluation`, composed into the same history as the training steps.
Per-epoch validation (``eval.per_epoch``, early stopping, ``checkpoint: best``) is one such
release per epoch, planned in ``privacy.eval_releases`` and charged to ε like the test one;
early stopping and the best epoch are post-processing of those noisy values.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from opacus.accountants import create_accountant
from opacus.grad_sample.utils import wrap_model
from opacus.optimizers import DPOptimizer
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from torch import Tensor, nn

from sealroom.data import Splits
from sealroom.data.transforms import check_record_local
from sealroom.errors import PrivacyError, TrainingError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.calibrate import (
    SAMPLING_ACCOUNTING,
    PrivacyPlan,
    check_delta,
    epsilon_of,
    plan_privacy,
)
from sealroom.privacy.compat import make_private_compatible
from sealroom.privacy.evaluation import EvaluationRelease, check_private_metrics, release_evaluation
from sealroom.privacy.fused import FusedClipper
from sealroom.privacy.independence import check_record_independence
from sealroom.privacy.noise import NoiseSource, SecureRandom
from sealroom.privacy.optimizers import (
    SourcedDPOptimizer,
    SourcedFusedDPOptimizer,
    SourcedGhostDPOptimizer,
)
from sealroom.privacy.report import privacy_report
from sealroom.privacy.sampling import LimitedBatches, PoissonBatches, StepAllowance
from sealroom.train.components.composite import CompositeLoss
from sealroom.train.epochs import Curve, TrainCurves, scalar_metrics
from sealroom.train.loop import (
    CheckpointSink,
    EpochRecord,
    EventCallback,
    TensorBatches,
    Trainer,
    TrainResult,
)
from sealroom.train.steplog import StepLog


class DPTrainer(Trainer):
    """Trains a private pipeline with DP-SGD: ``run_pipeline(..., trainer_factory=DPTrainer)``."""

    releases_exact_statistics = False

    def __init__(
        self,
        pipeline: Pipeline,
        model: nn.Module,
        splits: Splits,
        device: torch.device | str | None = None,
        on_event: EventCallback | None = None,
        checkpoint_sink: CheckpointSink | None = None,
        *,
        noise: NoiseSource | None = None,
    ) -> None:
        if pipeline.privacy is None:
            raise PrivacyError(
                "pipeline: no privacy section; DPTrainer trains private pipelines only"
            )
        self.privacy = pipeline.privacy
        check_delta(self.privacy.delta, len(splits.train))
        self._check_epoch_releases(pipeline, splits)
        check_private_metrics(pipeline.eval.task, pipeline.eval.metrics, where="eval.metrics")
        for i, dataset in enumerate(pipeline.datasets):
            check_record_local(dataset.transforms, where=f"datasets[{i}].transforms")
        model, fixes = make_private_compatible(model)
        check_record_independence(model, pipeline.model.input_shape, where="model")
        super().__init__(pipeline, model, splits, device, on_event, checkpoint_sink)
        self.layer_fixes = fixes
        for message in fixes:
            self.log(message)
        self.noise: NoiseSource = noise if noise is not None else SecureRandom()
        self.plan: PrivacyPlan = plan_privacy(
            self.privacy, len(splits.train), self.cfg.batch_size, self.cfg.epochs
        )
        self.allowance = StepAllowance(self.plan.max_steps)
        self.accountant = create_accountant(mechanism=self.plan.accountant)
        self.trajectory: list[tuple[int, float]] = [(0, 0.0)]
        self.criterion: Any = self.loss_fn
        self.base_model = self.model
        self.clipper: FusedClipper | None = None
        self.releases: list[EvaluationRelease] = []
        self._announce()

    def _announce(self) -> None:
        p = self.plan
        source = "calibrated to" if p.calibrated else "given; target"
        self.log(
            f"DP-SGD: n={p.n_train}, batch size={p.batch_size} (Poisson rate {p.sample_rate:.5f}), "
            f"noise multiplier={p.noise_multiplier:.4f} ({source} ε {p.epsilon_target:g}), "
            f"epochs={p.epochs}, clip norm={p.max_grad_norm:g}, accountant={p.accountant}"
        )
        self.log(
            f"DP-SGD: projected ε={p.epsilon:.3f} at δ={p.delta:g} "
            f"after {min(p.steps, p.max_steps)} steps"
        )
        self.log(f"DP-SGD: sampling={p.sampling}, accounted as {SAMPLING_ACCOUNTING[p.sampling]}")
        if p.eval_releases:
            self.log(
                f"DP-SGD: ε includes {p.eval_releases} evaluation release(s), Gaussian noise "
                f"multiplier {p.eval_noise_multiplier:g} (training alone: ε="
                f"{p.epsilon_training:.3f}); no training statistic is released"
            )
        if p.max_steps < p.steps:
            self.log(
                f"DP-SGD: the budget allows {p.max_steps} of the {p.steps} planned steps; "
                "training will stop there"
            )

    def _check_epoch_releases(self, pipeline: Pipeline, splits: Splits) -> None:
        """Refuse, before training, per-epoch validation the plan has no releases for."""
        if not pipeline.validates_each_epoch():
            return
        epochs = pipeline.train.epochs
        needed = epochs + 1  # one validation release per epoch, then the test one
        if not len(splits.val):
            raise PrivacyError(
                "eval.per_epoch / early stopping / checkpoint best under privacy: the "
                "validation split is empty"
            )
        if self.privacy.eval_releases < needed:
            raise PrivacyError(
                f"privacy.eval_releases: {self.privacy.eval_releases} planned, but validating "
                f"each of {epochs} epochs and testing needs {needed} noisy releases "
                "charged to ε; raise it or drop per-epoch validation"
            )

    def fit(self) -> TrainResult:
        try:
            return super().fit()
        finally:
            if self.clipper is not None:
                self.clipper.close()  # the released model carries no clipping hooks

    # ------------------------------------------------------------------ hooks

    def make_train_loader(self) -> Iterable[tuple[Tensor, Tensor]]:
        x, y = self.tensors["train"]
        steps_per_epoch = round(1.0 / self.plan.sample_rate)
        if self.privacy.poisson_sampling:
            return PoissonBatches(
                x, y, self.plan.sample_rate, steps_per_epoch, self.noise, self.allowance
            )
        shuffled = TensorBatches(x, y, self.cfg.batch_size, shuffle=True, generator=self.generator)
        return LimitedBatches(shuffled, self.allowance)

    def setup(self) -> None:
        super().setup()  # base optimizer, the sampler above, scheduler on the base optimizer
        assert self.optimizer is not None
        mode = self.privacy.grad_sample_mode
        ghost = mode == "ghost"
        settings: dict[str, Any] = {
            "noise_multiplier": self.plan.noise_multiplier,
            "max_grad_norm": self.plan.max_grad_norm,
            "expected_batch_size": max(1, int(self.plan.expected_batch_size)),
            "loss_reduction": "mean",
        }
        optimizer: SourcedDPOptimizer | SourcedGhostDPOptimizer | SourcedFusedDPOptimizer
        if mode == "fused":
            self.clipper = FusedClipper(self.base_model)
            optimizer = SourcedFusedDPOptimizer(self.optimizer, clipper=self.clipper, **settings)
        else:
            extra: dict[str, Any] = {"max_grad_norm": self.plan.max_grad_norm} if ghost else {}
            self.model = wrap_model(
                self.base_model, mode, batch_first=True, loss_reduction="mean", **extra
            )
            if self.privacy.poisson_sampling:
                self.model.forbid_grad_accumulation()  # type: ignore[operator]
            cls = SourcedGhostDPOptimizer if ghost else SourcedDPOptimizer
            optimizer = cls(self.optimizer, **settings)
        optimizer.noise_source = self.noise
        optimizer.attach_step_hook(
            self.accountant.get_optimizer_hook_fn(sample_rate=self.plan.sample_rate)
        )
        self.optimizer = optimizer
        if ghost:
            self.criterion = DPLossFastGradientClipping(self.model, optimizer, self.loss_fn, "mean")

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        optimizer = self.optimizer
        assert isinstance(optimizer, DPOptimizer)
        if len(x) == 0:
            self._noise_only_step(optimizer)
            return torch.zeros((), device=self.device)
        optimizer.zero_grad(set_to_none=True)
        if self.clipper is not None:
            self.clipper.begin()
        with warnings.catch_warnings():
            # Opacus' backward hooks on the first layer fire although inputs need no grad.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            output = self.model(x)
            loss = self.criterion(output, y)
            loss.backward()
        optimizer.step()
        return loss.detach()  # stays in the room: no step log, no epoch loss (see below)

    def _noise_only_step(self, optimizer: DPOptimizer) -> None:
        """An empty Poisson batch still releases a noisy (all-noise) update and is accounted."""
        for p in optimizer.params:
            p.summed_grad = torch.zeros_like(p)
        optimizer.add_noise()
        for p in optimizer.params:
            assert p.grad is not None
            p.grad /= optimizer.expected_batch_size
        self.accountant.step(
            noise_multiplier=optimizer.noise_multiplier, sample_rate=self.plan.sample_rate
        )
        optimizer.original_optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def after_step(self) -> None:
        if self.accounted_steps() > self.plan.max_steps:  # the sampler makes this unreachable
            raise PrivacyError(
                f"DP-SGD: step {self.step} passes the reserved ε "
                f"{self.plan.epsilon_target:g}; stopped"
            )

    def make_step_log(self) -> StepLog | None:
        return None  # a training batch's loss or accuracy is an unnoised statistic

    def make_train_curves(self) -> TrainCurves | None:
        return None  # training-batch metrics are unnoised statistics of private records

    def validation_names(self) -> list[str]:
        """The consumer's metrics (and the early-stopping one): each epoch's noisy release."""
        stopping = self.cfg.early_stopping
        monitored = [stopping.metric] if stopping is not None else []
        if self.cfg.checkpoint == "best" and stopping is None:
            monitored = ["loss"]
        return scalar_metrics([*self.pipeline.eval.metrics, *monitored])

    def epoch_statistics(
        self, epoch: int, loss_sum: Tensor, seen: int, curves: TrainCurves | None
    ) -> tuple[Curve, Curve]:
        """No training statistic; validation only as a charged release (``validation_statistics``).

        Divergence is read from the (noisy) weights.
        """
        if not all(bool(torch.isfinite(p).all()) for p in self.base_model.parameters()):
            raise TrainingError(f"epoch {epoch}: the model's weights are not finite (diverged)")
        return {}, self.validation_statistics()

    def epoch_event_values(self, record: EpochRecord) -> dict[str, float]:
        return {}  # the operator's progress stream carries counters only

    def can_evaluate(self) -> bool:
        return len(self.releases) < self.plan.eval_releases

    def evaluate(self, split: str, names: list[str] | None = None) -> dict[str, Any]:
        """Metrics on ``split`` released through the Gaussian mechanism and charged to ε.

        Refused beyond the evaluation releases the plan reserved (``eval_releases``).
        """
        if not self.can_evaluate():
            raise PrivacyError(
                f"evaluation of {split!r}: the plan reserved {self.plan.eval_releases} "
                "evaluation release(s), all spent; raise privacy.eval_releases"
            )
        before = self.spent_epsilon()
        metrics, release = release_evaluation(
            self.plain_model(),
            self.batches(split),
            split=split,
            names=names if names is not None else list(self.pipeline.eval.metrics),
            task=self.metric_ctx.task,
            threshold=self.metric_ctx.threshold,
            clip=self.privacy.eval_clip,
            noise_multiplier=self.plan.eval_noise_multiplier,
            noise=self.noise,
            per_record_loss=self._per_record_loss(),
        )
        self.releases.append(release)
        release.epsilon_share = self.spent_epsilon() - before
        self.log(
            f"DP evaluation: {split} metrics released with Gaussian noise, noise multiplier "
            f"{release.noise_multiplier:g}, L2 sensitivity {release.sensitivity:.4g}; "
            f"ε={self.spent_epsilon():.3f} in total"
        )
        return metrics

    def _per_record_loss(self) -> nn.Module:
        loss = CompositeLoss(self.pipeline.loss, reduction="none")
        return loss.to(self.device)

    def after_epoch(self, record: EpochRecord) -> None:
        steps = self.accounted_steps()
        if steps > self.trajectory[-1][0]:
            eps = self.epsilon_at(steps)
            self.trajectory.append((steps, eps))
            self.log(f"DP-SGD: epoch {record.epoch}: ε={eps:.3f} after {steps} steps")
        if self.allowance.exhausted and steps < self.plan.steps:
            self.log(f"DP-SGD: stopped at step {steps}: the next step would pass the reserved ε")

    def plain_model(self) -> nn.Module:
        return self.base_model

    def extra_outputs(self) -> dict[str, bytes]:
        report = privacy_report(self)
        return {"privacy_report.json": json.dumps(report, indent=2, sort_keys=True).encode()}

    # ------------------------------------------------------------------ accounting

    def accounted_steps(self) -> int:
        """DP steps the accountant has recorded (noise-only steps included)."""
        return int(sum(entry[2] for entry in self.accountant.history))

    def history(self, steps: int, releases: int) -> list[tuple[float, float, int]]:
        """The accountant history of ``steps`` training steps and ``releases`` evaluations."""
        return self.plan.training_history(steps) + self.plan.evaluation_history(releases)

    def epsilon_at(self, steps: int, releases: int | None = None) -> float:
        """ε after ``steps`` training steps and ``releases`` evaluations (default: made so far)."""
        made = len(self.releases) if releases is None else releases
        return epsilon_of(self.history(steps, made), self.plan.delta, self.plan.accountant)

    def spent_epsilon(self) -> float:
        """ε spent so far, evaluations included; what a failed run settles with."""
        return self.epsilon_at(self.accounted_steps())


class DPTrainerFactory:
    """A ``trainer_factory`` that remembers its trainer, so a failed run can still settle.

    Example (the room)::

        factory = DPTrainerFactory()
        try:
            outcome = run_pipeline(pipeline, trees, model_tree, trainer_factory=factory)
        finally:
            book.settle(run_id, factory.spent_epsilon())
    """

    def __init__(self, noise: NoiseSource | None = None) -> None:
        self.noise = noise
        self.trainer: DPTrainer | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> DPTrainer:
        self.trainer = DPTrainer(*args, noise=self.noise, **kwargs)
        return self.trainer

    def spent_epsilon(self) -> float:
        """ε the run spent so far; 0.0 if its trainer was never built."""
        return 0.0 if self.trainer is None else self.trainer.spent_epsilon()
