"""How DP-SGD batches are drawn: Poisson sampling (what the accountant assumes) or shuffling,
both under a step allowance that stops training before the reserved ε is passed."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from sealroom.privacy.noise import NoiseSource
from sealroom.train.loop import TensorBatches


class StepAllowance:
    """How many more DP steps the reserved ε allows; the sampler asks before each batch."""

    def __init__(self, steps: int) -> None:
        self.left = steps
        self.exhausted = False

    def take(self) -> bool:
        if self.left <= 0:
            self.exhausted = True
            return False
        self.left -= 1
        return True


class PoissonBatches:
    """Each record joins each batch independently with probability ``sample_rate``.

    Batches are gathered from in-memory tensors with one index_select (no per-sample
    Python); their size varies, and an empty batch still takes a (noise-only) step.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        sample_rate: float,
        steps_per_epoch: int,
        source: NoiseSource,
        allowance: StepAllowance,
    ) -> None:
        self.x, self.y, self.sample_rate = x, y, sample_rate
        self.steps_per_epoch, self.source, self.allowance = steps_per_epoch, source, allowance

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.x)
        for _ in range(self.steps_per_epoch):
            if not self.allowance.take():
                return
            mask = self.source.bernoulli_mask(n, self.sample_rate)
            idx = mask.nonzero().squeeze(1).to(self.x.device)
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


class LimitedBatches:
    """Shuffled fixed-size batches (``poisson_sampling: false``) under the same step allowance."""

    def __init__(self, batches: TensorBatches, allowance: StepAllowance) -> None:
        self.batches, self.allowance = batches, allowance

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for batch in self.batches:
            if not self.allowance.take():
                return
            yield batch
