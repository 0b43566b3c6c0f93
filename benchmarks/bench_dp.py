"""DP-SGD cost and utility on the DP-MNIST CNN (scenarios/dp-mnist).

Speed: one epoch of DP-SGD (DPTrainer: Opacus per-sample gradients, secure noise,
Poisson sampling) against one epoch of the plain Trainer, same model, data, batch size
and thread count, in this process, interleaved ``--repeats`` times; prints the median
ratio (goal ≤ 2.0). Accuracy: test accuracy at ε 1, 3 and 8 (δ 1e-5) on Fashion-MNIST
(60,000 train / 10,000 t10k test IDX files) and on scikit-learn's digits (28×28, 80/20
split); ``--json-out`` keeps the numbers for docs/results.md.

    python benchmarks/bench_dp.py speed [--samples 60000] [--repeats 3]
    python benchmarks/bench_dp.py accuracy --data fashion --epsilons 1,3,8 [--epochs 40]
    python benchmarks/bench_dp.py accuracy --data digits
    python benchmarks/bench_dp.py attack        # membership inference, public digits
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scenarios.mnist.dp_cnn import make_model  # noqa: E402
from scenarios.mnist.prepare import digits_28x28  # noqa: E402
from scenarios.mnist.save_model import model_onnx_bytes  # noqa: E402
from sealroom.data import ArrayDataset, DirectoryTree, MemoryTree, Splits  # noqa: E402
from sealroom.data.loaders import load_dataset  # noqa: E402
from sealroom.pipeline.compose import compose  # noqa: E402
from sealroom.pipeline.schema import DatasetConfig, IdxSource, Pipeline  # noqa: E402
from sealroom.privacy.trainer import DPTrainer  # noqa: E402
from sealroom.train.loop import Trainer, TrainEvent  # noqa: E402
from sealroom.train.models import build_model  # noqa: E402

SCENARIO = ROOT / "scenarios" / "dp-mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")

# Tramèr & Boneh (2021), end-to-end CNN on Fashion-MNIST: batch 2048, lr 4, momentum 0.9, C 0.1.
FASHION_TRAIN = {"batch_size": 2048, "lr": 4.0, "momentum": 0.9, "clip": 0.1}
DIGITS_TRAIN = {"batch_size": 256, "lr": 2.0, "momentum": 0.9, "clip": 0.1}


def onnx_model() -> torch.nn.Module:
    """The scenario's CNN the way the room gets it: ONNX converted by onnx2torch."""
    base = compose(SCENARIO)
    tree = MemoryTree({"model.onnx": model_onnx_bytes(make_model(0))})
    return build_model(base.model, tree)


def fashion(part: str) -> ArrayDataset:
    prefix = "train" if part == "train" else "t10k"
    cfg = DatasetConfig(
        id=f"fashion_{part}",
        source=IdxSource(
            images=f"{prefix}-images-idx3-ubyte.gz", labels=f"{prefix}-labels-idx1-ubyte.gz"
        ),
    )
    return load_dataset(cfg, DirectoryTree(FASHION))


def digits_splits() -> Splits:
    images, labels = digits_28x28()
    order = np.random.default_rng(0).permutation(len(images))
    x = (images[order].astype(np.float32) / 255.0)[:, None]
    y = labels[order].astype(np.int64)
    cut = int(0.8 * len(x))
    empty = ArrayDataset(x[:0], y[:0], name="empty")
    return Splits(ArrayDataset(x[:cut], y[:cut]), empty, ArrayDataset(x[cut:], y[cut:]))


def pipeline(epochs: int, settings: dict[str, float], epsilon: float | None) -> Pipeline:
    base = compose(SCENARIO)
    train = base.train.model_copy(
        update={
            "epochs": epochs,
            "batch_size": int(settings["batch_size"]),
            "optimizer": base.train.optimizer.model_copy(
                update={"params": {"lr": settings["lr"], "momentum": settings["momentum"]}}
            ),
        }
    )
    assert base.privacy is not None
    privacy = None
    if epsilon is not None:
        privacy = base.privacy.model_copy(
            update={"epsilon": epsilon, "delta": 1e-5, "max_grad_norm": settings["clip"]}
        )
    return base.model_copy(update={"train": train, "privacy": privacy})


def speed(args: argparse.Namespace) -> dict[str, Any]:
    data = fashion("train").subset(np.arange(args.samples))
    empty = data.subset(np.arange(0))
    splits = Splits(data, empty, empty)
    plain_p = pipeline(1, DIGITS_TRAIN | {"batch_size": args.batch_size}, None)
    dp_p = pipeline(1, DIGITS_TRAIN | {"batch_size": args.batch_size}, 3.0)
    assert dp_p.privacy is not None
    if args.mode:
        dp_p = dp_p.model_copy(
            update={"privacy": dp_p.privacy.model_copy(update={"grad_sample_mode": args.mode})}
        )
    assert dp_p.privacy is not None
    mode = dp_p.privacy.grad_sample_mode
    plain_s, dp_s = [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        plain_s.append(Trainer(plain_p, onnx_model(), splits).fit().history[0].seconds)
        torch.manual_seed(0)
        dp_s.append(DPTrainer(dp_p, onnx_model(), splits).fit().history[0].seconds)
        print(f"  plain {plain_s[-1]:.2f} s, DP {dp_s[-1]:.2f} s", flush=True)
    ratios = [d / p for d, p in zip(dp_s, plain_s, strict=True)]
    result = {
        "samples": args.samples,
        "batch_size": args.batch_size,
        "grad_sample_mode": mode,
        "plain_epoch_s": statistics.median(plain_s),
        "dp_epoch_s": statistics.median(dp_s),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
    }
    print(
        f"DP-SGD epoch / non-private epoch: {result['ratio_median']:.2f}x (median of "
        f"{args.repeats}; {result['dp_epoch_s']:.1f} s vs {result['plain_epoch_s']:.1f} s for "
        f"{args.samples} samples, batch {args.batch_size}, {mode}) — goal <= 2.0"
    )
    return result


def _print_logs(event: TrainEvent) -> None:
    if event.kind == "log":
        print(f"  {event.message}", flush=True)


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    if args.data == "fashion":
        splits = Splits(fashion("train"), fashion("test").subset(np.arange(0)), fashion("test"))
        settings = FASHION_TRAIN
    else:
        splits = digits_splits()
        settings = DIGITS_TRAIN
    rows = []
    for epsilon in [float(e) for e in args.epsilons.split(",")]:
        p = pipeline(args.epochs, settings, epsilon)
        torch.manual_seed(0)
        started = time.perf_counter()
        trainer = DPTrainer(p, onnx_model(), splits, on_event=_print_logs)
        trainer.fit()
        acc = trainer.evaluate("test", ["accuracy"])["accuracy"]
        row = {
            "data": args.data,
            "epsilon_target": epsilon,
            "epsilon_spent": trainer.spent_epsilon(),
            "delta": 1e-5,
            "accuracy": acc,
            "epochs": args.epochs,
            "n_train": len(splits.train),
            "n_test": len(splits.test),
            "batch_size": p.train.batch_size,
            "noise_multiplier": trainer.plan.noise_multiplier,
            "accountant": trainer.plan.accountant,
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        print(
            f"{args.data}: ε {row['epsilon_spent']:.2f} (target {epsilon:g}), δ 1e-5: test "
            f"accuracy {acc:.4f} — n {row['n_train']}, batch {row['batch_size']}, noise "
            f"{row['noise_multiplier']:.3f}, {args.epochs} epochs, {row['seconds']:.0f} s",
            flush=True,
        )
    return {"rows": rows}


def attack(args: argparse.Namespace) -> dict[str, Any]:
    from sealroom.privacy.attack import membership_comparison
    from tests.privacy.test_privacy_attack import _digits_pipeline, _digits_tree

    result = membership_comparison(
        _digits_pipeline(args.epsilon), {"digits": _digits_tree(600)}, MemoryTree({}), public=True
    )
    print(
        f"membership inference (loss threshold, public digits, {result.members} members vs "
        f"{result.non_members} non-members): attack AUC {result.auc_private:.3f} on the DP "
        f"model (ε {result.epsilon:.2f}) vs {result.auc_non_private:.3f} non-private"
    )
    return dataclasses.asdict(result)  # nested attack results (TPR at FPR) included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--samples", type=int, default=60_000)
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument(
        "--mode",
        choices=["hooks", "fused", "functorch", "ghost", "ew"],
        help="grad_sample_mode (default: the scenario's)",
    )
    s.add_argument("--repeats", type=int, default=3)
    a = sub.add_parser("accuracy")
    a.add_argument("--data", choices=["fashion", "digits"], default="fashion")
    a.add_argument("--epsilons", default="1,3,8")
    a.add_argument("--epochs", type=int, default=40)
    m = sub.add_parser("attack")
    m.add_argument("--epsilon", type=float, default=1.0)
    for p in (s, a, m):
        p.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    result = {"speed": speed, "accuracy": accuracy, "attack": attack}[args.what](args)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
