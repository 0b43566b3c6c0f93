"""DP-SGD epoch against a non-private epoch on the DP-MNIST CNN, with a per-step breakdown.

One epoch of ``DPTrainer`` (Poisson sampling, per-sample clipping, secure noise, the
accountant) against one epoch of the plain ``Trainer`` on the same model, data (60,000
Fashion-MNIST training images), batch size and one thread, interleaved ``--repeats``
times in this process; prints the median ratio (goal ≤ 1.3) and where each epoch's time
goes, per step: batch assembly (for DP: the Poisson mask, then the gather), forward, loss,
backward (for ``fused``: with the per-sample norms its hooks compute), clipped sums,
noise draw, gradient scaling, the accountant's hook, the optimizer's own step, zero_grad,
and whatever the epoch spends outside its steps (step log, validation, hooks).
The parts are CPU time of this process (``time.process_time``: robust when other jobs
share the cores); the ratio is given both in wall-clock and in CPU time.

    python benchmarks/dp_speed.py [--samples 60000] [--batch-size 256] [--repeats 3]
                                  [--mode fused] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dp_common import DP_MNIST, dp_cnn, fashion
from machine_info import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sealroom.data import Splits  # noqa: E402
from sealroom.pipeline.compose import compose  # noqa: E402
from sealroom.pipeline.schema import Pipeline  # noqa: E402
from sealroom.privacy.trainer import DPTrainer  # noqa: E402
from sealroom.train.loop import Trainer  # noqa: E402

SCENARIO = DP_MNIST
SETTINGS = {"lr": 2.0, "momentum": 0.9, "clip": 0.1}
GOAL = 1.3


def pipeline(batch_size: int, epsilon: float | None, mode: str | None) -> Pipeline:
    """The dp-mnist pipeline for one epoch; private (ε at δ 1e-5) when ``epsilon`` is set."""
    base = compose(SCENARIO)
    optimizer = base.train.optimizer.model_copy(
        update={"params": {"lr": SETTINGS["lr"], "momentum": SETTINGS["momentum"]}}
    )
    train = base.train.model_copy(
        update={"epochs": 1, "batch_size": batch_size, "optimizer": optimizer}
    )
    assert base.privacy is not None
    privacy = None
    if epsilon is not None:
        update: dict[str, Any] = {"epsilon": epsilon, "delta": 1e-5, "max_grad_norm": 0.1}
        if mode:
            update["grad_sample_mode"] = mode
        privacy = base.privacy.model_copy(update=update)
    return base.model_copy(update={"train": train, "privacy": privacy})


class Clock:
    """CPU seconds spent in named calls, summed; wraps bound methods on one instance."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.process_time() - started

        setattr(owner, attr, timed)

    def iterate(self, loader: Any, name: str) -> Iterator[Any]:
        """``loader``'s batches, the time spent producing each one counted under ``name``."""
        it = iter(loader)
        while True:
            started = time.process_time()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.seconds[name] += time.process_time() - started
            yield batch


class _TimedLoader:
    def __init__(self, loader: Any, clock: Clock) -> None:
        self.loader, self.clock = loader, clock

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        return self.clock.iterate(self.loader, "batch assembly")


def _instrument(trainer: Trainer, clock: Clock) -> None:
    """Wrap what one step calls (after ``setup``): each part then counts its own time."""
    trainer.train_loader = _TimedLoader(trainer.train_loader, clock)
    clock.wrap(trainer, "train_step", "step total")
    clock.wrap(trainer.model, "forward", "forward")
    optimizer: Any = trainer.optimizer
    if isinstance(trainer, DPTrainer):
        clock.wrap(trainer.noise, "bernoulli_mask", "  of which Poisson mask")
        clock.wrap(trainer.noise, "normal", "  of which noise draw")
        clock.wrap(trainer, "criterion", "loss")
        clock.wrap(optimizer, "zero_grad", "zero_grad")
        clock.wrap(optimizer, "step", "optimizer (DP) step")
        if trainer.clipper is not None:
            clock.wrap(trainer.clipper, "clip_and_sum", "  clip factors + clipped sums")
        clock.wrap(optimizer, "add_noise", "  add noise")
        clock.wrap(optimizer, "scale_grad", "  scale_grad")
        if optimizer.step_hook is not None:
            clock.wrap(optimizer, "step_hook", "  accountant hook")
        clock.wrap(optimizer.original_optimizer, "step", "  SGD step")
    else:
        clock.wrap(trainer, "loss_fn", "loss")
        clock.wrap(optimizer, "zero_grad", "zero_grad")
        clock.wrap(optimizer, "step", "optimizer (DP) step")
        clock.wrap(optimizer, "step", "  SGD step")


def _timed(cls: type[Trainer], clock: Clock) -> type[Trainer]:
    class Timed(cls):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            super().setup()
            _instrument(self, clock)

    return Timed


def breakdown(clock: Clock, epoch_cpu_s: float, steps: int) -> dict[str, float]:
    """Milliseconds per step for each part; ``backward`` and ``outside steps`` by difference."""
    s = dict(clock.seconds)
    inner = s.get("forward", 0.0) + s.get("loss", 0.0) + s.get("zero_grad", 0.0)
    inner += s.get("optimizer (DP) step", 0.0)
    parts = {
        "batch assembly": s.get("batch assembly", 0.0),
        "  of which Poisson mask": s.get("  of which Poisson mask", 0.0),
        "forward": s.get("forward", 0.0),
        "loss": s.get("loss", 0.0),
        "backward (fused: + per-sample norms)": s.get("step total", 0.0) - inner,
        "zero_grad": s.get("zero_grad", 0.0),
        "optimizer (DP) step": s.get("optimizer (DP) step", 0.0),
    }
    for key in (
        "  clip factors + clipped sums",
        "  add noise",
        "  of which noise draw",
        "  scale_grad",
        "  accountant hook",
        "  SGD step",
    ):
        if key in s:
            parts[key] = s[key]
    parts["outside steps (step log, val, hooks)"] = (
        epoch_cpu_s - s.get("batch assembly", 0.0) - s.get("step total", 0.0)
    )
    return {k: 1000.0 * v / max(steps, 1) for k, v in parts.items()}


def one_epoch(p: Pipeline, splits: Splits, dp: bool) -> tuple[float, float, int, dict[str, float]]:
    """Wall seconds and CPU seconds of one epoch (fit), its steps, and the breakdown."""
    clock = Clock()
    cls = _timed(DPTrainer if dp else Trainer, clock)
    torch.manual_seed(0)
    trainer = cls(p, dp_cnn(0), splits)
    result = trainer.fit()
    wall, cpu = result.history[0].seconds, result.cpu_seconds
    return wall, cpu, trainer.step, breakdown(clock, cpu, trainer.step)


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = fashion("train").subset(np.arange(args.samples))
    empty = data.subset(np.arange(0))
    splits = Splits(data, empty, empty)
    plain_p = pipeline(args.batch_size, None, None)
    dp_p = pipeline(args.batch_size, 3.0, args.mode)
    assert dp_p.privacy is not None
    mode = dp_p.privacy.grad_sample_mode
    plain_s, dp_s, ratios, plain_cpu, dp_cpu, cpu_ratios = [], [], [], [], [], []
    plain_parts: list[dict[str, float]] = []
    dp_parts: list[dict[str, float]] = []
    for _ in range(args.repeats):
        wall, cpu, plain_steps, parts = one_epoch(plain_p, splits, dp=False)
        plain_s.append(wall)
        plain_cpu.append(cpu)
        plain_parts.append(parts)
        wall, cpu, dp_steps, parts = one_epoch(dp_p, splits, dp=True)
        dp_s.append(wall)
        dp_cpu.append(cpu)
        dp_parts.append(parts)
        ratios.append(dp_s[-1] / plain_s[-1])
        cpu_ratios.append(dp_cpu[-1] / plain_cpu[-1])
        print(
            f"  plain {plain_s[-1]:.2f} s wall / {plain_cpu[-1]:.2f} s CPU ({plain_steps} steps), "
            f"DP {dp_s[-1]:.2f} s / {dp_cpu[-1]:.2f} s ({dp_steps} steps): {ratios[-1]:.2f}x "
            f"wall, {cpu_ratios[-1]:.2f}x CPU; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    plain_ms = {k: statistics.median(d[k] for d in plain_parts) for k in plain_parts[0]}
    dp_ms = {k: statistics.median(d[k] for d in dp_parts) for k in dp_parts[0]}
    print(f"\nper step, CPU ms (median of {args.repeats}):  {'plain':>8}  {'DP':>8}")
    for key in dp_ms:
        plain = f"{plain_ms[key]:8.3f}" if key in plain_ms else f"{'-':>8}"
        print(f"  {key:<40} {plain}  {dp_ms[key]:8.3f}")
    total_plain = 1000 * statistics.median(plain_cpu) / max(plain_steps, 1)
    total_dp = 1000 * statistics.median(dp_cpu) / max(dp_steps, 1)
    print(f"  {'epoch CPU / steps':<40} {total_plain:8.3f}  {total_dp:8.3f}")
    result = {
        "samples": args.samples,
        "batch_size": args.batch_size,
        "grad_sample_mode": mode,
        "plain_epoch_s": statistics.median(plain_s),
        "dp_epoch_s": statistics.median(dp_s),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "plain_epoch_cpu_s": statistics.median(plain_cpu),
        "dp_epoch_cpu_s": statistics.median(dp_cpu),
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratios": cpu_ratios,
        "load_average": os.getloadavg()[0],
        "plain_ms_per_step": plain_ms,
        "dp_ms_per_step": dp_ms,
    }
    print(
        f"\nDP-SGD epoch / non-private epoch: {result['ratio_median']:.2f}x wall, "
        f"{result['cpu_ratio_median']:.2f}x CPU time (median of {args.repeats}; "
        f"{result['dp_epoch_s']:.1f} s vs {result['plain_epoch_s']:.1f} s wall for "
        f"{args.samples} samples, batch {args.batch_size}, {mode}) — goal <= {GOAL}"
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--mode",
        choices=["hooks", "fused", "functorch", "ghost", "ew"],
        help="grad_sample_mode (default: the scenario's)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    result = run(args)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
