"""Empirical privacy audits of DP-SGD on Fashion-MNIST: a one-run canary audit and the MIA.

canary: the one-run audit of Steinke, Nasr & Jagielski (2023). ``--canaries`` records
from a held-out part of the training file (never otherwise trained on) get a wrong label
(``--kind mislabeled``), or are uniform-noise images with random labels (``--kind noise``);
each joins the training set with probability 1/2 (the auditor's seeded draw). One run per
``--modes`` entry (DPTrainer, Poisson sampling, calibrated to ``--epsilon`` at δ 1e-5) plus
the same model trained without DP (the baseline that shows the audit can see a leak).
Score = the canary's loss drop from the initial to the trained model; the ε lower bound is
the best of a few fixed (k+, k-) choices with a Bonferroni correction, at 95 % confidence.

mia: the loss-threshold attack (Yeom et al. 2018) with members = the first ``--members``
training records (the whole training set) and non-members = the first ``--non-members``
t10k records; AUC and TPR at FPR 1 % and 0.1 % with Clopper–Pearson 95 % intervals, on the
DP model in each mode and on the non-private model.

Model: the DP-MNIST CNN (scenarios/mnist/dp_cnn.py) the way the room gets it (ONNX →
onnx2torch). Public data only: these runs train non-private models.

    python benchmarks/dp_audit.py canary --kind noise --modes fused,hooks,none --epsilon 3 \
        --epochs 30
    python benchmarks/dp_audit.py mia --members 10000 --non-members 10000 --epsilon 3 \
        --plain-epochs 60 --reference-epochs 30
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dp_common import DP_MNIST, dp_cnn, fashion
from machine_info import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sealroom.data import ArrayDataset, Splits  # noqa: E402
from sealroom.pipeline.compose import compose  # noqa: E402
from sealroom.pipeline.schema import Pipeline  # noqa: E402
from sealroom.privacy.attack import (  # noqa: E402
    AttackResult,
    calibrated_loss_attack,
    loss_threshold_attack,
)
from sealroom.privacy.audit import (  # noqa: E402
    CanaryRun,
    mislabeled_canaries,
    noise_canaries,
    run_canary_audit,
)
from sealroom.privacy.trainer import DPTrainer  # noqa: E402
from sealroom.train.loop import Trainer  # noqa: E402

SCENARIO = DP_MNIST
DELTA = 1e-5
# DP-SGD settings of the DP-MNIST benchmarks (bench_dp.py DIGITS_TRAIN); the non-private
# baseline uses plain SGD at a learning rate that trains without clipping.
DP_TRAIN = {"batch_size": 256, "lr": 2.0, "momentum": 0.9, "clip": 0.1}
PLAIN_TRAIN = {"batch_size": 128, "lr": 0.05, "momentum": 0.9}
# (k+, k-) choices fixed before any score is seen; the reported bound is their Bonferroni best.
GUESS_FRACTIONS = ((0.025, 0.0), (0.05, 0.0), (0.1, 0.0), (0.05, 0.05), (0.1, 0.1))


def pipeline(epochs: int, epsilon: float | None, mode: str | None) -> Pipeline:
    """The DP-MNIST pipeline with DP at ``epsilon`` in ``mode``, or without DP (None)."""
    base = compose(SCENARIO)
    settings: dict[str, float] = DP_TRAIN if epsilon is not None else PLAIN_TRAIN
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
            update={
                "epsilon": epsilon,
                "delta": DELTA,
                "max_grad_norm": settings["clip"],
                "grad_sample_mode": mode,
            }
        )
    return base.model_copy(update={"train": train, "privacy": privacy})


def accuracy(model: torch.nn.Module, data: ArrayDataset) -> float:
    model.eval()
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.ascontiguousarray(data.x)))
    return float((logits.argmax(1).numpy() == data.y).mean())


def _modes(text: str) -> list[str | None]:
    """``fused,hooks,none``: DP modes; ``none`` is the non-private baseline."""
    return [None if m == "none" else m for m in text.split(",") if m]


# --------------------------------------------------------------------------- canary audit


def canary(args: argparse.Namespace) -> dict[str, Any]:
    full = fashion("train")
    if args.train + args.pool > len(full):
        raise SystemExit(f"--train {args.train} + --pool {args.pool} exceed {len(full)} records")
    train = full.subset(np.arange(args.train))
    pool = full.subset(np.arange(len(full) - args.pool, len(full)))  # held out of training
    if args.kind == "mislabeled":
        canaries = mislabeled_canaries(pool, args.canaries, 10, seed=args.seed)
    else:
        canaries = noise_canaries(args.canaries, train.sample_shape, 10, seed=args.seed)
    m = len(canaries)
    ks = [(round(a * m), round(b * m)) for a, b in GUESS_FRACTIONS]
    rows = []
    for mode in _modes(args.modes):
        epochs = args.epochs if mode is not None else args.plain_epochs
        p = pipeline(epochs, args.epsilon if mode is not None else None, mode)
        torch.manual_seed(args.seed)
        run: CanaryRun = run_canary_audit(p, dp_cnn(args.seed), train, canaries, ks=ks, delta=DELTA)
        a = run.audit
        row = {
            "mode": mode or "non-private",
            "canary_kind": args.kind,
            "epsilon": run.epsilon,
            "epsilon_lower_bound": a.epsilon_lower_bound,
            "confidence": a.confidence,
            "canaries": a.canaries,
            "included": a.included,
            "k_plus": a.k_plus,
            "k_minus": a.k_minus,
            "guesses": a.guesses,
            "correct": a.correct,
            "epochs": epochs,
            "train_records": run.train_records,
            "seconds": run.seconds,
        }
        rows.append(row)
        print(f"  {row['mode']}: {a.correct}/{a.guesses} correct, {run.seconds:.0f} s", flush=True)
    print(f"\n{args.kind} canaries; guess choices (k+, k-), Bonferroni: {ks}\n")
    print(
        "| mode | ε (accountant, δ 1e-5) | ε lower bound (one-run audit, 95 %) | canaries m "
        "(IN) | guesses (k+ / k-) | correct | epochs | train records |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        eps = "∞ (no DP)" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        print(
            f"| {r['mode']} | {eps} | {r['epsilon_lower_bound']:.2f} | {r['canaries']} "
            f"({r['included']}) | {r['guesses']} ({r['k_plus']} / {r['k_minus']}) | "
            f"{r['correct']} | {r['epochs']} | {r['train_records']} |"
        )
    return {"canary": rows, "guess_choices": ks}


# --------------------------------------------------------------------------- membership inference


def _train(
    p: Pipeline, data: ArrayDataset, seed: int
) -> tuple[torch.nn.Module, float | None, float]:
    """Train the CNN on ``data``; the model, the accountant's ε (None without DP), seconds."""
    empty = data.subset(np.arange(0))
    splits = Splits(data, empty, empty)
    torch.manual_seed(seed)
    model = dp_cnn(seed)
    started = time.perf_counter()
    trainer: Trainer = DPTrainer(p, model, splits) if p.privacy else Trainer(p, model, splits)
    trainer.fit()
    eps = trainer.spent_epsilon() if isinstance(trainer, DPTrainer) else None
    return trainer.plain_model(), eps, time.perf_counter() - started


def _attack_row(
    name: str, attack: AttackResult, eps: float | None, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "mode": name,
        "epsilon": eps,
        "auc": attack.auc,
        "rates": [
            {
                "fpr_target": r.fpr_target,
                "tpr": r.tpr,
                "tpr_ci": r.tpr_ci,
                "fpr": r.fpr,
                "true_positives": r.true_positives,
                "false_positives": r.false_positives,
            }
            for r in attack.rates
        ],
        "members": attack.members,
        "non_members": attack.non_members,
        **extra,
    }


def _mia_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}\n")
    print(
        "| model | ε (δ 1e-5) | AUC | TPR @ 1 % FPR [CP 95 %] | TPR @ 0.1 % FPR [CP 95 %] | "
        "members / non-members | train / test acc. | epochs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        shown = "∞ (no DP)" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        cells = [
            f"{100 * x['tpr']:.2f} % [{100 * x['tpr_ci'][0]:.2f}, {100 * x['tpr_ci'][1]:.2f}]"
            for x in r["rates"]
        ]
        print(
            f"| {r['mode']} | {shown} | {r['auc']:.4f} | {cells[0]} | {cells[1]} | "
            f"{r['members']} / {r['non_members']} | {r['train_accuracy']:.3f} / "
            f"{r['test_accuracy']:.3f} | {r['epochs']} |"
        )


def mia(args: argparse.Namespace) -> dict[str, Any]:
    full = fashion("train")
    members = full.subset(np.arange(args.members))
    non_members = fashion("test").subset(np.arange(args.non_members))
    reference = None
    if args.reference_epochs:
        # trained on other training records: neither members nor non-members
        ref_data = full.subset(np.arange(args.members, args.members + args.reference_records))
        reference, _, ref_s = _train(pipeline(args.reference_epochs, None, None), ref_data, 1)
        print(
            f"  reference: {len(ref_data)} records, {args.reference_epochs} epochs, {ref_s:.0f} s"
        )
    rows, calibrated = [], []
    for mode in _modes(args.modes):
        epochs = args.epochs if mode is not None else args.plain_epochs
        p = pipeline(epochs, args.epsilon if mode is not None else None, mode)
        trained, eps, seconds = _train(p, members, args.seed)
        extra = {
            "train_accuracy": accuracy(trained, members),
            "test_accuracy": accuracy(trained, non_members),
            "epochs": epochs,
            "seconds": seconds,
        }
        name = mode or "non-private"
        rows.append(
            _attack_row(name, loss_threshold_attack(trained, members, non_members), eps, extra)
        )
        print(f"  {name}: AUC {rows[-1]['auc']:.4f}, {seconds:.0f} s", flush=True)
        if reference is not None:
            attack = calibrated_loss_attack(trained, reference, members, non_members)
            calibrated.append(_attack_row(name, attack, eps, extra))
    _mia_table("loss-threshold attack (score = −loss)", rows)
    if calibrated:
        _mia_table("calibrated loss attack (score = reference loss − loss)", calibrated)
    return {"mia": rows, "mia_calibrated": calibrated}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("canary", help="one-run canary audit (Steinke, Nasr & Jagielski 2023)")
    c.add_argument("--train", type=int, default=10_000, help="training records (from the start)")
    c.add_argument("--canaries", type=int, default=1000)
    c.add_argument(
        "--kind",
        choices=["mislabeled", "noise"],
        default="noise",
        help="held-out records with a wrong label, or uniform-noise images with random labels",
    )
    c.add_argument("--pool", type=int, default=10_000, help="held-out tail of train for canaries")
    c.add_argument("--epochs", type=int, default=30)
    c.add_argument("--plain-epochs", type=int, default=30)
    c.add_argument("--modes", default="fused,hooks,none", help="DP modes; none = non-private")
    a = sub.add_parser("mia", help="loss-threshold membership inference, TPR at low FPR")
    a.add_argument("--members", type=int, default=10_000)
    a.add_argument("--non-members", type=int, default=10_000)
    a.add_argument("--epochs", type=int, default=5)
    a.add_argument("--plain-epochs", type=int, default=60)
    a.add_argument("--modes", default="fused,hooks,none", help="DP modes; none = non-private")
    a.add_argument(
        "--reference-epochs",
        type=int,
        default=30,
        help="train a non-private reference model for the calibrated attack (0: off)",
    )
    a.add_argument("--reference-records", type=int, default=10_000)
    for p in (c, a):
        p.add_argument("--epsilon", type=float, default=3.0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    print(f"command: python benchmarks/dp_audit.py {' '.join(argv or sys.argv[1:])}", flush=True)
    result = {"canary": canary, "mia": mia}[args.what](args)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
