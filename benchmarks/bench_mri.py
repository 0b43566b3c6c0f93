"""MRI tumour segmentation (scenarios/mri): test Dice without DP and at ε 8 and 3, and DP cost.

Generates the BraTS-like hospitals (``--providers`` × ``--patients``, volumes
``--shape``), prepares each with the scenario's provider step (``--size`` slices, tumour
slices only), joins them and splits by patient (70/15/15), then trains the scenario's
U-Net three ways through ``run_pipeline`` — the entry point the room calls:

- without DP: the consumer's non-private settings below (Adam, small batches);
- with DP-SGD at ε 8 and ε 3 (δ 1e-5): the scenario's train.yaml and privacy.yaml.

Scores are on the held-out test patients. Speed: one epoch of the DP trainer against one
epoch of the plain trainer with the same model, data and batch size, in this process,
interleaved ``--repeats`` times; prints the median ratio. DP noise and Poisson sampling
come from a secure RNG that cannot be seeded, so each ε is trained ``--dp-repeats`` times
and the table gives the median and the range.

    python benchmarks/bench_mri.py [--patients 40] [--providers 4] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from machine_info import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scenarios.mri.generate import generate  # noqa: E402
from scenarios.mri.prepare import PrepareConfig, prepare  # noqa: E402
from sealroom.data import DirectoryTree, MemoryTree, Splits, load_splits  # noqa: E402
from sealroom.pipeline.compose import compose  # noqa: E402
from sealroom.pipeline.schema import DatasetConfig, Pipeline  # noqa: E402
from sealroom.privacy.trainer import DPTrainer  # noqa: E402
from sealroom.train.loop import Trainer  # noqa: E402
from sealroom.train.models import build_model  # noqa: E402
from sealroom.train.run import run_pipeline  # noqa: E402

SCENARIO = ROOT / "scenarios" / "mri"
# Without DP the consumer trains with small batches and Adam: many cheap steps.
NON_PRIVATE_TRAIN = {
    "optimizer": {"name": "adam", "params": {"lr": 0.003}},
    "batch_size": 32,
    "epochs": 15,
}


def prepare_cohort(
    out: Path, providers: int, patients: int, shape: tuple[int, int, int], size: int
) -> list[str]:
    """Generate and prepare every hospital; returns the hospital (dataset) names."""
    cohort = generate(out / "raw", providers=providers, patients=patients, shape=shape)
    for hospital in cohort:
        prepare(out / "raw" / hospital, out / hospital, PrepareConfig(size=(size, size)))
    return list(cohort)


def scenario_pipeline(hospitals: list[str], size: int) -> Pipeline:
    """The scenario's pipeline over these hospitals, with slices of ``size`` pixels."""
    document = compose(SCENARIO).model_dump(mode="json")
    source = {"format": "hdf5", "file": "slices.h5", "groups_key": "groups"}
    document["datasets"] = [
        DatasetConfig.model_validate({"id": h, "source": source}).model_dump(mode="json")
        for h in hospitals
    ]
    document["model"]["input_shape"] = [1, size, size]
    document["eval"]["samples"] = 0
    return Pipeline.model_validate(document)


def variant(base: Pipeline, epsilon: float | None) -> Pipeline:
    """Without DP: the non-private train settings; with DP: the scenario's at ``epsilon``."""
    document = base.model_dump(mode="json")
    if epsilon is None:
        document["privacy"] = None
        document["train"].update(NON_PRIVATE_TRAIN)
    else:
        assert base.privacy is not None
        document["privacy"] = base.privacy.model_copy(update={"epsilon": epsilon}).model_dump()
    return Pipeline.model_validate(document)


def accuracy(
    base: Pipeline, trees: dict[str, DirectoryTree], epsilon: float | None
) -> dict[str, Any]:
    pipeline = variant(base, epsilon)
    started = time.perf_counter()
    outcome = run_pipeline(
        pipeline,
        trees,
        MemoryTree({}),
        trainer_factory=None if epsilon is None else DPTrainer,
        device="cpu",
    )
    assert outcome.result is not None
    history = outcome.result.history
    row: dict[str, Any] = {
        "epsilon": epsilon,
        "dice": outcome.metrics["dice"],
        "jaccard": outcome.metrics["jaccard"],
        "hausdorff": outcome.metrics["hausdorff"],
        "epochs": len(history),
        "batch_size": pipeline.train.batch_size,
        "steps": outcome.result.steps,
        "epoch_s": statistics.median(r.seconds for r in history),
        "total_s": time.perf_counter() - started,
        "samples": outcome.result.samples,
    }
    if epsilon is not None:
        report = json.loads(outcome.outputs["privacy_report.json"])
        row["epsilon_spent"] = report["epsilon_spent"]
        row["noise_multiplier"] = report["noise_multiplier"]
    print(f"  {json.dumps(row)}", flush=True)
    return row


def speed(base: Pipeline, trees: dict[str, DirectoryTree], repeats: int) -> dict[str, Any]:
    """One epoch, same model, data and batch size: plain Trainer vs DPTrainer (ε 8)."""
    private = variant(base, 8.0)
    one = private.train.model_copy(update={"epochs": 1})
    private = private.model_copy(update={"train": one})
    plain = private.model_copy(update={"privacy": None})
    splits: Splits = load_splits(plain.datasets, plain.join, plain.split, trees)
    plain_s, dp_s = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        model = build_model(plain.model, MemoryTree({}))
        plain_s.append(Trainer(plain, model, splits, "cpu").fit().history[0].seconds)
        torch.manual_seed(0)
        model = build_model(private.model, MemoryTree({}))
        dp_s.append(DPTrainer(private, model, splits, "cpu").fit().history[0].seconds)
    plain_m, dp_m = statistics.median(plain_s), statistics.median(dp_s)
    row = {
        "batch_size": one.batch_size,
        "n_train": len(splits.train),
        "plain_epoch_s": plain_m,
        "dp_epoch_s": dp_m,
        "ratio": dp_m / plain_m,
        "plain_runs": plain_s,
        "dp_runs": dp_s,
    }
    print(f"  {json.dumps(row)}", flush=True)
    return row


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of repeated runs (DP noise differs per run), with the Dice range."""
    dice = [r["dice"] for r in runs]
    row = dict(runs[0])
    for key in ("dice", "jaccard", "hausdorff", "epoch_s"):
        row[key] = statistics.median(r[key] for r in runs)
    row["runs"] = len(runs)
    row["dice_range"] = (min(dice), max(dice))
    return row


def table(rows: list[dict[str, Any]], speed_row: dict[str, Any]) -> str:
    lines = [
        "| training | test Dice (median) | Dice range | Jaccard | Hausdorff (px) "
        "| epochs × batch | steps | s / epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        name = "no DP" if r["epsilon"] is None else f"DP-SGD ε {r['epsilon']:g} (δ 1e-5)"
        low, high = r["dice_range"]
        spread = f"{low:.3f}–{high:.3f} ({r['runs']} runs)" if r["runs"] > 1 else "1 run"
        lines.append(
            f"| {name} | {r['dice']:.3f} | {spread} | {r['jaccard']:.3f} | "
            f"{r['hausdorff']:.1f} | {r['epochs']} × {r['batch_size']} | {r['steps']} | "
            f"{r['epoch_s']:.1f} |"
        )
    s = speed_row
    lines += [
        "",
        f"Same batch size ({s['batch_size']}), one epoch over {s['n_train']} slices: "
        f"plain {s['plain_epoch_s']:.1f} s, DP-SGD {s['dp_epoch_s']:.1f} s — "
        f"**{s['ratio']:.2f}×**.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--patients", type=int, default=40, help="patients per hospital")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 48])
    parser.add_argument("--size", type=int, default=48, help="slice side after prepare")
    parser.add_argument("--epsilons", default="8,3")
    parser.add_argument("--repeats", type=int, default=2, help="speed: interleaved epochs")
    parser.add_argument("--dp-repeats", type=int, default=3, help="DP runs per ε")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-mri-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        hospitals = prepare_cohort(
            root,
            args.providers,
            args.patients,
            (args.shape[0], args.shape[1], args.shape[2]),
            args.size,
        )
        print(f"data: {len(hospitals)} hospitals prepared in {time.perf_counter() - began:.1f} s")
        trees = {h: DirectoryTree(root / h) for h in hospitals}
        base = scenario_pipeline(hospitals, args.size)
        rows = [summarise([accuracy(base, trees, None)])]  # seeded: one run is the result
        for e in args.epsilons.split(","):
            runs = [accuracy(base, trees, float(e)) for _ in range(args.dp_repeats)]
            rows.append(summarise(runs))
        speed_row = (
            {"batch_size": 0, "n_train": 0, "plain_epoch_s": 0, "dp_epoch_s": 0, "ratio": 0}
            if args.skip_speed
            else speed(base, trees, args.repeats)
        )
    print(table(rows, speed_row))
    if args.json_out:
        result = {"machine": machine(), "args": vars(args) | {"json_out": None}, "rows": rows}
        args.json_out.write_text(json.dumps(result | {"speed": speed_row}, indent=2))


if __name__ == "__main__":
    main()
