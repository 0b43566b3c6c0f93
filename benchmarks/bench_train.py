"""Training overhead: `sealroom train --local` (run_pipeline) vs a minimal hand-written loop.

Same model (the MNIST scenario's CNN, same initial weights), same data (Fashion-MNIST:
the 60,000 + 10,000 IDX files joined and split so that one epoch is >= 60,000
samples), same batch size, optimizer, epochs and thread count, in the same process.
Both sides train one epoch and compute the validation loss; the sealroom side runs
through run_pipeline with the CLI's progress bars. Goal: ratio <= 1.10. The two sides
alternate; it prints the best and every wall-clock time, and the process CPU time too
(less sensitive to other work on a shared machine). It then trains the digits demo for
its default epochs and prints the test accuracy (goal >= 0.95).

    python benchmarks/bench_train.py [--fashion /usr/share/datasets/fashion-mnist] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from machine_info import machine

from scenarios.mnist.prepare import prepare
from scenarios.mnist.save_model import make_model, model_onnx_bytes
from sealroom.cli.console import progress
from sealroom.cli.train import TrainBars
from sealroom.data import DirectoryTree, MemoryTree, Splits
from sealroom.pipeline.compose import compose
from sealroom.pipeline.schema import DatasetConfig, IdxSource, Pipeline, SplitConfig
from sealroom.train.run import prepare_splits, run_pipeline

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "mnist"


def fashion_pipeline(base: Pipeline) -> Pipeline:
    """The scenario's pipeline on both Fashion-MNIST files: 70,000 samples, 60,200 to train."""
    datasets = [
        DatasetConfig(
            id=f"fashion_{part}",
            source=IdxSource(
                images=f"{prefix}-images-idx3-ubyte.gz", labels=f"{prefix}-labels-idx1-ubyte.gz"
            ),
        )
        for part, prefix in (("train", "train"), ("test", "t10k"))
    ]
    return base.model_copy(
        update={
            "datasets": datasets,
            "split": SplitConfig(train=0.86, val=0.07, test=0.07, seed=0),
            "train": base.train.model_copy(update={"epochs": 1}),
        }
    )


def hand_loop(pipeline: Pipeline, splits: Splits) -> tuple[float, float]:
    """The baseline: what one writes by hand, kept as lean as possible; (wall, CPU) seconds."""
    cfg = pipeline.train
    torch.set_num_threads(cfg.num_threads or torch.get_num_threads())
    x, y = torch.from_numpy(splits.train.x), torch.from_numpy(splits.train.y)
    vx, vy = torch.from_numpy(splits.val.x), torch.from_numpy(splits.val.y)
    model = make_model(0)
    lr = cfg.optimizer.params.get("lr", 1e-3)
    assert cfg.optimizer.name == "adam" and isinstance(lr, float)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = torch.zeros(())
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            bx, by = x.index_select(0, idx), y.index_select(0, idx)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(bx), by)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(bx)
        model.eval()
        val = torch.zeros(())
        with torch.inference_mode():
            for start in range(0, len(vx), 1024):
                out = model(vx[start : start + 1024])
                val += F.cross_entropy(out, vy[start : start + 1024]) * len(out)
        train_loss, val_loss = float(total) / len(x), float(val) / len(vx)
        print(f"  hand loop: train loss {train_loss:.4f}, val loss {val_loss:.4f}")
    return time.perf_counter() - started, time.process_time() - cpu_started


def sealroom_run(
    pipeline: Pipeline, trees: dict, model_tree: MemoryTree, max_samples: int | None
) -> tuple[float, float, float]:
    """run_pipeline as `sealroom train --local` calls it; fit wall and CPU s, whole run s."""
    started = time.perf_counter()
    with progress(transient=True) as bars:
        outcome = run_pipeline(
            pipeline,
            trees,
            model_tree,
            on_event=TrainBars(bars, quiet=True),
            max_samples=max_samples,
        )
    total = time.perf_counter() - started
    assert outcome.result is not None
    epoch_line = next(line for line in outcome.log if "| Val loss: " in line)
    print(f"  sealroom: {epoch_line}; test accuracy {outcome.metrics['accuracy']:.4f}")
    return outcome.result.fit_seconds, outcome.result.cpu_seconds, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-samples", type=int, default=None, help="a quick check of the script")
    args = parser.parse_args()

    base = compose(SCENARIO)
    model_tree = MemoryTree({"model.onnx": model_onnx_bytes(make_model(0))})
    print(f"machine: {machine()}")

    pipeline = fashion_pipeline(base)
    tree = DirectoryTree(args.fashion)
    trees = {"fashion_train": tree, "fashion_test": tree}
    splits = prepare_splits(pipeline, trees, args.max_samples)
    print(
        f"Fashion-MNIST: {len(splits.train)} training samples per epoch, "
        f"{len(splits.val)} validation, batch {pipeline.train.batch_size}, "
        f"{pipeline.train.epochs} epoch, {pipeline.train.num_threads} thread(s)"
    )
    hand_loop(pipeline, _head(splits, 20 * 64))
    hand_times, hand_cpu, fit_times, fit_cpu, run_times = [], [], [], [], []
    for _ in range(args.repeats):  # alternate, so load changes on the machine hit both sides
        wall, cpu = hand_loop(pipeline, splits)
        hand_times.append(wall)
        hand_cpu.append(cpu)
        fit, cpu, total = sealroom_run(pipeline, trees, model_tree, args.max_samples)
        fit_times.append(fit)
        fit_cpu.append(cpu)
        run_times.append(total)
    hand, fit, run = min(hand_times), min(fit_times), min(run_times)
    print(f"hand-written loop (train epoch + val loss): {hand:.2f} s   (all: {_list(hand_times)})")
    print(f"sealroom train --local, fit (same work):    {fit:.2f} s   (all: {_list(fit_times)})")
    print(f"ratio (sealroom fit / hand loop): {fit / hand:.3f}   goal <= 1.10")
    print(
        f"CPU time: hand {min(hand_cpu):.2f} s (all: {_list(hand_cpu)}), sealroom fit "
        f"{min(fit_cpu):.2f} s (all: {_list(fit_cpu)}), ratio {min(fit_cpu) / min(hand_cpu):.3f}"
    )
    print(
        f"sealroom whole run (load, convert, fit, test metrics, ONNX export + onnxruntime check, "
        f"plots): {run:.2f} s, ratio to hand loop {run / hand:.3f}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp) / "digits")
        outcome = run_pipeline(base, {"mnist": DirectoryTree(Path(tmp) / "digits")}, model_tree)
    print(
        f"digits demo: {base.train.epochs} epochs, test accuracy {outcome.metrics['accuracy']:.4f}"
        "   goal >= 0.95"
    )


def _head(splits: Splits, n: int) -> Splits:
    """A few batches for warming up the allocator and kernels before timing."""
    import numpy as np

    train = splits.train.subset(np.arange(min(n, len(splits.train))))
    return Splits(train, splits.val.subset(np.arange(min(256, len(splits.val)))), splits.test)


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
